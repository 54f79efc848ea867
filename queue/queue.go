// Package queue is qmail 1.03's on-disk queue, byte for byte, so qmail's
// own tools read a queue quail wrote and a queue moves between qmail and
// quail in either direction.
//
// # Layout
//
// Under $QMAILHOME/queue ("split" directories have subdirectories 0 to 22;
// message N lives in subdirectory N % 23):
//
//	pid/          temporary names pid/PID.TIME.SEQ, where ids are born;
//	              spare.X and cool.X: qmailq's pool of finished files
//	info/spare.X  qmails's pool (info/cool.X while cooling)
//	mess/S/N      the message, with qmail-queue's Received line on top
//	intd/N        the envelope while it is written
//	todo/N        a hard link to intd/N: the message is queued
//	info/S/N      "F" sender NUL; its mtime is the message's birth
//	local/S/N     "T" recipient NUL per local recipient; "D" once done
//	remote/S/N    the same for remote recipients
//	bounce/N      failure reports gathered for the bounce
//	lock/sendmutex, lock/tcpto, lock/trigger (a FIFO)
//
// N is the inode number of the message file, so ids are unique while a
// message exists and may be reused after. todo/N and intd/N hold
// "u" uid NUL "p" pid NUL "F" sender NUL, then "T" recipient NUL for each
// recipient.
//
// # Durability
//
// The promise: once qmail-queue exits 0 (and so once qmail-smtpd answers
// 250 to the final dot) the message survives a crash or a power loss at
// any instant and is delivered at least once. Injection keeps it in this
// order (Enqueue, Writer.Commit):
//
//  1. create pid/PID.TIME.SEQ with O_EXCL, or rename a spare to it (see
//     Spares); its inode number is N;
//  2. link it to mess/S/N, unlink the pid name;
//  3. write the Received line and the message to it; fsync the file;
//  4. fsync mess/S, so the name mess/S/N is on disk before anything
//     refers to it;
//  5. create intd/N with O_EXCL (or rename a spare to it), write the
//     envelope, fsync it;
//  6. link intd/N to todo/N: the commit point;
//  7. fsync todo/, so the commit itself is on disk; only now may
//     qmail-queue exit 0;
//  8. pull lock/trigger (one byte, non-blocking; failures ignored: the
//     scheduler also scans todo/ regularly).
//
// qmail itself never fsyncs a directory: it relies on BSD's synchronous
// link and rename. Linux filesystems make a new name durable only when its
// directory is synced, hence steps 4 and 7. A crash before step 6 leaves
// a mess/ file and perhaps an intd/ file and no todo/ entry: never
// announced, never acknowledged, and removed after 36 hours by the
// scheduler's cleanup, as qmail does. A crash after step 6 leaves a
// complete message that the scheduler finds at its next scan of todo/.
package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Split is qmail's conf-split: the number of subdirectories of the split
// directories.
const Split = 23

// MaxAddress is the longest address qmail-queue takes, in bytes, not
// counting the NUL that ends it.
const MaxAddress = 1002

// Queue is the queue directory of one instance.
type Queue struct {
	Dir string // $QMAILHOME/queue
}

// New returns the queue under an instance root.
func New(root string) Queue { return Queue{Dir: filepath.Join(root, "queue")} }

// splitPath is DIR/S/N for a split directory.
func (q Queue) splitPath(dir string, id uint64) string {
	return filepath.Join(q.Dir, dir, strconv.FormatUint(id%Split, 10), strconv.FormatUint(id, 10))
}

// flatPath is DIR/N for an unsplit directory.
func (q Queue) flatPath(dir string, id uint64) string {
	return filepath.Join(q.Dir, dir, strconv.FormatUint(id, 10))
}

// Paths of message id's files.
func (q Queue) Mess(id uint64) string   { return q.splitPath("mess", id) }
func (q Queue) Info(id uint64) string   { return q.splitPath("info", id) }
func (q Queue) Local(id uint64) string  { return q.splitPath("local", id) }
func (q Queue) Remote(id uint64) string { return q.splitPath("remote", id) }
func (q Queue) Intd(id uint64) string   { return q.flatPath("intd", id) }
func (q Queue) Todo(id uint64) string   { return q.flatPath("todo", id) }
func (q Queue) Bounce(id uint64) string { return q.flatPath("bounce", id) }

// Trigger is the FIFO that wakes the scheduler.
func (q Queue) Trigger() string { return filepath.Join(q.Dir, "lock", "trigger") }

// SendMutex is the file qmail-send locks so only one runs per queue.
func (q Queue) SendMutex() string { return filepath.Join(q.Dir, "lock", "sendmutex") }

// ParseID reads a queue file name: decimal digits only, as qmail-send
// accepts them; other names in todo/ or info/ are ignored.
func ParseID(name string) (uint64, bool) {
	if name == "" || len(name) > 20 {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil
}

// Error is a failure of a queue operation with the qmail-queue exit
// status that reports it.
type Error struct {
	Code int // qmail-queue exit status, 11 to 91
	Op   string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Op
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func qerr(code int, op string, err error) error { return &Error{Code: code, Op: op, Err: err} }

// Exists reports whether path exists (an error other than "not found"
// counts as existing, so callers retry rather than act on a guess).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !os.IsNotExist(err)
}
