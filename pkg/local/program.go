package local

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/dotqmail"
)

// program runs a '|' line as qmail-local does: /bin/sh -c command in the
// home directory, with the delivery's environment, the message (from
// byte 0, without Return-Path and Delivered-To) on its standard input,
// and its standard output and error going to the report. Its exit
// status means what dotqmail.ProgramResult says.
//
// The program runs in a process group of its own, so that a cancelled
// delivery can kill it and whatever it started. It inherits no other
// descriptor of the process: Go opens every file close-on-exec, and
// CloseOnExec deals with those the process was started with. Its signal
// dispositions are the defaults (SIGPIPE included) as long as the
// process does not ignore them itself (signal.Ignore).
func (d *delivery) program(command string) (dotqmail.Outcome, error) {
	stdin, finishStdin, err := d.programStdin()
	if err != nil {
		return dotqmail.Temporary, err
	}
	defer finishStdin()
	outR, outW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return dotqmail.Temporary, tempFailure("Unable to fork: " + dotqmail.SysText(err) + ". (#4.3.0)")
	}
	defer outR.Close()

	cmd := exec.CommandContext(d.ctx, "/bin/sh", "-c", command)
	cmd.Dir = d.req.Home
	cmd.Env = d.env
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	outW.Close()
	stdin.Close()
	if err != nil {
		if d.ctx.Err() != nil {
			return dotqmail.Temporary, interrupted(d.ctx)
		}
		return dotqmail.Temporary, tempFailure("Unable to run /bin/sh: " + dotqmail.SysText(err) + ". (#4.3.0)")
	}

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.CopyBuffer(&drain{w: d.out}, outR, make([]byte, 4096))
	}()
	cmd.Wait() // the status is in cmd.ProcessState
	// As in qmail, the report ends when everyone holding the output pipe
	// (the program's own children too) has closed it; a cancelled
	// delivery stops waiting.
	select {
	case <-copied:
	case <-d.ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what is left of its group
		outR.SetReadDeadline(time.Now())
		<-copied
	}

	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return dotqmail.Temporary, tempFailure("Unable to read the status of /bin/sh. (#4.3.0)")
	}
	if ws.Signaled() && d.ctx.Err() != nil {
		return dotqmail.Temporary, interrupted(d.ctx)
	}
	outcome := dotqmail.ProgramResult(ws.ExitStatus(), ws.Signaled())
	if outcome.Failed() {
		return outcome, dotqmail.Failure(outcome.Text(), outcome == dotqmail.Permanent)
	}
	return outcome, nil
}

// drain writes to w until a write fails, and then discards: the program
// must never block on a full output pipe because the report's reader
// went away.
type drain struct {
	w   io.Writer
	err error
}

func (d *drain) Write(p []byte) (int, error) {
	if d.err == nil {
		_, d.err = d.w.Write(p)
	}
	return len(p), nil
}

// programStdin is a program's standard input and what to do once the
// program is done. It is a new descriptor on the message file, opened
// through /proc/self/fd: the program gets what qmail-local gives it, the
// file itself at byte 0 (seekable, as some programs expect), with an
// offset of its own, so concurrent deliveries of one file do not disturb
// each other. When that cannot be opened (no /proc, or a file the
// delivering user may not open by name), it is a pipe that a goroutine
// feeds from the message.
func (d *delivery) programStdin() (*os.File, func(), error) {
	if !d.opt.noReopen {
		if f, err := reopen(d.msg); err == nil {
			return f, func() {}, nil
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, tempFailure("Unable to fork: " + dotqmail.SysText(err) + ". (#4.3.0)")
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		io.CopyBuffer(w, struct{ io.Reader }{d.message()}, make([]byte, bufSize))
		w.Close()
	}()
	return r, func() {
		w.Close() // stops a copy to a reader that is gone or stopped reading
		<-fed
	}, nil
}

// reopen opens the regular file f again for reading, as a new open file
// description starting at byte 0.
func reopen(f *os.File) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nf *os.File
	var oerr error
	if err := rc.Control(func(fd uintptr) {
		nf, oerr = os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10))
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, oerr
	}
	// The same file, not whatever a /proc that is not procfs had there.
	if nst, err := nf.Stat(); err != nil || !os.SameFile(st, nst) {
		nf.Close()
		return nil, errors.New("reopened a different file")
	}
	return nf, nil
}

// CloseOnExec marks every descriptor above 2 of this process
// close-on-exec, so that delivery programs inherit none of them. Go opens
// its own files close-on-exec; this is for the descriptors the process
// was given when it started, which exec would otherwise pass on to every
// program. A program that runs deliveries (qmail-local, the qmail-lspawn
// worker) calls it once at start, before any delivery; it changes
// nothing else.
func CloseOnExec() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}
