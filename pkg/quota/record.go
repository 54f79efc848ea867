package quota

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/privsep"
	"golang.org/x/sys/unix"
)

// Where a domain's record lives, under root/domains/DOMAIN/.
const (
	// Dir holds the record. The process that delivers virtual mail (the
	// qmailv account in a root install) must be able to write it; it is
	// 0755 so that qmail-smtpd can read the record.
	Dir = "quota"
	// File is the record, 0644.
	File = "maildirsize"
	// header starts the record's first line.
	header = "recounted"
	// tmpFile is the recount's new record before the rename; only the
	// holder of the exclusive lock writes it.
	tmpFile = ".maildirsize.tmp"
	// maxRead bounds what a reader takes of a record that no one has
	// recounted for a long time; such a record is due anyway.
	maxRead = 1 << 20
	// maxValue bounds a line's numbers (16 TiB), so that the sum of the
	// lines maxRead can hold never overflows.
	maxValue = 1 << 44
)

// book is one domain's accounting: its paths.
type book struct {
	domain    string
	domainDir string // root/domains/DOMAIN
	dir       string // domainDir/quota
	file      string // dir/maildirsize
}

func newBook(root, domain string) (*book, error) {
	d, err := contract.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	b := &book{domain: d, domainDir: filepath.Join(root, "domains", d)}
	b.dir = filepath.Join(b.domainDir, Dir)
	b.file = filepath.Join(b.dir, File)
	return b, nil
}

// record is a parsed maildirsize file:
//
//	recounted UNIXTIME PASSWDSTAMP
//	BYTES MESSAGES          the totals of that recount
//	BYTES MESSAGES          one line per change since, signed
//
// PASSWDSTAMP identifies the domain's passwd file as the recount saw it
// (inode.mtime-in-nanoseconds, "-" for none).
type record struct {
	recounted int64 // unix seconds; 0 when the header is missing
	stamp     string
	usage     Usage
	size      int  // bytes read
	bad       bool // a line that is not what quail writes
}

// parseRecord reads a record. An unfinished last line (no newline yet:
// an append in progress, or a crash in one) is ignored; any other line
// quail would not have written marks the record bad, which makes it due.
func parseRecord(data []byte) record {
	r := record{size: len(data)}
	text := data
	if i := bytes.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i+1]
	} else {
		text = nil
	}
	for n := 0; len(text) > 0; n++ {
		i := bytes.IndexByte(text, '\n')
		line := text[:i]
		text = text[i+1:]
		a, b, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			r.bad = true
			continue
		}
		if n == 0 {
			t, stamp, ok := bytes.Cut(b, []byte{' '})
			when, err := strconv.ParseInt(string(t), 10, 64)
			if !ok || string(a) != header || err != nil || when <= 0 || len(stamp) == 0 {
				r.bad = true
				continue
			}
			r.recounted, r.stamp = when, string(stamp)
			continue
		}
		x, ok1 := parseValue(a)
		y, ok2 := parseValue(b)
		if !ok1 || !ok2 {
			r.bad = true
			continue
		}
		r.usage.Bytes += x
		r.usage.Messages += y
	}
	return r
}

// parseValue reads a line's number: decimal, with an optional sign, at
// most maxValue either way; what strconv.ParseInt takes in base 10 within
// that bound. It is written out because the record is read at every RCPT
// and every delivery, and holds a line for every delivery since the last
// recount.
func parseValue(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		// v stays at most maxValue here, so this cannot overflow.
		if v = v*10 + int64(c-'0'); v > maxValue {
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// due reports whether the record must be recounted before use.
func (r record) due(now time.Time, stamp string) bool {
	age := now.Unix() - r.recounted
	return r.bad || r.recounted == 0 || r.size > MaxRecordSize ||
		age > int64(MaxAge/time.Second) || age < -300 || // a clock set back
		r.stamp != stamp || r.usage.Bytes < 0 || r.usage.Messages < 0
}

// formatRecord is a fresh record of a recount.
func formatRecord(now time.Time, stamp string, u Usage) []byte {
	b := make([]byte, 0, 80)
	b = append(b, header+" "...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ' ')
	b = append(b, stamp...)
	b = append(b, '\n')
	return formatLine(b, u)
}

// passwdStamp identifies the domain's passwd as it is now: atomicfile
// replaces it by rename, so every change gives a new inode and mtime.
func (b *book) passwdStamp() (string, error) {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(b.domainDir, "passwd"), &st)
	if err == unix.ENOENT {
		return "-", nil
	}
	if err != nil {
		return "", fmt.Errorf("quota %s: stat passwd: %w", b.domain, err)
	}
	return strconv.FormatUint(st.Ino, 10) + "." + strconv.FormatInt(st.Mtim.Nano(), 10), nil
}

// read reads the record; found is false when there is none. It calls
// open, read and close directly: the check runs at every RCPT and every
// delivery, and an *os.File's poller registration would be most of its
// cost.
func (b *book) read() (rec record, found bool, err error) {
	fd, err := unix.Open(b.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(b.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err == unix.ENOENT {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("quota %s: open %s: %w", b.domain, b.file, err)
	}
	defer unix.Close(fd)
	var small [2 * MaxRecordSize]byte
	data := small[:0]
	for len(data) < maxRead {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):min(cap(data), maxRead)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return record{}, false, fmt.Errorf("quota %s: read %s: %w", b.domain, b.file, err)
		}
		if n == 0 {
			break
		}
		data = data[:len(data)+n]
	}
	return parseRecord(data), true, nil
}

// recount counts the domain's mailboxes and, when this process may
// write the quota directory, stores the result as a fresh record.
func (b *book) recount(now time.Time, stamp string) (Usage, error) {
	unlock, store := b.lock()
	if store {
		defer unlock()
		// Another process may have recounted while this one waited.
		if rec, found, err := b.read(); err == nil && found && !rec.due(now, stamp) {
			return rec.usage, nil
		}
	}
	u, err := b.scan()
	if err != nil {
		return Usage{}, err
	}
	if store {
		// A record that cannot be written is no loss: the next check
		// counts again.
		_ = b.write(formatRecord(now, stamp, u))
	}
	return u, nil
}

// lock makes the quota directory if it is missing, and takes its
// exclusive lock when this process may write there; ok is false when it
// may not (qmail-smtpd; a domain directory the delivering account cannot
// write before qmailctl has made the quota directory).
func (b *book) lock() (unlock func(), ok bool) {
	if err := b.makeDir(); err != nil {
		return nil, false
	}
	if unix.Faccessat(unix.AT_FDCWD, b.dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS) != nil {
		return nil, false
	}
	d, err := os.Open(b.dir)
	if err != nil {
		return nil, false
	}
	if err := flock(d, unix.LOCK_EX); err != nil {
		d.Close()
		return nil, false
	}
	return func() { d.Close() }, true
}

// makeDir creates the quota directory when it is missing. Root makes it
// for the owner of virtual mailboxes, who delivers and so writes the
// record; a root that cannot find that account makes nothing, rather
// than a directory the deliverer could never write.
func (b *book) makeDir() error {
	err := os.Mkdir(b.dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(b.dir, 0o755); err != nil { // whatever the umask
		os.Remove(b.dir)
		return err
	}
	if privsep.Root() {
		ids, err := privsep.Lookup(privsep.Virtual)
		if err == nil {
			err = os.Lchown(b.dir, ids.UID, ids.GID)
		}
		if err != nil {
			os.Remove(b.dir)
			return err
		}
	}
	return nil
}

// write replaces the record with data: a new file, fsynced, renamed
// over the old. The directory is not synced: after a crash the old
// record or none is there, and either is recounted or corrected.
func (b *book) write(data []byte) error {
	tmp := filepath.Join(b.dir, tmpFile)
	// Left by a crash, perhaps by another account: the directory's
	// owner may remove it whoever owns it.
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = writeAll(f, data)
	if err == nil && privsep.Root() {
		// Root's recount keeps the record its owner's, the deliverer.
		var st os.FileInfo
		if st, err = os.Stat(b.dir); err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			err = f.Chown(int(sys.Uid), int(sys.Gid))
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.file)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func writeAll(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Sync()
}

// scan counts the messages in new/ and cur/ of every mailbox in the
// domain's passwd, reading sizes from the names' ,S= fields and calling
// stat only for names without one. A mailbox without a Maildir counts
// nothing.
func (b *book) scan() (Usage, error) {
	mailboxes, err := readPasswd(b.domainDir, b.domain)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, m := range mailboxes {
		md := filepath.Join(b.domainDir, m.Dir, "Maildir")
		for _, sub := range []string{maildir.New, maildir.Cur} {
			if err := countDir(filepath.Join(md, sub), &u); err != nil {
				return Usage{}, fmt.Errorf("quota %s: count %s: %w", b.domain, md, err)
			}
		}
	}
	return u, nil
}

// countDir adds the messages of one Maildir subdirectory to u, skipping
// names starting with '.', as readers do.
func countDir(dir string, u *Usage) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if name == "" || name[0] == '.' {
				continue
			}
			unique, _ := maildir.SplitName(name)
			size, _ := maildir.NameSizes(unique)
			if size < 0 {
				var st unix.Stat_t
				if serr := unix.Fstatat(fd, name, &st, 0); serr != nil {
					if errors.Is(serr, unix.ENOENT) {
						continue // removed meanwhile
					}
					return serr
				}
				if st.Mode&unix.S_IFMT != unix.S_IFREG {
					continue
				}
				size = st.Size
			}
			u.Bytes += size
			u.Messages++
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
