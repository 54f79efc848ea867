package qmailqueue

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/pkg/reuse"
)

// Main is the qmail-queue command: one message, as qmail's, or every
// message its injector sends when that injector asks for serve mode
// (package qq's Keeper) and the request is genuine.
func Main() int {
	ctl, ok := serveChannel()
	code := Run(os.Stdin, os.Stdout)
	if !ok {
		return code
	}
	// Fd 0 and 1 are spent. Closing them before answering matters when
	// the first message failed early: an injector still writing it, or
	// its envelope, must get EPIPE, as from a qmail-queue that exits, not
	// wait on a pipe nobody reads. The next messages come over the
	// channel, and each one's pipes are closed before its answer too.
	reuse.DetachStdio()
	for {
		if err := qq.SendResult(ctl, code); err != nil {
			return code // the injector is gone: the status is all that is left to tell
		}
		// An injector that sends nothing for Death is taken to be gone.
		ctl.SetReadDeadline(time.Now().Add(Death))
		msg, env, err := qq.ReceiveMessage(ctl)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded):
			return 0 // no more messages, and none in flight
		case err != nil:
			// A message was sent but cannot be read: never exit 0 with a
			// message unanswered (the injector reports it as a crash).
			return exitcode.QQBug
		}
		code = runOne(msg, env)
		msg.Close()
		env.Close()
	}
}

// serveChannel returns fd 3, the channel to the injector, when serve mode
// was asked for and may be trusted: the program the injector ran (named
// in qq.EnvServe) is this very executable, not a wrapper that ran it, and
// the channel was made by this process's parent. Otherwise qmail-queue
// queues one message, as qmail's, and fd 3 is not touched again.
func serveChannel() (*pollfd.Channel, bool) {
	prog, ok := os.LookupEnv(qq.EnvServe)
	if !ok {
		return nil, false
	}
	os.Unsetenv(qq.EnvServe)
	const fd = qq.ServeFD
	syscall.CloseOnExec(fd)
	if !reuse.IsExecutable(prog) {
		return nil, false
	}
	if !reuse.FromParent(fd) {
		return nil, false
	}
	ch, err := pollfd.NewChannel(fd)
	return ch, err == nil
}
