package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/exitcode"
)

// Writer puts one message into the queue: Create, Write the message
// (Received line included), then Commit with its envelope. Until Commit
// returns nil nothing is queued, and Abort removes what was written.
type Writer struct {
	q     Queue
	id    uint64
	mess  *os.File
	buf   *bufio.Writer
	size  int64 // bytes written
	intd  bool  // intd/N was created
	done  bool
	Birth time.Time
}

// Create starts a message: steps 1 and 2 of the package doc. The file is
// a spare from pid/ when there is one (see Spares), else a new one.
func (q Queue) Create() (*Writer, error) {
	now := time.Now()
	spares := q.QueueSpares()
	var f *os.File
	var ino uint64
	var pidName string
	for seq := 1; seq < 10; seq++ {
		pidName = fmt.Sprintf("%s/pid/%d.%d.%d", q.Dir, os.Getpid(), now.Unix(), seq)
		var err error
		if f, ino, err = spares.Create(pidName, 0o644); err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, qerr(exitcode.QQPid, "create pid file", err)
		}
	}
	if f == nil {
		return nil, qerr(exitcode.QQPid, "create pid file: nine names taken", nil)
	}
	w := &Writer{q: q, id: ino, mess: f, Birth: now}
	if err := os.Link(pidName, q.Mess(w.id)); err != nil {
		f.Close()
		os.Remove(pidName)
		return nil, qerr(exitcode.QQMess, "link message into mess/", err)
	}
	if err := os.Remove(pidName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.Abort()
		return nil, qerr(exitcode.QQPid, "remove pid file", err)
	}
	w.buf = writers.Get().(*bufio.Writer)
	w.buf.Reset(f)
	return w, nil
}

// writers keeps message buffers from one message to the next: a process
// that queues many (qmail-queue serving qmail-smtpd) would otherwise
// allocate, zero and fault in 64 KB for each.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// release gives the buffer back once the message file is done with.
func (w *Writer) release() {
	if w.buf != nil {
		w.buf.Reset(nil)
		writers.Put(w.buf)
		w.buf = nil
	}
}

// ID is the message's queue id, the inode number of its mess/ file.
func (w *Writer) ID() uint64 { return w.id }

// Write appends message bytes. A failure carries exit status 53.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, qerr(exitcode.QQWrite, "write message", err)
	}
	return n, nil
}

// Commit makes the message durable and queues it with the todo record
// (see Todo): steps 3 to 8 of the package doc. When it returns nil the
// message is queued and will be delivered; on an error nothing is.
func (w *Writer) Commit(todo []byte) error {
	defer w.release()
	if err := w.commit(todo); err != nil {
		if !exists(w.q.Todo(w.id)) {
			w.Abort()
		}
		// Else the commit point was passed and only the fsync of todo/
		// failed: the message stays queued, and the caller reports a
		// temporary failure, so the worst case is a second copy.
		w.done = true
		return err
	}
	w.done = true
	w.q.Pull()
	return nil
}

func (w *Writer) commit(todo []byte) error {
	if err := w.buf.Flush(); err != nil {
		return qerr(exitcode.QQWrite, "write message", err)
	}
	if err := Fit(w.mess, w.size); err != nil {
		return qerr(exitcode.QQWrite, "write message", err)
	}
	if err := w.mess.Sync(); err != nil {
		return qerr(exitcode.QQWrite, "fsync message", err)
	}
	if err := w.mess.Close(); err != nil {
		return qerr(exitcode.QQWrite, "close message", err)
	}
	w.mess = nil
	if err := atomicfile.SyncDir(dirOf(w.q.Mess(w.id))); err != nil {
		return qerr(exitcode.QQMess, "fsync mess/", err)
	}
	intd, _, err := w.q.QueueSpares().Create(w.q.Intd(w.id), 0o644)
	if err != nil {
		return qerr(exitcode.QQIntd, "create intd/ file", err)
	}
	w.intd = true
	_, werr := intd.Write(todo)
	if werr == nil {
		werr = Fit(intd, int64(len(todo)))
	}
	if werr == nil {
		werr = intd.Sync()
	}
	if cerr := intd.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return qerr(exitcode.QQWrite, "write envelope", werr)
	}
	if err := os.Link(w.q.Intd(w.id), w.q.Todo(w.id)); err != nil {
		return qerr(exitcode.QQTodo, "link intd/ to todo/", err)
	}
	if err := atomicfile.SyncDir(dirOf(w.q.Todo(w.id))); err != nil {
		return qerr(exitcode.QQTodo, "fsync todo/", err)
	}
	return nil
}

// Abort removes what was written, as qmail-queue does on a write or read
// error: the message file is truncated and both names removed.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.release()
	if w.mess != nil {
		w.mess.Truncate(0)
		w.mess.Close()
	}
	if w.intd {
		os.Remove(w.q.Intd(w.id))
	}
	os.Remove(w.q.Mess(w.id))
}

// Pull wakes the scheduler through lock/trigger, as qmail-queue does: a
// non-blocking write of one byte; if nobody listens, nothing happens.
func (q Queue) Pull() {
	fd, err := syscall.Open(q.Trigger(), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	syscall.Write(fd, []byte{0})
	syscall.Close(fd)
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}
