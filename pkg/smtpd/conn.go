package smtpd

import (
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/sockaddr"
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
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return socketConn{}, os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return socketConn{}, os.NewSyscallError("setnonblock", err)
	}
	unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // not TCP: nothing to set
	return socketConn{os.NewFile(uintptr(nfd), "socket")}, nil
}

func (c socketConn) LocalAddr() net.Addr  { return c.addr(sockaddr.Local) }
func (c socketConn) RemoteAddr() net.Addr { return c.addr(sockaddr.Peer) }

// addr asks the socket for one of its addresses; nil when it has none
// that is an IP address.
func (c socketConn) addr(get func(int) netip.AddrPort) net.Addr {
	raw, err := c.f.SyscallConn()
	if err != nil {
		return nil
	}
	var ap netip.AddrPort
	raw.Control(func(fd uintptr) { ap = get(int(fd)) })
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
