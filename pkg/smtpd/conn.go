package smtpd

import (
	"net"
	"time"
)

// timeoutConn gives every Read and Write on a connection its own deadline,
// qmail's timeoutsmtpd: a client that stops sending, or stops reading our
// replies, is dropped after that long.
type timeoutConn struct {
	net.Conn
	d time.Duration
}

func (c timeoutConn) Read(p []byte) (int, error) {
	if c.d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.d))
	}
	return c.Conn.Read(p)
}

func (c timeoutConn) Write(p []byte) (int, error) {
	if c.d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.d))
	}
	return c.Conn.Write(p)
}
