// Package reuse is the channel through which qmail-tcpserver -k lets one
// program process serve several connections, one after another, instead
// of creating a process for each. On these machines a Go exec costs more
// than everything else a short SMTP session does, so reusing the process
// is the cheapest way to serve a connection.
//
// The protocol, over a SOCK_SEQPACKET socket pair whose program end is
// the descriptor named by $QUAIL_REUSE_FD:
//
//   - The program serves the connection it started with on fd 0 and 1.
//   - When it has finished and closed that connection, it sends the
//     packet "done" and waits.
//   - The launcher either hands it the next connection, in one packet
//     whose data is the connection's environment (NUL-terminated K=V
//     entries, exactly what a new process would get) and whose
//     SCM_RIGHTS carry the connection's descriptor; or it closes its end,
//     and the program exits.
//
// A program only takes part when it is the very program the launcher
// ran ($QUAIL_REUSE_PROGRAM, compared with its own executable) and the
// socket is a SOCK_SEQPACKET whose other end its parent made. A wrapper
// in between, whether it execs the program (rblsmtpd, envdir) or forks it
// (recordio), must run for every connection, and so it turns reuse off:
// the program then serves one connection, as under tcpserver.
package reuse

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/quail-mta/quail/pkg/pollfd"
)

// EnvFD names the variable that tells the program its end of the channel.
const EnvFD = "QUAIL_REUSE_FD"

// EnvProgram names the variable that holds the path the launcher ran.
const EnvProgram = "QUAIL_REUSE_PROGRAM"

// Done is the packet a worker sends when its connection is finished.
const Done = "done"

// MaxEnv bounds the environment packet; the launcher never sends more.
const MaxEnv = 64 << 10

// Worker is a program's end of the channel.
type Worker struct {
	ch  *pollfd.Channel
	buf []byte // for the handoff packets, kept from one to the next
}

// FromEnv returns the channel qmail-tcpserver -k offers, or nil when none
// is offered or it cannot be used. It removes EnvFD and EnvProgram from
// the environment and keeps the descriptor from the program's own
// children either way.
func FromEnv() *Worker {
	v, ok := os.LookupEnv(EnvFD)
	prog := os.Getenv(EnvProgram)
	os.Unsetenv(EnvProgram)
	if !ok {
		return nil
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	if !IsExecutable(prog) || !FromParent(fd) {
		syscall.Close(fd)
		return nil
	}
	ch, err := pollfd.NewChannel(fd)
	if err != nil {
		return nil
	}
	return &Worker{ch: ch}
}

// IsExecutable reports whether path names this process's own executable
// (after symbolic links): the program run, not a wrapper that ran it.
func IsExecutable(path string) bool {
	if path == "" {
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return false
	}
	// A relative path is the one the parent ran in the directory we
	// start in.
	p, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	p, err = filepath.EvalSymlinks(p)
	return err == nil && p == exe
}

// FromParent reports whether fd is a SOCK_SEQPACKET socket whose other
// end was made by this process's parent: a channel the process that
// started us offers, not one inherited through a wrapper in between.
func FromParent(fd int) bool {
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil || typ != syscall.SOCK_SEQPACKET {
		return false
	}
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	return err == nil && int(cred.Pid) == os.Getppid()
}

// ErrStop means the launcher wants no more connections served.
var ErrStop = errors.New("reuse: launcher closed the channel")

// Next reports the finished connection and waits for the next one. It
// returns that connection's environment and descriptor; the caller owns
// the descriptor. The caller must have closed every copy of the finished
// connection first, or its client would not see the end of the session.
func (w *Worker) Next() (env []string, conn int, err error) {
	if err := w.ch.Send([]byte(Done)); err != nil {
		return nil, -1, err
	}
	if w.buf == nil {
		w.buf = make([]byte, MaxEnv)
	}
	n, fds, err := w.ch.Receive(w.buf, 1)
	if errors.Is(err, io.EOF) {
		return nil, -1, ErrStop
	}
	if err != nil {
		return nil, -1, err
	}
	if len(fds) != 1 {
		return nil, -1, pollfd.ErrMalformed
	}
	return splitEnv(w.buf[:n]), fds[0], nil
}

// Handoff sends conn and its environment to the worker at the other end
// of c: the launcher's half of the protocol.
func Handoff(c *pollfd.Channel, env []string, conn int) error {
	b := EncodeEnv(env)
	if len(b) > MaxEnv {
		return errors.New("reuse: environment too large to hand over")
	}
	return c.Send(b, conn)
}

// Close gives the channel up: the launcher then counts the process out.
func (w *Worker) Close() { w.ch.Close() }

func splitEnv(b []byte) []string {
	var env []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			env = append(env, string(b[:i]))
		}
		b = b[min(i+1, len(b)):]
	}
	return env
}

// EncodeEnv is the handoff packet's data for env.
func EncodeEnv(env []string) []byte {
	var b []byte
	for _, kv := range env {
		b = append(b, kv...)
		b = append(b, 0)
	}
	return b
}

// Serve runs serve, which serves the connection on fd 0 and 1 and returns
// an exit status, for the connection the program started with and then,
// while the launcher offers reuse and serve returns 0, for each
// connection handed over, with the environment that connection would have
// given a new process. It returns the last status.
func Serve(serve func() int) int {
	w := FromEnv()
	code := serve()
	if w == nil {
		return code
	}
	defer w.Close()
	for code == 0 {
		if err := DetachStdio(); err != nil {
			return code
		}
		env, conn, err := w.Next()
		if err != nil {
			return code
		}
		err = attachStdio(conn)
		syscall.Close(conn)
		if err != nil {
			return 111
		}
		os.Clearenv()
		for _, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				os.Setenv(k, v)
			}
		}
		code = serve()
	}
	return code
}

// DetachStdio points fd 0 and 1 at /dev/null: a program that has
// finished with what they were (a connection, a message's pipes) closes
// its last copies, so the other end sees it done, and the numbers stay
// taken.
func DetachStdio() error {
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(null)
	return attachStdio(null)
}

func attachStdio(fd int) error {
	if err := syscall.Dup3(fd, 0, 0); err != nil {
		return err
	}
	return syscall.Dup3(fd, 1, 0)
}
