// Package timerslack starts quail's programs with a millisecond of timer
// slack.
//
// Every Go process has a monitor thread (sysmon) that, while any of the
// process's goroutines is running or in a system call, wakes every 20 µs
// to look for stuck system calls and long-running goroutines. A mail
// program wakes for every message and is busy for a millisecond or two,
// so it pays dozens of those sleeps per message; on a virtual machine,
// where each sleep is a costly timer interrupt and context switch, they
// were an eighth of all of quail's CPU time under load.
//
// Timer slack (prctl(2), PR_SET_TIMERSLACK) lets the kernel run a
// thread's timers up to that much late so that it can fire several at
// once. A process inherits the slack of the thread that forked it and
// keeps it across execve, and every thread it creates inherits it in
// turn, the monitor thread included. quail's timers are timeouts of
// seconds and retry schedules of minutes: a millisecond late costs
// nothing, and the monitor then wakes about once a millisecond instead
// of fifty times. systemd's TimerSlackNSec= sets the same thing for a
// whole service.
package timerslack

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Slack is the timer slack, in nanoseconds, that quail's launchers give
// the programs they start.
const Slack = 1_000_000

// Start calls start, which must create a process (exec.Cmd.Start,
// os.StartProcess), on an OS thread whose timer slack is at least Slack,
// so that the new process inherits it. A larger slack, set by the admin
// (systemd's TimerSlackNSec=) or by our own parent, is kept. The thread
// keeps the slack afterwards, which is what quail's own timers can
// tolerate too.
func Start(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	raise()
	return start()
}

// raise makes the calling thread's timer slack at least Slack. It does
// nothing where the kernel has no timer slack, as that costs only CPU
// time.
func raise() {
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || cur >= Slack {
		return
	}
	unix.Prctl(unix.PR_SET_TIMERSLACK, Slack, 0, 0, 0)
}
