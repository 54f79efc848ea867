package pop3

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// GrantEnv names the environment variable in which qmail-popup tells its
// child the descriptor of the login pipe: the program checkpassword runs
// after a successful login (qmail-pop3d) writes one byte on it, and
// qmail-popup, still privileged, then records the client's address for
// POP-before-SMTP (package popgrant). The mailbox's owner can do nothing
// with the pipe but say what is true: the login succeeded.
const GrantEnv = "POP3GRANTFD"

// GrantFD is the descriptor qmail-popup uses, after fd 3 (the
// checkpassword input).
const GrantFD = 4

// SignalLogin writes the login byte on the descriptor $POP3GRANTFD names
// and closes it. It does nothing when the variable is unset or does not
// name an open pipe, so a stray variable cannot make it write into a
// file or a socket.
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
	unix.Write(fd, []byte{1})
	unix.Close(fd)
}
