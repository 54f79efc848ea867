package qmailqueue

import (
	"os"
	"syscall"

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
	// Fd 0 and 1 are spent; the next messages come over the channel.
	for {
		if err := qq.SendResult(ctl, code); err != nil {
			return 0 // the injector is gone; its message was answered or not, as its status said
		}
		msg, env, err := qq.ReceiveMessage(ctl)
		if err != nil {
			return 0 // the injector closed the channel: no more messages
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
func serveChannel() (*reuse.Channel, bool) {
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
	if !qq.ChannelFromParent(fd) {
		return nil, false
	}
	ch, err := reuse.NewChannel(fd)
	return ch, err == nil
}
