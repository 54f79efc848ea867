package qq

import (
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/pollfd"
)

// Serve mode: an injector that sends many messages (qmail-smtpd, serving
// connection after connection under qmail-tcpserver -k) keeps one queue
// program running instead of creating a process per message.
//
// The injector starts the program as for one message, with two additions:
// fd 3 is its end of a SOCK_SEQPACKET socket pair, and EnvServe names the
// program as the injector ran it. A program that serves (quail's
// qmail-queue) checks that it is that very program (not a wrapper that
// ran it) and that its parent made the channel; it then queues the first
// message from fd 0 and 1 as usual, but sends its status as one byte on
// fd 3 instead of exiting, and waits there for the next message: one
// packet whose SCM_RIGHTS carry the message's and the envelope's read
// ends, to be read exactly as fd 0 and 1. It exits when the injector
// closes the channel. Any other program ignores fd 3 and the variable,
// queues one message and exits; the injector sees the channel close,
// takes the exit status, and from then on runs the program once per
// message. Each message goes through the same code, and so the same
// durability steps, as when qmail-queue runs once.

// EnvServe is the variable that asks the queue program to serve.
const EnvServe = "QMAILQUEUE_SERVE"

// ServeFD is the queue program's end of the channel.
const ServeFD = 3

// SendResult reports one message's status on the channel.
func SendResult(ch *pollfd.Channel, code int) error {
	return ch.Send([]byte{byte(code)})
}

// ReceiveMessage waits for the next message on the channel and returns
// its message and envelope pipes; io.EOF when the injector has closed it.
func ReceiveMessage(ch *pollfd.Channel) (msg, env *os.File, err error) {
	var buf [16]byte
	_, fds, err := ch.Receive(buf[:], 2)
	if err != nil {
		return nil, nil, err
	}
	if len(fds) != 2 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, nil, pollfd.ErrMalformed
	}
	// Read as they come, as qmail-queue reads fd 0 and 1: the injector
	// sends blocking ends (Keeper.next), which need no poller.
	return os.NewFile(uintptr(fds[0]), "message"), os.NewFile(uintptr(fds[1]), "envelope"), nil
}

// Keeper keeps a queue program serving across messages. Its zero value is
// not useful: use NewKeeper. It is not safe for concurrent use; an
// injector sends one message at a time.
type Keeper struct {
	root, prog string
	proc       *os.Process
	ctl        *pollfd.Channel // our end of the channel, nil when no program serves
	exited     chan exit       // the program's exit status, once it has exited
	serving    bool            // the program has answered on the channel
	once       bool            // the program does not serve: one process per message
}

type exit struct {
	st  *os.ProcessState
	err error
}

// NewKeeper returns a Keeper for root's queue program (Program(root)).
func NewKeeper(root string) *Keeper {
	return &Keeper{root: root, prog: Program(root)}
}

// Program is the queue program the Keeper runs.
func (k *Keeper) Program() string { return k.prog }

// Root is the instance the Keeper queues into.
func (k *Keeper) Root() string { return k.root }

// Start begins one message: on the serving program when there is one,
// else on a new process that is asked to serve.
func (k *Keeper) Start() (*Injection, error) {
	if k.once {
		return Start(k.root)
	}
	if k.serving {
		if inj, err := k.next(); err == nil {
			return inj, nil
		}
		k.Close() // it is gone or broken: start another
	}
	return k.spawn()
}

// next hands the serving program the read ends of a new message's pipes.
// The pipes stay blocking, as qmail's injectors' pipes to qmail-queue
// are: no deadline applies to them, and os.Pipe's poller set-up (and its
// undoing for the ends that leave) would cost a message more system
// calls than everything else its hand-over does.
func (k *Keeper) next() (*Injection, error) {
	msgR, msgW, err := blockingPipe("message")
	if err != nil {
		return nil, err
	}
	envR, envW, err := blockingPipe("envelope")
	if err != nil {
		syscall.Close(msgR)
		msgW.Close()
		return nil, err
	}
	err = k.ctl.Send([]byte{'m'}, msgR, envR)
	syscall.Close(msgR)
	syscall.Close(envR)
	if err != nil {
		closeAll(msgW, envW)
		return nil, err
	}
	return &Injection{proc: k.proc, msg: msgW, env: envW, keeper: k}, nil
}

// blockingPipe is a close-on-exec pipe: the read end as a descriptor to
// pass on, the write end as a file.
func blockingPipe(name string) (r int, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, nil, err
	}
	return p[0], os.NewFile(uintptr(p[1]), name), nil
}

func (k *Keeper) spawn() (*Injection, error) {
	ctl, child, err := pollfd.NewPair()
	if err != nil {
		return Start(k.root)
	}
	env := []string{EnvServe + "=" + k.prog}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvServe+"=") {
			env = append(env, kv)
		}
	}
	inj, err := start(k.root, k.prog, child, env)
	child.Close()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	k.proc, k.ctl, k.serving = inj.proc, ctl, false
	inj.first = true
	k.exited = make(chan exit, 1)
	// The program's exit answers when the channel cannot: a program that
	// does not serve may have left fd 3 open in a child of its own, so
	// the channel's end might never come. The deadline wakes result.
	go func(p *os.Process, ctl *pollfd.Channel, exited chan<- exit) {
		st, err := p.Wait()
		exited <- exit{st, err}
		ctl.SetReadDeadline(time.Unix(1, 0))
	}(inj.proc, ctl, k.exited)
	inj.keeper = k
	return inj, nil
}

// result waits for the serving program's status for the message just
// sent. ok is false when the channel closed or the program exited
// instead (a program that does not serve, or one that died): its exit
// status is the answer.
func (k *Keeper) result(timeout time.Duration) (code int, ok bool) {
	if timeout > 0 {
		k.ctl.SetReadDeadline(time.Now().Add(timeout))
		defer k.ctl.SetReadDeadline(time.Time{})
		// The waiter may have set its deadline before ours replaced it:
		// a program already gone is not waited for.
		if len(k.exited) > 0 {
			k.ctl.SetReadDeadline(time.Unix(1, 0))
		}
	}
	var b [1]byte
	n, _, err := k.ctl.Receive(b[:], 0)
	if err != nil || n != 1 {
		return 0, false
	}
	k.serving = true
	return int(b[0]), true
}

// gone forgets a program that closed the channel, after its exit status
// has been read; a program that never served is not asked again.
func (k *Keeper) gone() {
	if !k.serving {
		k.once = true
	}
	k.ctl.Close()
	k.proc, k.ctl, k.serving = nil, nil, false
}

// Close ends the serving program: it sees the channel close and exits.
func (k *Keeper) Close() {
	if k.proc == nil {
		return
	}
	k.ctl.Close()
	timer := time.AfterFunc(AbortWait, func() { k.proc.Kill() })
	<-k.exited
	timer.Stop()
	k.proc, k.ctl, k.serving = nil, nil, false
}

// finishKept is Finish for a message on a kept program.
func (i *Injection) finishKept(env []byte) error {
	k := i.keeper
	i.msg.Close()
	i.env.Write(env)
	i.env.Close()
	if code, ok := k.result(0); ok {
		if i.custom != nil {
			i.custom.Close()
		}
		if code == 0 && i.werr != nil {
			return tempf("qq read error (#4.3.0)")
		}
		return Status(code)
	}
	e := <-k.exited
	k.gone()
	if !i.first {
		// A message sent over the channel is answered there or not at
		// all: whatever the program's exit status, it was not queued.
		return &Error{Code: -1, Text: "qq crashed (#4.3.0)"}
	}
	return i.status(e.st, e.err)
}

// abortKept is Abort for a message on a kept program: with no envelope
// the program removes what it wrote and answers, as a single qmail-queue
// would by exiting 54.
func (i *Injection) abortKept() {
	k := i.keeper
	i.msg.Close()
	i.env.Close()
	if _, ok := k.result(AbortWait); ok {
		if i.custom != nil {
			i.custom.Close()
		}
		return
	}
	k.proc.Kill()
	<-k.exited
	if i.custom != nil {
		i.custom.Close()
	}
	k.serving = true // it was killed, not refused: do ask the next one to serve
	k.gone()
}
