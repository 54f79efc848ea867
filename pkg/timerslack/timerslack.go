// Package timerslack starts quail's programs with timer slack: a
// millisecond for the daemons, ten for the programs run per connection.
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
//
// The monitor also hands the processor of a goroutine blocked in a
// system call to another goroutine that is ready to run, and a larger
// slack delays that: qmail-send, whose goroutines fsync while others
// read delivery reports, keeps a millisecond. A program serving one
// connection does one thing at a time and waits for its client between
// commands; each wait lets the monitor fall asleep and each command
// wakes it again. Ten milliseconds, the longest the monitor ever sleeps
// on its own, cut the context switches of qmail-smtpd and qmail-queue
// per message by a third in bench-smtp.sh.
package timerslack

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Slack is the timer slack, in nanoseconds, that quail's launchers give
// the programs they start.
const Slack = 1_000_000

// SessionSlack is the timer slack, in nanoseconds, that qmail-tcpserver
// gives the program it runs for a connection (qmail-smtpd, qmail-popup)
// and so everything that program starts in turn (qmail-queue,
// checkpassword, qmail-pop3d).
const SessionSlack = 10_000_000

// Start calls start, which must create a process (exec.Cmd.Start,
// os.StartProcess), on an OS thread whose timer slack is at least Slack,
// so that the new process inherits it. A larger slack, set by the admin
// (systemd's TimerSlackNSec=) or by our own parent, is kept. The thread
// keeps the slack afterwards, which is what quail's own timers can
// tolerate too.
func Start(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	raise(Slack)
	return start()
}

// StartSession is Start with SessionSlack. The thread gets its own
// slack back afterwards: the launcher keeps a millisecond.
func StartSession(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if old, raised := raise(SessionSlack); raised {
		defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	}
	return start()
}

// raise makes the calling thread's timer slack at least ns, and reports
// the slack it had and whether it changed it. It does nothing where the
// kernel has no timer slack, as that costs only CPU time.
func raise(ns int) (old int, raised bool) {
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || cur >= ns {
		return cur, false
	}
	return cur, unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0) == nil
}
