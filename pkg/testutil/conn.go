package testutil

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TCPPair makes a loopback connection over network ("tcp4" or "tcp6")
// and returns its accepted end as a file, the way a launcher hands a
// connection to its program, and the client's end. Both are closed when
// the test ends.
func TCPPair(tb testing.TB, network string) (server *os.File, client net.Conn) {
	tb.Helper()
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		tb.Fatalf("no %s loopback: %v", network, err)
	}
	defer ln.Close()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	accepted, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	defer accepted.Close()
	server, err = accepted.(*net.TCPConn).File()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { server.Close() })
	return server, client
}

// Talk connects to addr, sends in (if any), and returns what the server
// sends until it closes the connection, within 15 seconds.
func Talk(tb testing.TB, addr, in string) string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if in != "" {
		io.WriteString(c, in)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("reading from %s: %v", addr, err)
	}
	return string(out)
}

// ParseEnv is the environment env(1) printed, as a map.
func ParseEnv(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}
