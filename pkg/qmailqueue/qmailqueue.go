// Package qmailqueue is the qmail-queue program: it reads a message on fd
// 0 and its envelope on fd 1, puts both into the queue durably (package
// queue) and reports only through its exit status.
package qmailqueue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/maildate"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/queue"
)

// Death is how long qmail-queue may run before it gives up (exit 52).
const Death = 24 * time.Hour

// Received is the line qmail-queue puts on top of every message, naming
// its own pid and who ran it: the network (qmaild), a bounce (qmails),
// the alias user, or a uid.
func Received(pid, uid int, now time.Time) string {
	who := "by uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		switch u.Username {
		case privsep.Alias:
			who = "by alias"
		case privsep.Daemon:
			who = "from network"
		case privsep.Send:
			who = "for bounce"
		}
	}
	return fmt.Sprintf("Received: (qmail %d invoked %s); %s\n", pid, who, maildate.Format(now))
}

// Run is qmail-queue. It returns the exit status.
func Run(message, envelope io.Reader) int {
	syscall.Umask(0o033)
	return runOne(message, envelope)
}

// home is the instance root, found once per process: in serve mode
// finding it for every message was a readlink and four stats each.
var home = sync.OnceValue(control.Home)

// runOne queues one message, giving up after Death.
func runOne(message, envelope io.Reader) int {
	death := time.AfterFunc(Death, func() { os.Exit(exitcode.QQTimeout) })
	defer death.Stop()
	root := home()
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return exitcode.QQHome
	}
	q := queue.New(root)
	if st, err := os.Stat(q.Dir); err != nil || !st.IsDir() {
		return exitcode.QQQueueDir
	}
	pid, uid := os.Getpid(), os.Getuid()
	w, err := q.Create()
	if err != nil {
		return code(err)
	}
	if _, err := io.WriteString(w, Received(pid, uid, w.Birth)); err != nil {
		w.Abort()
		return code(err)
	}
	if err := copyMessage(w, message); err != nil {
		w.Abort()
		return code(err)
	}
	env, err := queue.ReadEnvelope(envelope)
	if err != nil {
		w.Abort()
		return code(err)
	}
	if err := w.Commit(queue.Todo(uid, pid, env)); err != nil {
		return code(err)
	}
	return exitcode.OK
}

// copyBufs keeps copyMessage's buffer from one message to the next, as
// queue's writers do.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyMessage copies the message, telling read errors (54) from write
// errors (53).
func copyMessage(w *queue.Writer, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &queue.Error{Code: exitcode.QQRead, Op: "read message", Err: rerr}
		}
	}
}

func code(err error) int {
	var qe *queue.Error
	if errors.As(err, &qe) {
		return qe.Code
	}
	return exitcode.QQBug
}
