package pop3

import (
	"os"
	"testing"
	"time"
)

// TestWatchdog: the timer fires when the client is silent for the
// timeout, and not while it keeps talking.
func TestWatchdog(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fired := make(chan time.Time, 1)
	start := time.Now()
	c := NewWatchdogConn(r, w, 300*time.Millisecond, func() { fired <- time.Now() })
	go func() {
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte("x"))
		}
	}()
	buf := make([]byte, 1)
	for range 5 {
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case at := <-fired:
		t.Fatalf("fired after %v while the client talked every 100 ms", at.Sub(start))
	default:
	}
	quiet := time.Now()
	at := <-fired
	if d := at.Sub(quiet); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("fired %v after the client went quiet, want about 300ms", d)
	}
	c.Close()
}
