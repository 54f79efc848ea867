package smtpd

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
)

// socketConn is the client's socket as a net.Conn: a descriptor of its
// own, non-blocking and in the poller, so that timeouts work.
// net.FileConn does the same, but also asks the socket for its type and
// both its addresses, and sets Go's keepalive defaults: system calls on
// every session for what tcpserver has already put in the environment,
// and for keepalives that qmail never sets. Here the addresses are asked
// only when wanted (inetd sets no TCP variables).
type socketConn struct {
	f *os.File // never f.Fd(), which would make the socket blocking
}

func (c socketConn) Read(p []byte) (int, error)         { return c.f.Read(p) }
func (c socketConn) Write(p []byte) (int, error)        { return c.f.Write(p) }
func (c socketConn) Close() error                       { return c.f.Close() }
func (c socketConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c socketConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c socketConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// newSocketConn takes a copy of the socket fd. TCP_NODELAY is set as
// net.FileConn sets it: replies are written whole, and Nagle's algorithm
// would only hold back the last of a pipelined batch.
func newSocketConn(fd int) (socketConn, error) {
	nfd, err := dupCloexec(fd)
	if err != nil {
		return socketConn{}, os.NewSyscallError("fcntl", err)
	}
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return socketConn{}, os.NewSyscallError("setnonblock", err)
	}
	syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1) // not TCP: nothing to set
	return socketConn{os.NewFile(uintptr(nfd), "socket")}, nil
}

func dupCloexec(fd int) (int, error) {
	for {
		nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(nfd), nil
	}
}

func (c socketConn) LocalAddr() net.Addr  { return c.addr(syscall.Getsockname) }
func (c socketConn) RemoteAddr() net.Addr { return c.addr(syscall.Getpeername) }

// addr asks the socket for one of its addresses; nil when it has none
// that is an IP address.
func (c socketConn) addr(get func(int) (syscall.Sockaddr, error)) net.Addr {
	raw, err := c.f.SyscallConn()
	if err != nil {
		return nil
	}
	var sa syscall.Sockaddr
	raw.Control(func(fd uintptr) { sa, err = get(int(fd)) })
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *syscall.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			a.Zone = strconv.FormatUint(uint64(sa.ZoneId), 10)
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}
