package localworker

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/privsep"
)

// IdleTimeout is how long a worker with nothing to do stays.
const IdleTimeout = 2 * time.Minute

// Request is one delivery: qmail-local's operands.
type Request struct {
	User, Home, Local, Dash, Ext, Domain, Sender, DefaultDelivery string
}

// Options start a worker.
type Options struct {
	Program string       // qmail-local, run as "Program --worker" with the socket on fd 3
	Root    string       // $QMAILHOME for the worker
	Env     []string     // the worker's environment
	Owner   *privsep.IDs // run as this account (root install); nil: as we are
	OnExit  func(*Worker)
}

// Worker is one running qmail-local worker, serving one mailbox owner.
type Worker struct {
	cmd     *exec.Cmd
	sock    *pollfd.Channel
	mu      sync.Mutex
	pending map[uint64]chan reply
	dead    bool
	idle    *time.Timer
	onExit  func(*Worker)
	done    chan struct{}
}

// Start runs a worker.
func Start(o Options) (*Worker, error) {
	sock, child, err := pollfd.NewPair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Program, "--worker")
	cmd.Dir = "/"
	cmd.Env = append(o.Env, "QMAILHOME="+o.Root)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{child}
	if o.Owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(o.Owner.UID), Gid: uint32(o.Owner.GID), Groups: []uint32{}}}
	}
	if err := cmd.Start(); err != nil {
		sock.Close()
		child.Close()
		return nil, err
	}
	child.Close()
	w := &Worker{cmd: cmd, sock: sock, pending: map[uint64]chan reply{}, onExit: o.OnExit, done: make(chan struct{})}
	w.idle = time.AfterFunc(IdleTimeout, w.closeIfIdle)
	go w.read()
	return w, nil
}

// Deliver sends one delivery with its open message file and waits for
// qmail-local's exit status and output. ErrClosed means the worker had
// ended before (it crashed, or went idle): the delivery was not sent, so
// another worker may make it. ErrLost means the worker ended after it
// was sent: the delivery may or may not have happened, and must not be
// made again at once (qmail-send retries it later, as after a crash).
// ErrTooLarge means the request cannot be sent at all.
func (w *Worker) Deliver(id uint64, rq Request, msg *os.File) (int, []byte, error) {
	r := request{id, rq.User, rq.Home, rq.Local, rq.Dash, rq.Ext, rq.Domain, rq.Sender, rq.DefaultDelivery}
	packet := r.encode()
	if len(packet) > maxPacket {
		return 0, nil, ErrTooLarge
	}
	ch := make(chan reply, 1)
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return 0, nil, ErrClosed
	}
	w.pending[id] = ch
	w.idle.Stop()
	w.mu.Unlock()
	err := sendFD(w.sock, packet, msg) // safe alongside other sends: one packet each
	if err != nil {
		w.forget(id)
		return 0, nil, err
	}
	rep, ok := <-ch
	if !ok {
		return 0, nil, ErrLost
	}
	return rep.status, rep.output, nil
}

func (w *Worker) forget(id uint64) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
}

// read dispatches replies; when the worker dies every pending delivery
// gets a closed channel, which its caller reports as a crash.
func (w *Worker) read() {
	buf := make([]byte, maxPacket)
	for {
		n, _, err := w.sock.Receive(buf, 0)
		if err != nil {
			break
		}
		rep, err := decodeReply(buf[:n])
		if err != nil {
			break
		}
		w.mu.Lock()
		ch := w.pending[rep.id]
		delete(w.pending, rep.id)
		if len(w.pending) == 0 && !w.dead {
			w.idle.Reset(IdleTimeout)
		}
		w.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
	w.mu.Lock()
	w.dead = true
	for id, ch := range w.pending {
		close(ch)
		delete(w.pending, id)
	}
	w.mu.Unlock()
	if w.onExit != nil {
		w.onExit(w)
	}
	w.sock.Close()
	w.cmd.Wait()
	close(w.done)
}

// Dead reports whether the worker takes no more deliveries.
func (w *Worker) Dead() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dead
}

func (w *Worker) closeIfIdle() {
	w.mu.Lock()
	idle := len(w.pending) == 0 && !w.dead
	if idle {
		w.dead = true // no new deliveries: a new worker starts for them
	}
	w.mu.Unlock()
	if idle {
		w.sock.CloseWrite()
	}
}

// Close lets the worker finish what it has and waits for it to exit.
func (w *Worker) Close() {
	w.mu.Lock()
	w.dead = true
	w.mu.Unlock()
	w.sock.CloseWrite()
	<-w.done
}
