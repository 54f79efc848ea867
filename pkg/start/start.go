// Package start is qmail-start: it starts the delivery side as one
// supervised unit, qmail-send with qmail-lspawn, qmail-rspawn and
// qmail-clean joined to it by pipes, each under its own account when run
// as root (reference §2.7, §11.2), and an optional logger reading
// qmail-send's log.
//
// Unlike qmail's, which execs qmail-send in its own place, quail's
// qmail-start stays as the parent: it forwards TERM, ALRM and HUP to
// qmail-send, and exits with qmail-send's status once every child has
// ended, so supervise and systemd see one process that stops cleanly.
package start

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/quail-mta/quail/pkg/privsep"
	qmailsend "github.com/quail-mta/quail/pkg/send"
	"github.com/quail-mta/quail/pkg/timerslack"
)

// Options are qmail-start's.
type Options struct {
	Root            string
	DefaultDelivery string
	Logger          []string // program and arguments; empty: log to Stdout
	Stdout, Stderr  io.Writer
}

type pipe struct{ r, w *os.File }

func newPipe() (pipe, error) {
	r, w, err := os.Pipe()
	return pipe{r, w}, err
}

// Run starts the unit and waits for it. It returns qmail-send's exit
// status.
func Run(o Options) (int, error) {
	// Caught before any program starts: a TERM that came between the
	// first start and the catching would kill qmail-start alone and
	// leave the unit running with no one to stop it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP, syscall.SIGINT)
	defer signal.Stop(sigs)
	lin, err1 := newPipe()
	lout, err2 := newPipe()
	rin, err3 := newPipe()
	rout, err4 := newPipe()
	cin, err5 := newPipe()
	cout, err6 := newPipe()
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return 111, fmt.Errorf("qmail-start: unable to create pipes: %w", err)
	}
	bin := func(name string) string { return filepath.Join(o.Root, "bin", name) }
	ids, err := accounts()
	if err != nil {
		return 111, err
	}

	var logW *os.File
	var children []*exec.Cmd
	if len(o.Logger) > 0 {
		logp, err := newPipe()
		if err != nil {
			return 111, err
		}
		logger := command(o, o.Logger[0], o.Logger[1:], ids["logger"])
		logger.Stdin = logp.r
		if err := timerslack.Start(logger.Start); err != nil {
			return 111, fmt.Errorf("qmail-start: unable to start logger %s: %w", o.Logger[0], err)
		}
		logp.r.Close()
		logW = logp.w
		children = append(children, logger)
	}

	lspawn := command(o, bin("qmail-lspawn"), []string{o.DefaultDelivery}, ids["lspawn"])
	lspawn.Stdin, lspawn.Stdout = lin.r, lout.w
	rspawn := command(o, bin("qmail-rspawn"), nil, ids["rspawn"])
	rspawn.Stdin, rspawn.Stdout = rin.r, rout.w
	clean := command(o, bin("qmail-clean"), nil, ids["clean"])
	clean.Stdin, clean.Stdout = cin.r, cout.w
	send := command(o, bin("qmail-send"), nil, ids["send"])
	// qmail-send's descriptors, as qmail wires them: 0 log, 1/2 lspawn,
	// 3/4 rspawn, 5/6 clean.
	var sendLog io.Writer = o.Stdout
	if logW != nil {
		sendLog = logW
	}
	send.Stdin = nil
	send.Stdout, send.Stderr = lin.w, lout.r
	// fd 7, named in the environment: qmail-send closes it once it
	// catches its signals (qmailsend.ReadyEnv).
	ready, err := newPipe()
	if err != nil {
		return 111, fmt.Errorf("qmail-start: unable to create pipes: %w", err)
	}
	send.ExtraFiles = []*os.File{rin.w, rout.r, cin.w, cout.r, ready.w}
	send.Env = append(os.Environ(), qmailsend.ReadyEnv+"=7")
	logFile, isFile := sendLog.(*os.File)
	if !isFile {
		return 111, errors.New("qmail-start: the log must be a file descriptor")
	}
	send.Stdin = logFile

	for _, c := range []*exec.Cmd{lspawn, rspawn, clean, send} {
		if err := timerslack.Start(c.Start); err != nil {
			stopAll(children)
			return 111, fmt.Errorf("qmail-start: unable to start %s: %w", c.Path, err)
		}
		children = append(children, c)
	}
	// Our copies must go, so each child sees EOF when its peer ends.
	for _, f := range []*os.File{lin.r, lin.w, lout.r, lout.w, rin.r, rin.w, rout.r, rout.w, cin.r, cin.w, cout.r, cout.w} {
		f.Close()
	}
	if logW != nil {
		logW.Close()
	}
	ready.w.Close()

	// A signal is passed on only once qmail-send catches signals: before
	// that, the Go runtime would let it kill qmail-send. qmail-send
	// closes its end of the ready pipe then, or by exiting.
	isReady := make(chan struct{})
	go func() {
		var b [1]byte
		ready.r.Read(b[:])
		ready.r.Close()
		close(isReady)
	}()
	done := make(chan error, 1)
	go func() { done <- send.Wait() }()
	var sendErr error
	var held []os.Signal
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGINT {
				sig = syscall.SIGTERM
			}
			if isReady != nil {
				held = append(held, sig)
				continue
			}
			send.Process.Signal(sig)
		case <-isReady:
			isReady = nil
			for _, sig := range held {
				send.Process.Signal(sig)
			}
			held = nil
		case sendErr = <-done:
			break wait
		}
	}
	for _, c := range children {
		if c != send {
			c.Wait()
		}
	}
	return exitStatus(sendErr), nil
}

func command(o Options, path string, args []string, cred *syscall.Credential) *exec.Cmd {
	c := exec.Command(path, args...)
	c.Dir = o.Root
	c.Stderr = o.Stderr
	if cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return c
}

// accounts are the identities of the unit's programs in a root install
// (nil entries: stay as we are). qmail-lspawn stays root, in group qmail,
// because it must become each mailbox's owner.
func accounts() (map[string]*syscall.Credential, error) {
	ids := map[string]*syscall.Credential{}
	if !privsep.Root() {
		return ids, nil
	}
	qmailGID, err := privsep.LookupGroup(privsep.GroupQmail)
	if err != nil {
		return nil, err
	}
	for role, name := range map[string]string{"send": privsep.Send, "clean": privsep.Queue, "rspawn": privsep.Remote, "logger": privsep.Log} {
		u, err := privsep.Lookup(name)
		if err != nil {
			return nil, err
		}
		gid := qmailGID
		if role == "logger" {
			gid = u.GID
		}
		ids[role] = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(gid), Groups: []uint32{}}
	}
	ids["lspawn"] = &syscall.Credential{Uid: 0, Gid: uint32(qmailGID), Groups: []uint32{}}
	return ids, nil
}

func stopAll(cs []*exec.Cmd) {
	for _, c := range cs {
		c.Process.Kill()
		c.Wait()
	}
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if code := exit.ExitCode(); code >= 0 {
			return code
		}
	}
	return 111
}
