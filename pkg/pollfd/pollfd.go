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
// Only descriptors that no program outside quail's reads or writes
// expecting blocking belong here: the non-blocking flag belongs to the
// open file description, so it would also change a log pipe or a
// terminal shared with other programs. (qmail-send's fd 2, the pipe from
// qmail-lspawn, is also inherited by the qmail-queue it runs for each
// bounce, as in qmail; being a read end, it takes no writes either way.)
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

// Inherited is File for a descriptor a program was started with, when
// it is a pipe or a socket, as qmail-start gives. Anything else (a
// terminal, when an admin runs the program by hand) is left as it is
// and returned as os.NewFile would: setting a terminal non-blocking
// would outlive the program and break the shell. So would a descriptor
// that is not open; its first read or write reports the trouble.
func Inherited(fd int, name string) *os.File {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && (st.Mode&unix.S_IFMT == unix.S_IFIFO || st.Mode&unix.S_IFMT == unix.S_IFSOCK) {
		if f, err := File(fd, name); err == nil {
			return f
		}
	}
	return os.NewFile(uintptr(fd), name)
}
