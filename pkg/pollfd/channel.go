package pollfd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Channel is one end of a SOCK_SEQPACKET socket pair, used through the
// poller: one packet per Send and Receive, with descriptors passed along
// (SCM_RIGHTS). Its methods are safe for concurrent use.
type Channel struct {
	f  *os.File
	rc syscall.RawConn
}

// NewChannel takes fd, a SOCK_SEQPACKET socket, for the Channel, which
// then owns it.
func NewChannel(fd int) (*Channel, error) {
	f, err := File(fd, "channel")
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Channel{f: f, rc: rc}, nil
}

// NewPair makes a channel: ours, close-on-exec, and theirs, for a child
// process to inherit as one of its descriptors.
func NewPair() (ours *Channel, theirs *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if ours, err = NewChannel(fds[0]); err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return ours, os.NewFile(uintptr(fds[1]), "channel"), nil
}

// Send sends p as one packet, with fds passed along when given.
func (c *Channel) Send(p []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = syscall.Sendmsg(int(fd), p, oob, nil, syscall.MSG_NOSIGNAL)
		return serr != syscall.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// ErrMalformed is a packet that carries more descriptors than asked for,
// or was cut short, or whose descriptors the kernel dropped.
var ErrMalformed = errors.New("malformed packet on a channel")

// Receive waits for one packet, reads its data into buf and returns the
// descriptors it carries, at most maxFDs (the caller owns them; any
// others are closed and make the packet malformed). A closed channel is
// io.EOF.
func (c *Channel) Receive(buf []byte, maxFDs int) (n int, fds []int, err error) {
	oob := make([]byte, syscall.CmsgSpace(4*max(maxFDs, 1)))
	var (
		oobn, flags int
		rerr        error
	)
	err = c.rc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_CMSG_CLOEXEC)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, nil, err
	}
	fds = rights(oob[:oobn])
	if n == 0 && len(fds) == 0 {
		return 0, nil, io.EOF
	}
	if len(fds) > maxFDs || flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		if flags&syscall.MSG_CTRUNC != 0 {
			// The kernel dropped descriptors: more came than there
			// was room for, or it could not install them.
			return 0, nil, fmt.Errorf("%w: descriptors sent with it were dropped (more than expected, or this process is at its open-file limit, ulimit -n)", ErrMalformed)
		}
		return 0, nil, ErrMalformed
	}
	return n, fds, nil
}

// SetReadDeadline bounds the wait of Receive, which then fails with an
// error wrapping os.ErrDeadlineExceeded.
func (c *Channel) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// CloseWrite shuts down this end's sending side: the other end receives
// io.EOF, and this end can still receive what it has coming.
func (c *Channel) CloseWrite() error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}

// Close closes this end; the other end then receives io.EOF.
func (c *Channel) Close() error { return c.f.Close() }

// rights returns the descriptors an SCM_RIGHTS message carries.
func rights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}
