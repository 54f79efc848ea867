// Package qq is the injector's side of the qmail-queue protocol: it runs
// the queue program ($QMAILQUEUE, else bin/qmail-queue), streams the
// message to it, hands over the envelope and turns its exit status into
// the reply text qmail gives for it.
//
// A hook that refuses a message with its own words writes D (permanent)
// or Z (temporary) and the text, and exits 82 (reference §1.6). The pipe
// for it is offered on fd 4 (simscan's convention) and on fd 6
// (notqmail's), the same pipe on both, so hooks written for either work.
package qq

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/timerslack"
	"github.com/quail-mta/quail/queue"
)

// Error is a refusal by the queue program: its text as qmail words it
// (without the D/Z prefix qmail keeps internally).
type Error struct {
	Code      int    // exit status; -1 when killed by a signal
	Text      string // e.g. "qq write error or disk full (#4.3.0)"
	Permanent bool
}

func (e *Error) Error() string { return e.Text }

// Temporary reports whether trying again later may succeed.
func (e *Error) Temporary() bool { return !e.Permanent }

// Program is the queue program injectors run: $QMAILQUEUE when set (and
// the environment may be trusted), else bin/qmail-queue under root.
func Program(root string) string {
	if p := os.Getenv("QMAILQUEUE"); p != "" && control.EnvTrusted() {
		return p
	}
	return filepath.Join(root, "bin", "qmail-queue")
}

// Injection is one message on its way into the queue.
type Injection struct {
	proc   *os.Process
	msg    *os.File // write end of the message pipe
	env    *os.File // write end of the envelope pipe
	custom *os.File // read end of the custom-error pipe; nil on a kept program's later messages
	werr   error
	keeper *Keeper // set when the program serves many messages
	first  bool    // with keeper: the message the program was started with, on its fd 0 and 1
}

// Start runs the queue program in root (relative paths in QMAILQUEUE
// resolve there, as in qmail), with the caller's environment.
func Start(root string) (*Injection, error) {
	return start(root, Program(root), nil, nil)
}

// start runs prog with the message and envelope pipes on fd 0 and 1,
// channel (if any) on fd 3 and the custom-error pipe on fd 4 and 6. A nil
// env is the caller's environment.
func start(root, prog string, channel *os.File, env []string) (*Injection, error) {
	msgR, msgW, err := os.Pipe()
	if err != nil {
		return nil, tempf("qq trouble creating pipes (#4.3.0)")
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		closeAll(msgR, msgW)
		return nil, tempf("qq trouble creating pipes (#4.3.0)")
	}
	custR, custW, err := os.Pipe()
	if err != nil {
		closeAll(msgR, msgW, envR, envW)
		return nil, tempf("qq trouble creating pipes (#4.3.0)")
	}
	// os.StartProcess rather than os/exec: sendmail and qmail-inject run
	// once per message, and os/exec's imports would slow their start-up.
	var proc *os.Process
	err = timerslack.Start(func() (err error) {
		proc, err = os.StartProcess(prog, []string{prog}, &os.ProcAttr{
			Dir:   root,                                                          // a relative QMAILQUEUE resolves here, as in qmail
			Env:   env,                                                           // nil: ours
			Files: []*os.File{msgR, envR, os.Stderr, channel, custW, nil, custW}, // custom errors on fds 4 and 6
		})
		return err
	})
	closeAll(msgR, envR, custW)
	if err != nil {
		closeAll(msgW, envW, custR)
		return nil, tempf("unable to exec qq (#4.3.0)")
	}
	return &Injection{proc: proc, msg: msgW, env: envW, custom: custR}, nil
}

// Pid is the queue program's process id, which qmail-smtpd reports as
// "qp" in its 250 reply.
func (i *Injection) Pid() int { return i.proc.Pid }

// Write streams message bytes. An error is remembered and reported by
// Finish, where the exit status tells what happened.
func (i *Injection) Write(p []byte) (int, error) {
	if i.werr != nil {
		return 0, i.werr
	}
	n, err := i.msg.Write(p)
	if err != nil {
		i.werr = err
	}
	return n, err
}

// Finish ends the message, sends the envelope and waits for the queue
// program. nil means queued.
func (i *Injection) Finish(env queue.Envelope) error {
	if i.keeper != nil {
		return i.finishKept(env.Encode())
	}
	i.msg.Close()
	i.env.Write(env.Encode()) // a refusing program may be gone: its status tells
	i.env.Close()
	return i.wait()
}

// wait reads the queue program's exit status as qmail does.
func (i *Injection) wait() error {
	st, err := i.proc.Wait()
	return i.status(st, err)
}

// status reads the queue program's exit as qmail does.
func (i *Injection) status(st *os.ProcessState, err error) error {
	defer i.custom.Close()
	if err != nil {
		return tempf("qq waitpid surprise (#4.3.0)")
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &Error{Code: -1, Text: "qq crashed (#4.3.0)"}
	}
	code := st.ExitCode()
	if code == exitcode.QQCustom {
		if e := readCustom(i.custom); e != nil {
			return e
		}
	}
	if code == 0 && i.werr != nil {
		return tempf("qq read error (#4.3.0)")
	}
	return Status(code)
}

// AbortWait is how long Abort lets the queue program clean up before it
// kills it.
const AbortWait = 10 * time.Second

// Abort stops the injection without queueing anything. It ends the
// message and closes the envelope pipe with no envelope: qmail-queue
// then fails to read one, removes what it wrote and exits 54, as qmail's
// own injectors rely on. Killing it instead would leave its half-written
// message file behind. A program that does not exit within AbortWait is
// killed.
func (i *Injection) Abort() {
	if i.keeper != nil {
		i.abortKept()
		return
	}
	i.msg.Close()
	i.env.Close()
	timer := time.AfterFunc(AbortWait, func() { i.proc.Kill() })
	i.proc.Wait()
	timer.Stop()
	i.custom.Close()
}

// readCustom reads a hook's own reply: D or Z and at least two more bytes,
// at most 255 in all.
func readCustom(r *os.File) *Error {
	r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b, _ := io.ReadAll(io.LimitReader(r, 255))
	b = bytes.TrimRight(b, "\r\n")
	if len(b) <= 2 || (b[0] != 'D' && b[0] != 'Z') {
		return nil
	}
	text := bytes.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' ' // one reply line, whatever the hook wrote
		}
		return r
	}, b[1:])
	return &Error{Code: exitcode.QQCustom, Text: string(text), Permanent: b[0] == 'D'}
}

// Status is qmail's reading of a qmail-queue exit status (qmail.c's
// qmail_close): nil for 0, else the refusal with qmail's text.
func Status(code int) error {
	if code == 0 {
		return nil
	}
	if t, ok := texts[code]; ok {
		return &Error{Code: code, Text: t, Permanent: exitcode.QQPermanent(code)}
	}
	if exitcode.QQPermanent(code) {
		return &Error{Code: code, Text: "qq permanent problem (#5.3.0)", Permanent: true}
	}
	return &Error{Code: code, Text: "qq temporary problem (#4.3.0)"}
}

var texts = map[int]string{
	exitcode.QQAddrTooLong: "envelope address too long for qq (#5.1.3)",
	115:                    "envelope address too long for qq (#5.1.3)",
	exitcode.QQPermRefused: "mail server permanently rejected message (#5.3.0)",
	exitcode.QQNoMem:       "qq out of memory (#4.3.0)",
	exitcode.QQTimeout:     "qq timeout (#4.3.0)",
	exitcode.QQWrite:       "qq write error or disk full (#4.3.0)",
	exitcode.QQRead:        "qq read error (#4.3.0)",
	exitcode.QQConfig:      "qq unable to read configuration (#4.3.0)",
	exitcode.QQNetwork:     "qq trouble making network connection (#4.3.0)",
	exitcode.QQHome:        "qq trouble in home directory (#4.3.0)",
	exitcode.QQQueueDir:    "qq trouble creating files in queue (#4.3.0)",
	exitcode.QQPid:         "qq trouble creating files in queue (#4.3.0)",
	exitcode.QQMess:        "qq trouble creating files in queue (#4.3.0)",
	exitcode.QQIntd:        "qq trouble creating files in queue (#4.3.0)",
	exitcode.QQTodo:        "qq trouble creating files in queue (#4.3.0)",
	exitcode.QQTempRefused: "mail server temporarily rejected message (#4.3.0)",
	exitcode.QQConnTimeout: "connection to mail server timed out (#4.4.1)",
	exitcode.QQConnRefused: "connection to mail server rejected (#4.4.1)",
	exitcode.QQConnFailed:  "communication with mail server failed (#4.4.2)",
	exitcode.QQBug:         "qq internal bug (#4.3.0)",
	exitcode.QQEnvelope:    "qq internal bug (#4.3.0)",
	exitcode.QQExecFailed:  "unable to exec qq (#4.3.0)",
}

func tempf(text string) *Error { return &Error{Text: text} }

func closeAll(files ...*os.File) {
	for _, f := range files {
		f.Close()
	}
}
