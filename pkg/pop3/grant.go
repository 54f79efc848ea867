package pop3

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// GrantEnv names the environment variable in which qmail-popup tells its
// child the descriptor of the login pipe: the program checkpassword runs
// after a successful login (qmail-pop3d) writes one byte on it, and
// qmail-popup, still privileged, then records the client's address for
// POP-before-SMTP (package popgrant). The mailbox's owner can do nothing
// with the pipe but say what is true: the login succeeded.
const GrantEnv = "POP3GRANTFD"

// loginAckWait bounds how long SignalLogin waits for qmail-popup to
// close its end of the login pipe.
var loginAckWait = 5 * time.Second

// GrantFD is the descriptor qmail-popup uses, after fd 3 (the
// checkpassword input).
const GrantFD = 4

// SignalLogin writes the login byte on the descriptor $POP3GRANTFD names,
// waits until qmail-popup has closed the pipe's other end (it does so
// once it has recorded the login), and closes its own. The client's +OK
// thus comes after the POP-before-SMTP grant is on disk, as it does when
// relay-ctrl runs between checkpassword and qmail-pop3d: a client that
// sends mail right after logging in is let relay. The wait is bounded,
// so a qmail-popup that never closes it costs a few seconds, no more.
// SignalLogin does nothing when the variable is unset or does not name
// an open pipe, so a stray variable cannot make it write into a file or
// a socket.
func SignalLogin() {
	v, ok := os.LookupEnv(GrantEnv)
	if !ok {
		return
	}
	os.Unsetenv(GrantEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	if n, _ := unix.Write(fd, []byte{1}); n == 1 {
		waitReaderGone(fd, loginAckWait)
	}
	unix.Close(fd)
}

// waitReaderGone waits, at most d, until the pipe whose write end is fd
// has no reader left: poll(2) then reports POLLERR on it.
func waitReaderGone(fd int, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n > 0 {
			return
		}
	}
}
