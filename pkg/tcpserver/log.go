package tcpserver

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The log is tcpserver's, line for line, down to the "tcpserver:" name,
// because log analysers and fail2ban filters match these texts.
const (
	logPrefix  = "tcpserver: "
	dropPrefix = "tcpserver: warning: dropping connection, "
	fatalText  = "tcpserver: fatal: "
)

// Wait statuses that tcpserver's children exited with when they ran no
// program: 100 for a deny, 111 for a dropped connection.
const (
	wstatDeny = 100 << 8
	wstatDrop = 111 << 8
)

// logger writes whole lines, each with one write, so that lines from
// concurrent connections never interleave.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) write(s string) {
	l.mu.Lock()
	io.WriteString(l.w, s)
	l.mu.Unlock()
}

func statusLine(n, limit int) string {
	return logPrefix + "status: " + strconv.Itoa(n) + "/" + strconv.Itoa(limit) + "\n"
}

// connLine is tcpserver's "ok" or "deny" line:
// "ok PID LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:REMOTEINFO:REMOTEPORT".
// Every field is made safe as tcpserver's safecats does, which turns the
// colons of an IPv6 address into "?" so that the fields still split.
func connLine(verdict string, pid int, f *Facts) string {
	var b strings.Builder
	b.WriteString(logPrefix)
	b.WriteString(verdict)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(pid))
	b.WriteByte(' ')
	if f.HasLocalHost {
		safe(&b, f.LocalHost)
	}
	b.WriteByte(':')
	safe(&b, IPString(f.Local.Addr()))
	b.WriteByte(':')
	safe(&b, strconv.Itoa(int(f.Local.Port())))
	b.WriteByte(' ')
	if f.HasRemoteHost {
		safe(&b, f.RemoteHost)
	}
	b.WriteByte(':')
	safe(&b, IPString(f.Remote.Addr()))
	b.WriteByte(':')
	if f.HasRemoteInfo {
		safe(&b, f.RemoteInfo)
	}
	b.WriteByte(':')
	safe(&b, strconv.Itoa(int(f.Remote.Port())))
	b.WriteByte('\n')
	return b.String()
}

// safe appends at most 100 bytes of s with every byte outside printable
// ASCII, and "%" and ":", replaced by "?"; a longer s is cut and marked
// "...". (tcpserver stopped at a NUL; our strings cannot hold one.)
func safe(b *strings.Builder, s string) {
	for i := 0; i < 100; i++ {
		if i == len(s) {
			return
		}
		c := s[i]
		if c < 33 || c > 126 || c == '%' || c == ':' {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteString("...")
}

// errText describes err in djb's words where tcpserver would have, so
// that warnings read the same as tcpserver's.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if s, ok := errnoText[errno]; ok {
			return s
		}
		return errno.Error()
	}
	return err.Error()
}

var errnoText = map[syscall.Errno]string{
	syscall.EINTR:         "interrupted system call",
	syscall.ENOMEM:        "out of memory",
	syscall.ENOENT:        "file does not exist",
	syscall.ETXTBSY:       "text busy",
	syscall.EIO:           "input/output error",
	syscall.EEXIST:        "file already exists",
	syscall.ETIMEDOUT:     "timed out",
	syscall.EINPROGRESS:   "operation in progress",
	syscall.EAGAIN:        "temporary failure",
	syscall.EPIPE:         "broken pipe",
	syscall.EPERM:         "permission denied",
	syscall.EACCES:        "access denied",
	syscall.ENXIO:         "device not configured",
	syscall.EPROTO:        "protocol error",
	syscall.EISDIR:        "is a directory",
	syscall.E2BIG:         "argument list too long",
	syscall.ENOEXEC:       "exec format error",
	syscall.EBADF:         "file descriptor not open",
	syscall.EINVAL:        "invalid argument",
	syscall.ENOTDIR:       "not a directory",
	syscall.ENFILE:        "system cannot open more files",
	syscall.EMFILE:        "process cannot open more files",
	syscall.ENOSPC:        "out of disk space",
	syscall.EADDRINUSE:    "address already used",
	syscall.EADDRNOTAVAIL: "address not available",
	syscall.ECONNRESET:    "connection reset",
	syscall.ECONNREFUSED:  "connection refused",
	syscall.ELOOP:         "symbolic link loop",
	syscall.ENAMETOOLONG:  "file name too long",
}
