package pop3

import (
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/sockaddr"
)

// FileConn is the client connection as tcpserver and inetd hand it to a
// program: read from one descriptor (0), write to another (1), which may
// be the same socket, a pipe pair or a socketpair. It is a net.Conn, so
// that TLS can run over it, and its deadlines work on sockets and pipes
// alike.
type FileConn struct {
	In, Out *os.File
}

// Stdio opens copies of descriptors 0 and 1 as a FileConn, in
// non-blocking mode, which Go's poller needs for deadlines. Copies,
// because os.Stdin may hold descriptor 0 in the poller already (when it
// was non-blocking at start-up) and a descriptor cannot be added twice.
// The mode belongs to the open socket or pipe, not the descriptor: see
// Blocking before handing the connection to a child.
func Stdio() *FileConn {
	return &FileConn{In: pollable(0, "stdin"), Out: pollable(1, "stdout")}
}

func pollable(fd int, name string) *os.File {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return os.NewFile(uintptr(fd), name) // closed: every use will fail
	}
	syscall.SetNonblock(dup, true) // a regular file refuses; it needs no deadline
	return os.NewFile(uintptr(dup), name)
}

// Blocking puts the connection back in blocking mode, as a child
// program given its descriptors expects (a C program reading a
// non-blocking socket would see EAGAIN and give up). Deadlines on c stop
// working; it may still be written to.
func (c *FileConn) Blocking() {
	for _, f := range []*os.File{c.In, c.Out} {
		if sc, err := f.SyscallConn(); err == nil {
			sc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
		}
	}
}

// Release closes the copies, taking the connection out of this
// process's poller while a child serves it: the poller would otherwise
// wake at every packet the child sends or receives. Reclaim takes new
// copies of descriptors 0 and 1, which stay open meanwhile.
func (c *FileConn) Release() { c.Close() }

// Reclaim undoes Release.
func (c *FileConn) Reclaim() {
	c.In, c.Out = pollable(0, "stdin"), pollable(1, "stdout")
}

func (c *FileConn) Read(p []byte) (int, error)  { return c.In.Read(p) }
func (c *FileConn) Write(p []byte) (int, error) { return c.Out.Write(p) }

// Close closes both descriptors.
func (c *FileConn) Close() error {
	err := c.In.Close()
	if c.Out != c.In {
		if err2 := c.Out.Close(); err == nil {
			err = err2
		}
	}
	return err
}

func (c *FileConn) LocalAddr() net.Addr  { return fileAddr{} }
func (c *FileConn) RemoteAddr() net.Addr { return fileAddr{} }

func (c *FileConn) SetDeadline(t time.Time) error {
	err := c.In.SetReadDeadline(t)
	if err2 := c.Out.SetWriteDeadline(t); err == nil {
		err = err2
	}
	return err
}
func (c *FileConn) SetReadDeadline(t time.Time) error  { return c.In.SetReadDeadline(t) }
func (c *FileConn) SetWriteDeadline(t time.Time) error { return c.Out.SetWriteDeadline(t) }

type fileAddr struct{}

func (fileAddr) Network() string { return "fd" }
func (fileAddr) String() string  { return "stdio" }

// NoDelay turns off Nagle's algorithm on fd when it is a TCP socket
// (tcpserver leaves it on unless run with -D). Every response goes out
// in one write, so nothing is gained by delaying small segments, and a
// delayed last segment meets the client's delayed ACK: a 40 ms stall per
// message. Other kinds of descriptor are left alone.
func NoDelay(fd int) {
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// PeerIP is the address of the peer of the socket on fd, for when
// TCPREMOTEIP is not set (inetd); "" when fd is not an IP socket.
func PeerIP(fd int) string {
	if ap := sockaddr.Peer(fd); ap.IsValid() {
		return ap.Addr().String()
	}
	return ""
}
