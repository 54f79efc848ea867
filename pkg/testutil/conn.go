package testutil

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

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
