// Package maildir delivers messages into Maildirs and reads them the way
// qmail-pop3d does.
//
// A Maildir is a directory holding three subdirectories: tmp/, where a
// message is written under a unique name; new/, where a finished message
// appears, in one atomic step, by a link from tmp/; and cur/, where a reader
// moves a message it has seen, appending an info part ":2,FLAGS" to its name.
// Nothing ever reads tmp/, so a reader never sees a partial message, and
// writers need no locks.
//
// Delivery (Deliver, Writer) follows qmail-local's order and adds the
// directory sync Linux needs; reading (Scan, ScanBefore, CleanTmp,
// MoveToCur) follows qmail-pop3d. docs/maildir.md describes the unique
// name, the write order and what a POP3 session sees.
package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quail-mta/quail/pkg/atomicfile"
)

// The three subdirectories of a Maildir.
const (
	Tmp = "tmp"
	New = "new"
	Cur = "cur"
)

// Kind says what went wrong with a delivery. Every delivery failure is
// temporary: the message stays queued and is tried again.
type Kind int

// Kinds of delivery failure, with the qmail-local text a caller reports
// for each.
const (
	// KindMissing: the directory, its tmp/ or its new/ does not exist or
	// is not a directory. qmail-local: "Unable to chdir to maildir. (#4.2.1)".
	KindMissing Kind = iota + 1
	// KindUnwritable: permission denied, or a read-only file system, when
	// creating the file in tmp/ or linking it into new/. qmail-local:
	// "Temporary error on maildir delivery. (#4.3.0)".
	KindUnwritable
	// KindRead: reading the message failed. qmail-local: "Unable to read
	// message. (#4.3.0)".
	KindRead
	// KindWrite: writing, fsyncing, closing or linking the file failed
	// (disk full, quota, I/O error). qmail-local: "Temporary error on
	// maildir delivery. (#4.3.0)".
	KindWrite
)

func (k Kind) String() string {
	switch k {
	case KindMissing:
		return "missing"
	case KindUnwritable:
		return "unwritable"
	case KindRead:
		return "read"
	case KindWrite:
		return "write"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a failed delivery. Nothing of the message is left in new/ when
// Deliver returns an Error, except after a failed sync of new/ (Op "sync"):
// then the message is in new/ but perhaps not durable, and delivering it
// again may leave a duplicate, never a loss.
type Error struct {
	Kind Kind
	Dir  string // the Maildir
	Op   string // "stat", "create", "read", "write", "fsync", "close", "link", "sync"
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("maildir %s: %s: %v", e.Dir, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary is always true: qmail-local defers every Maildir failure.
func (e *Error) Temporary() bool { return true }

// ErrNotMaildir is wrapped by errors of kind KindMissing whose directory
// exists but lacks tmp/ or new/.
var ErrNotMaildir = errors.New("not a maildir")

// Make creates dir and its cur/, new/ and tmp/ with permissions perm (less
// the umask), like qmail's maildirmake, and syncs them to disk. The parent
// of dir must exist. Parts that already exist as directories are kept, so
// Make also repairs a Maildir missing a subdirectory. The caller sets the
// owner.
func Make(dir string, perm os.FileMode) error {
	if err := mkdir(dir, perm); err != nil {
		return fmt.Errorf("make maildir %s: %w", dir, err)
	}
	for _, sub := range []string{Cur, New, Tmp} {
		if err := mkdir(filepath.Join(dir, sub), perm); err != nil {
			return fmt.Errorf("make maildir %s: %w", dir, err)
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("make maildir %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return fmt.Errorf("make maildir %s: %w", dir, err)
	}
	return nil
}

// mkdir creates a directory, accepting one that already exists.
func mkdir(p string, perm os.FileMode) error {
	err := os.Mkdir(p, perm)
	if err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	st, serr := os.Stat(p)
	if serr != nil {
		return serr
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", p)
	}
	return nil
}
