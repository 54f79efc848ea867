// Package ratelimit enforces each contract's limits on the messages it
// sends and receives (SPEC §8): over a limit within its window, that
// direction is refused ("423 sorry, that message exceeds my limit") until
// a block time has passed, for that contract alone.
//
// The limits live in control/ratelimits (see Load and docs/ratelimits.md).
// The counts live in ROOT/run/ratelimit, one file per contract and
// direction, DOMAIN.send and DOMAIN.receive, so that every qmail-smtpd
// process on the host counts into the same place. A file is a fixed-size
// ring of Buckets per-bucket counts plus the current block, about 1 KB
// however much mail passes, and each call reads and rewrites it whole
// under flock(2): constant cost, and expired counts and blocks clean
// themselves on the next update. The files are not fsynced: after a power
// loss a contract at worst gets a fresh allowance.
//
// Who writes: qmail-smtpd, as qmaild in a root install, so the directory
// belongs to qmaild, mode 0700, and the files it creates are 0600. A
// missing directory or file is no history; a file that cannot be read or
// locked is an error, which a caller turns into a temporary failure.
//
// A contract whose direction has no limit costs nothing: Blocked and
// Count return at once without touching the disk.
package ratelimit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/contract"
)

// Direction is what is counted: mail a contract sends, or mail it receives.
type Direction int

// The directions.
const (
	Send Direction = iota
	Receive
)

func (d Direction) String() string {
	switch d {
	case Send:
		return "send"
	case Receive:
		return "receive"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

func (d Direction) check() error {
	if d != Send && d != Receive {
		return fmt.Errorf("ratelimit: unknown direction %d (quail bug)", int(d))
	}
	return nil
}

// Dir is where the counts live, relative to the instance root.
const Dir = "run/ratelimit"

// DirPerm is the mode of Dir: only its owner (qmaild in a root install)
// may read the counts, since they tell how much mail a contract moves.
const DirPerm = 0o700

// path is the state file of domain's direction d, after checking domain is
// a plain DNS name: it becomes a file name.
func path(root, domain string, d Direction) (string, error) {
	dom, err := contract.NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("ratelimit: %w", err)
	}
	return filepath.Join(root, Dir, dom+"."+d.String()), nil
}

// Blocked reports whether the contract's direction is refused now
// (over its limit within the window, or inside a block).
func Blocked(root, domain string, d Direction, lim Limits, now time.Time) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	limit := lim.limit(d)
	if limit == 0 {
		return false, nil
	}
	p, err := path(root, domain, d)
	if err != nil {
		return false, err
	}
	// Read-write when we may, so that a clock set back can be absorbed
	// into the file (see state.advance); read-only is enough to answer.
	writable := true
	f, err := open(p, os.O_RDWR)
	if errors.Is(err, fs.ErrPermission) {
		writable = false
		f, err = open(p, os.O_RDONLY)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, stateErr(p, err)
	}
	defer f.Close()
	if err := lock(f, unix.LOCK_SH); err != nil {
		return false, stateErr(p, err)
	}
	var buf [stateLen + 1]byte
	st, size, err := read(f, buf[:])
	if err != nil {
		return false, stateErr(p, err)
	}
	t := now.UnixNano()
	at, moved := st.advance(lim.Window, t)
	if moved && writable {
		// Upgrade, and start again from what is on disk: another
		// process may have written while no lock was held.
		if err := lock(f, unix.LOCK_EX); err != nil {
			return false, stateErr(p, err)
		}
		if st, size, err = read(f, buf[:]); err != nil {
			return false, stateErr(p, err)
		}
		at, _ = st.advance(lim.Window, t)
		if err := write(f, &st, buf[:stateLen], size); err != nil {
			return false, stateErr(p, err)
		}
	}
	return st.blocked(limit, lim.block(), at) || st.sum() >= uint64(limit), nil
}

// Count records n messages in direction d at now, and starts a block
// when that puts the contract over its limit.
//
// A limit of N lets N messages through per window: the message that
// brings the count to N is accepted, and from then on Blocked refuses
// the direction until the block time has passed and the window holds
// fewer than N. A block does not grow while one runs.
func Count(root, domain string, d Direction, lim Limits, n int, now time.Time) error {
	if err := d.check(); err != nil {
		return err
	}
	limit := lim.limit(d)
	if limit == 0 || n == 0 {
		return nil
	}
	if n < 0 {
		return fmt.Errorf("ratelimit: count of %d messages (quail bug)", n)
	}
	p, err := path(root, domain, d)
	if err != nil {
		return err
	}
	f, err := create(p)
	if err != nil {
		return stateErr(p, err)
	}
	defer f.Close()
	if err := lock(f, unix.LOCK_EX); err != nil {
		return stateErr(p, err)
	}
	var buf [stateLen + 1]byte
	st, size, err := read(f, buf[:])
	if err != nil {
		return stateErr(p, err)
	}
	at, _ := st.advance(lim.Window, now.UnixNano())
	block := lim.block()
	wasBlocked := st.blocked(limit, block, at)
	st.add(uint64(n), at)
	if block > 0 && !wasBlocked && st.sum() >= uint64(limit) {
		st.blockFrom, st.blockUntil, st.blockLimit = at, at+int64(block), uint64(limit)
	}
	if err := write(f, &st, buf[:stateLen], size); err != nil {
		return stateErr(p, err)
	}
	return f.Close()
}

// open opens a state file, never through a symbolic link.
func open(p string, flag int) (*os.File, error) {
	return os.OpenFile(p, flag|syscall.O_NOFOLLOW, 0o600)
}

// create opens the state file, creating it (and the directory) when
// missing. A file root creates is given to the directory's owner, so
// that qmail-smtpd as qmaild can still update it.
func create(p string) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := open(p, os.O_RDWR)
		if !errors.Is(err, fs.ErrNotExist) || try == 3 {
			return f, err
		}
		f, err = open(p, os.O_RDWR|os.O_CREATE|os.O_EXCL)
		if errors.Is(err, fs.ErrExist) {
			continue // made by another process meanwhile
		}
		if errors.Is(err, fs.ErrNotExist) {
			// The directory is missing. The instance root's run/
			// must exist; only our own directory is made here.
			dir := filepath.Dir(p)
			if err := os.Mkdir(dir, DirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
				if pe, ok := err.(*fs.PathError); ok {
					err = pe.Err
				}
				return nil, fmt.Errorf("make %s: %w", dir, err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if os.Geteuid() == 0 {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Dir(p), &st); err == nil && st.Uid != 0 {
				if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
					f.Close()
					return nil, err
				}
			}
		}
		return f, nil
	}
}

func lock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// read reads the state file into buf, one byte longer than a state so
// that a file too long shows; size is what it read.
func read(f *os.File, buf []byte) (st state, size int, err error) {
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return state{}, n, err
	}
	st, _ = decode(buf[:n])
	return st, n, nil
}

// write writes st over a file of size bytes (as read).
func write(f *os.File, st *state, buf []byte, size int) error {
	st.encode(buf)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return err
	}
	if size > stateLen {
		// Only a damaged file is longer; cut what the write left.
		return f.Truncate(stateLen)
	}
	return nil
}

// stateErr names the file and says what an admin does about the usual
// cause.
func stateErr(p string, err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("ratelimit: %s: %w (%s must belong to qmaild, mode 0700: run qmailctl init as root)", p, err, Dir)
	}
	return fmt.Errorf("ratelimit: %s: %w", p, err)
}
