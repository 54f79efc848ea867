package idleconn

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestIdleDropped: a read times out after Timeout of silence, however
// long the connection has lived, and a write the peer never takes too.
func TestIdleDropped(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := Conn{Conn: a, Timeout: 50 * time.Millisecond}
	go func() {
		for i := 0; i < 3; i++ {
			time.Sleep(30 * time.Millisecond) // each gap below Timeout
			b.Write([]byte("x"))
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 3; i++ {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	start := time.Now()
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent peer: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("timed out after %v, Timeout is 50ms", d)
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("peer not reading: %v, want a deadline error", err)
	}
}
