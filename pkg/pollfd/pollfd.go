// Package pollfd makes the pipes and sockets between quail's programs
// wait in the Go runtime's poller instead of in blocking system calls.
//
// A goroutine blocked in read(2) keeps its processor "in a system call".
// The runtime's monitor thread (sysmon) then cannot sleep: it polls that
// processor every tick, and after 10 ms it signals the thread and hands
// the processor to another. qmail-send, qmail-lspawn, qmail-clean and
// the qmail-local workers each spend most of their life waiting on such
// a descriptor for the next message, so each of them paid that cycle
// for every message: monitor wake-ups, a SIGURG and its sigreturn, and
// the futex calls to get a processor back. A goroutine waiting in the
// poller gives its processor back, and the monitor sleeps until there is
// work. In bench-smtp.sh that was 7 of 96 context switches per message.
//
// Only descriptors private to two of quail's programs belong here: the
// non-blocking flag belongs to the open file description, so it would
// also change a log pipe or a terminal shared with other programs, which
// expect their writes to block.
package pollfd

import (
	"os"

	"golang.org/x/sys/unix"
)

// File returns fd as an *os.File whose reads and writes wait in the
// poller. It sets the descriptor non-blocking, so no other program may
// share its open file description expecting blocking reads or writes.
func File(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, &os.PathError{Op: "set non-blocking", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Inherited is File for a descriptor a program was started with: if it
// cannot be made non-blocking (it is not open, say) it is returned as
// os.NewFile would, and the first read or write reports the trouble.
func Inherited(fd int, name string) *os.File {
	if f, err := File(fd, name); err == nil {
		return f
	}
	return os.NewFile(uintptr(fd), name)
}
