// Package quota keeps the disk usage of each contract (hosted domain)
// against its allowance in control/quotas (SPEC §8): one limit for all
// the domain's mailboxes together.
//
// Counting every message at every check would cost in proportion to the
// mailboxes' size. Instead each domain keeps a record in the style of
// Maildir++'s maildirsize file, root/domains/DOMAIN/quota/maildirsize:
// the totals of the last recount, then one line per delivery or removal
// since, appended with O_APPEND and summed when read. A check reads the
// domain's control line, stats passwd and reads a file of at most a few
// KB, whatever the number of messages. The record is recounted from the
// Maildirs when it is missing, has grown past MaxRecordSize, is older
// than MaxAge, holds a line it cannot read, or was made before the
// domain's passwd last changed (a mailbox added or deleted).
//
// Many processes share the record: qmail-local adds deliveries,
// qmail-pop3d removes deletions, qmail-smtpd only reads. Appends take a
// shared flock on the quota/ directory and a recount an exclusive one,
// so that no delta is appended to a record a recount is about to
// replace; the recount writes a new file and renames it into place, so a
// reader sees the old record or the new, never half of one.
//
// The count is exact while processes change a Maildir and then call Add,
// except around a recount: a message delivered (or removed) just before
// the scan and recorded just after it is counted twice (or not at all)
// until the next recount. The limit is a soft one in the same way:
// deliveries checked at once may together pass it by a message each.
//
// docs/quota.md describes what is counted, the record's format and what
// happens over quota at SMTP and at delivery.
package quota

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/sysfile"
	"golang.org/x/sys/unix"
)

// Usage is a contract's bytes and messages in all its mailboxes together.
type Usage struct{ Bytes, Messages int64 }

// When a record is recounted from the Maildirs.
const (
	// MaxRecordSize: a record larger than this is recounted, which
	// bounds the cost of reading it (Maildir++ uses the same figure).
	// At about ten bytes a line it is some 500 deliveries and removals.
	MaxRecordSize = 5120
	// MaxAge: a record recounted longer ago than this is recounted, so
	// that changes no one recorded (a message removed by hand, a count
	// lost in a crash) are corrected within hours.
	MaxAge = 6 * time.Hour
)

// Limit reads the contract's allowance from control/quotas; 0 = none. A
// name that is not a valid domain is never a contract, so it has none.
func Limit(root, domain string) (int64, error) {
	d, err := contract.NormalizeDomain(domain)
	if err != nil {
		return 0, nil
	}
	return contract.New(root).Quota(d)
}

// Over reports whether the contract (hosted domain) has no room for a
// message of size bytes (size 0: any room left at all): usage+size > limit.
// A domain without a quota is never over.
//
// A size of 0 (or less) means a message of unknown size, which needs at
// least one byte: the contract is over when its usage has reached the
// limit. A process that can neither read the record nor count the
// mailboxes (qmail-smtpd before the first delivery has made a record)
// cannot judge, and answers false: delivery checks again.
func Over(root, domain string, size int64) (bool, error) {
	limit, err := Limit(root, domain)
	if err != nil || limit <= 0 {
		return false, err
	}
	u, err := Current(root, domain)
	if errors.Is(err, fs.ErrPermission) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return u.Bytes+max(size, 1) > limit, nil
}

// Add records a delivery (bytes > 0, messages 1) or a removal (negative).
// bytes is the message file's size, as in its name's ,S= field.
//
// Without a record nothing is written: the next check recounts, and sees
// the change in the Maildirs. The caller has changed the Maildir already,
// so an error here never undoes the change; the next recount corrects
// the count.
func Add(root, domain string, bytes, messages int64) error {
	b, err := newBook(root, domain)
	if err != nil {
		return err
	}
	if bytes == 0 && messages == 0 {
		return nil
	}
	dir, err := sysfile.Open(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("quota %s: %w", b.domain, err)
	}
	defer dir.Close()
	if err := flock(dir, unix.LOCK_SH); err != nil {
		return fmt.Errorf("quota %s: lock %s: %w", b.domain, b.dir, err)
	}
	f, err := sysfile.Append(b.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("quota %s: %w", b.domain, err)
	}
	// One write of a short line: O_APPEND places it whole at the end,
	// whoever else appends at the same moment.
	_, err = f.Write(formatLine(nil, Usage{bytes, messages}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("quota %s: record: %w", b.domain, err)
	}
	return nil
}

// Current returns the usage, recounting it from the Maildirs when the
// record is missing or due (see the package documentation).
//
// When a recount is due but this process may not make one (qmail-smtpd
// may read the record but not the mailboxes), the record's figure is
// returned as it stands. With no record and no way to count, the error
// wraps fs.ErrPermission.
func Current(root, domain string) (Usage, error) {
	return current(root, domain, time.Now())
}

func current(root, domain string, now time.Time) (Usage, error) {
	b, err := newBook(root, domain)
	if err != nil {
		return Usage{}, err
	}
	stamp, err := b.passwdStamp()
	if err != nil {
		return Usage{}, err
	}
	rec, found, err := b.read()
	if err != nil {
		return Usage{}, err
	}
	if found && !rec.due(now, stamp) {
		return rec.usage, nil
	}
	u, err := b.recount(now, stamp)
	if err != nil {
		if found {
			return rec.usage, nil
		}
		return Usage{}, err
	}
	return u, nil
}

// DomainOf returns the contract whose quota counts the Maildir dir: the
// domain D when dir is root/domains/D/DIR/Maildir for a mailbox listed as
// NAME:DIR in root/domains/D/passwd. ok is false for any other Maildir,
// which no quota counts. The path is compared as written, cleaned.
func DomainOf(root, dir string) (domain string, ok bool, err error) {
	base := filepath.Join(filepath.Clean(root), "domains") + string(filepath.Separator)
	rel, found := strings.CutPrefix(filepath.Clean(dir), base)
	if !found {
		return "", false, nil
	}
	d, rest, _ := strings.Cut(rel, string(filepath.Separator))
	mbox, found := strings.CutSuffix(rest, string(filepath.Separator)+"Maildir")
	if !found {
		return "", false, nil
	}
	if n, err := contract.NormalizeDomain(d); err != nil || n != d {
		return "", false, nil
	}
	mailboxes, err := readPasswd(filepath.Join(base, d), d)
	if err != nil {
		return "", false, err
	}
	for _, m := range mailboxes {
		if m.Dir == mbox {
			return d, true, nil
		}
	}
	return "", false, nil
}

// readPasswd reads a domain's mailboxes; a missing passwd lists none.
func readPasswd(domainDir, domain string) ([]contract.Mailbox, error) {
	data, err := sysfile.ReadFileCached(filepath.Join(domainDir, "passwd"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quota %s: %w", domain, err)
	}
	return contract.ParsePasswd("domains/"+domain+"/passwd", data)
}

// flock takes a lock on f, waiting for it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// formatLine appends "BYTES MESSAGES\n", Maildir++'s line.
func formatLine(b []byte, u Usage) []byte {
	b = strconv.AppendInt(b, u.Bytes, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, u.Messages, 10)
	return append(b, '\n')
}
