package popup

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/idleconn"
	"github.com/quail-mta/quail/pkg/pop3"
)

// Launcher runs the password checker for one login attempt.
type Launcher interface {
	Launch(a Attempt) Outcome
}

// Attempt is one login.
type Attempt struct {
	User, Secret []byte
	Stamp        string // the greeting's timestamp: the third field on fd 3
	// TLS is the client's connection after STLS, nil on a plain one.
	// The TLS layer lives in qmail-popup, so the child gets a socket
	// pair that qmail-popup relays to it.
	TLS net.Conn
	// Pending are bytes the client sent after the login command that
	// were read already (TLS only): they go to the child first.
	Pending []byte
	// OnLogin is called once, from another goroutine, when the child
	// signals that the login succeeded. The child waits for it to
	// return (5 s at most) before it answers the client, so it must be
	// quick.
	OnLogin func()
}

// Kind says how an attempt ended.
type Kind int

const (
	// LoggedIn: the credentials were right and the subprogram ran the
	// session (it signalled on the login pipe, or exited 0).
	LoggedIn Kind = iota
	// BadLogin: the checker refused the credentials (exit 1, or 2 for
	// input it could not take, or any other status without a login).
	BadLogin
	// Temporary: the checker could not run or exited 111.
	Temporary
	// Crashed: the checker was killed by a signal before a login.
	Crashed
)

// Outcome is how an attempt ended, with the reason for the log.
type Outcome struct {
	Kind Kind
	Err  error
}

// Exec launches the checkpassword program as a child process.
//
// Descriptors: 0 and 1 are the client's connection (the inherited ones
// on a plain connection; one end of a socket pair after STLS, relayed by
// qmail-popup to the TLS connection); 2 is qmail-popup's stderr, the log
// (qmail 1.03 made it a copy of the connection, which sent a checker's
// complaints to the client; notqmail and quail do not); 3 is a pipe
// carrying "user\0secret\0timestamp\0"; 4 is the login pipe whose number
// $POP3GRANTFD gives (package pop3's SignalLogin).
type Exec struct {
	Argv          []string // the checker and the subprogram with its arguments
	Stdin, Stdout *os.File // the connection's descriptors
	// Conn, when set, is the connection Stdin and Stdout belong to: on a
	// plain connection it is released while the child serves it, and
	// reclaimed (Stdin and Stdout with it) if the session goes on here.
	Conn    *pop3.FileConn
	Env     []string // the child's environment; POP3GRANTFD is set here
	Timeout time.Duration
}

// Launch runs the checker and waits for it, and for the session it
// runs, to end.
func (e *Exec) Launch(a Attempt) Outcome {
	path, err := lookPath(e.Argv[0], e.Env)
	if err != nil {
		return Outcome{Temporary, err}
	}
	r3, w3, err := os.Pipe()
	if err != nil {
		return Outcome{Temporary, err}
	}
	defer r3.Close()
	defer w3.Close()
	rg, wg, err := os.Pipe()
	if err != nil {
		return Outcome{Temporary, err}
	}
	defer rg.Close()
	defer wg.Close()

	in, out := e.Stdin, e.Stdout
	var local *net.UnixConn
	if a.TLS != nil {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return Outcome{Temporary, fmt.Errorf("socketpair: %w", err)}
		}
		child := os.NewFile(uintptr(fds[1]), "child")
		defer child.Close()
		parent := os.NewFile(uintptr(fds[0]), "relay")
		c, err := net.FileConn(parent)
		parent.Close()
		if err != nil {
			return Outcome{Temporary, fmt.Errorf("socketpair: %w", err)}
		}
		local = c.(*net.UnixConn)
		defer local.Close()
		in, out = child, child
	}

	if a.TLS == nil {
		// The child reads the socket as it comes (a C program would give
		// up on EAGAIN); qmail-popup does not touch it meanwhile.
		(&pop3.FileConn{In: in, Out: out}).Blocking()
	}
	env := append(withoutGrantEnv(e.Env), pop3.GrantEnv+"="+strconv.Itoa(pop3.GrantFD))
	proc, err := os.StartProcess(path, e.Argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{in, out, os.Stderr, r3, wg},
	})
	r3.Close()
	wg.Close()
	if a.TLS != nil {
		in.Close() // the child's end, now the child's alone
	}
	if err != nil {
		return Outcome{Temporary, fmt.Errorf("run %s: %w", path, err)}
	}
	if a.TLS == nil && e.Conn != nil {
		e.Conn.Release()
		defer func() {
			e.Conn.Reclaim()
			e.Stdin, e.Stdout = e.Conn.In, e.Conn.Out
		}()
	}

	req := make([]byte, 0, len(a.User)+len(a.Secret)+len(a.Stamp)+3)
	req = append(append(append(append(append(append(req, a.User...), 0), a.Secret...), 0), a.Stamp...), 0)
	_, werr := w3.Write(req) // a checker that exits unread gives EPIPE: its status says more
	clear(req)
	w3.Close()
	_ = werr

	granted := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := rg.Read(b[:])
		if n > 0 && a.OnLogin != nil {
			a.OnLogin()
		}
		// The child waits for this before it answers the client: the
		// grant is recorded by then.
		rg.Close()
		granted <- n > 0
	}()
	var relayed chan struct{}
	if a.TLS != nil {
		relayed = relay(a.TLS, local, a.Pending, e.timeout())
	}

	state, err := proc.Wait()
	// The child is gone: a login byte it wrote is in the pipe now. A
	// grandchild still holding the pipe must not keep us waiting.
	rg.SetReadDeadline(time.Now().Add(time.Second))
	loggedIn := <-granted
	if relayed != nil {
		// What the child wrote before it exited is in the socket pair;
		// pass it on.
		local.SetReadDeadline(time.Now().Add(e.timeout()))
		<-relayed
	}
	if err != nil {
		return Outcome{Temporary, err}
	}
	res := classify(state, loggedIn)
	if relayed != nil && res.Kind == LoggedIn {
		// The session is over: end TLS. After a failed login the
		// connection stays, for the session's refusal.
		a.TLS.Close()
	}
	return res
}

func (e *Exec) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return pop3.DefaultTimeout
}

// classify maps the child's end to an outcome. After a login, the status
// is the session's, not the checker's: the session is over either way.
func classify(state *os.ProcessState, loggedIn bool) Outcome {
	ws, _ := state.Sys().(syscall.WaitStatus)
	switch {
	case loggedIn:
		return Outcome{LoggedIn, nil}
	case ws.Signaled():
		return Outcome{Crashed, fmt.Errorf("checker killed by signal %v", ws.Signal())}
	case state.ExitCode() == 0:
		// A subprogram that does not signal logins (qmail's own
		// qmail-pop3d) ran the session: no grant, nothing to say.
		return Outcome{LoggedIn, nil}
	case state.ExitCode() == exitcode.CheckpwTemp:
		return Outcome{Temporary, errors.New("checker exited 111 (temporary trouble; its log says why)")}
	}
	return Outcome{BadLogin, fmt.Errorf("checker exited %d", state.ExitCode())}
}

// relay copies between the TLS connection and the child's socket pair
// until the child closes its end; the returned channel is closed then.
// Client to child: the pending bytes, then the stream; at the client's
// end the child's input is shut, so it sees EOF. There are no read
// deadlines here: the child enforces its own idle timeout, and when it
// exits the relay ends. Writes to the client time out after timeout.
func relay(client net.Conn, local *net.UnixConn, pending []byte, timeout time.Duration) chan struct{} {
	client.SetDeadline(time.Time{}) // the session's last read deadline is not ours
	go func() {
		if len(pending) > 0 {
			if _, err := local.Write(pending); err != nil {
				local.CloseWrite()
				return
			}
		}
		io.Copy(local, client)
		local.CloseWrite()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(idleconn.Conn{Conn: client, Timeout: timeout}, local)
	}()
	return done
}

func withoutGrantEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, pop3.GrantEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// lookPath finds prog as execvp does, in the child's PATH; a name with
// a slash is used as it is. (os/exec would do, at the cost of its
// imports in a program started per connection.)
func lookPath(prog string, env []string) (string, error) {
	if prog == "" {
		return "", errors.New("no checker program given")
	}
	if strings.Contains(prog, "/") {
		if err := executable(prog); err != nil {
			return "", fmt.Errorf("checker %s: %w", prog, err)
		}
		return prog, nil
	}
	path := "/bin:/usr/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("checker %s: not found in PATH=%s", prog, path)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("not an executable file")
	}
	return nil
}
