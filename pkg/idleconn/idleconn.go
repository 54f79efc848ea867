// Package idleconn drops a peer that goes quiet: every read and every
// write on a connection gets its own deadline, as qmail's timeoutsmtpd
// and qmail-pop3d's 1200 seconds do, however long the session lasts.
package idleconn

import (
	"net"
	"time"
)

// Conn sets a deadline of Timeout from now before every Read and Write
// on the Conn it wraps: a client that stops sending, or stops taking
// what it is sent, is dropped after Timeout. A Timeout of 0 sets none.
type Conn struct {
	net.Conn
	Timeout time.Duration
}

func (c Conn) Read(p []byte) (int, error) {
	if c.Timeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	}
	return c.Conn.Read(p)
}

func (c Conn) Write(p []byte) (int, error) {
	if c.Timeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	}
	return c.Conn.Write(p)
}
