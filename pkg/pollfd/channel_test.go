package pollfd

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// channelPair is a Channel, closed when the test ends, and the raw
// descriptor of its other end.
func channelPair(t *testing.T) (*Channel, int) {
	t.Helper()
	a, b := pair(t)
	ch, err := NewChannel(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch, b
}

// TestChannelReceive: a packet with more descriptors than asked for is
// malformed and its descriptors closed; a deadline ends the wait.
func TestChannelReceive(t *testing.T) {
	ch, b := channelPair(t)
	defer syscall.Close(b)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := syscall.Sendmsg(b, []byte("x"), syscall.UnixRights(int(w.Fd()), int(w.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	buf := make([]byte, 16)
	if _, fds, err := ch.Receive(buf, 1); err != ErrMalformed || fds != nil {
		t.Errorf("two descriptors where one was asked for: %v, %v", fds, err)
	}
	// Every copy of the pipe's write end is closed again: EOF.
	if got, err := io.ReadAll(r); err != nil || len(got) != 0 {
		t.Errorf("pipe: %q, %v; the extra descriptors were kept", got, err)
	}
	ch.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := ch.Receive(buf, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Receive past the deadline: %v", err)
	}
	ch.SetReadDeadline(time.Time{})
	syscall.Sendmsg(b, []byte("done"), nil, nil, 0)
	if n, fds, err := ch.Receive(buf, 0); err != nil || string(buf[:n]) != "done" || len(fds) != 0 {
		t.Errorf("Receive: %q %v %v", buf[:n], fds, err)
	}
	syscall.Close(b)
	if _, _, err := ch.Receive(buf, 0); err != io.EOF {
		t.Errorf("Receive after the other end closed: %v, want io.EOF", err)
	}
}

// TestChannelDroppedDescriptors: descriptors the kernel drops (more than
// the room Receive made for them) make a malformed packet whose error
// names the open-file limit, the cause an admin can act on.
func TestChannelDroppedDescriptors(t *testing.T) {
	ch, b := channelPair(t)
	defer syscall.Close(b)
	fds := []int{0, 0, 0, 0, 0}
	if err := syscall.Sendmsg(b, []byte("x"), syscall.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
	_, got, err := ch.Receive(make([]byte, 16), 1)
	if !errors.Is(err, ErrMalformed) || got != nil || !strings.Contains(err.Error(), "open-file limit") {
		t.Errorf("five descriptors where one was asked for: %v, %v; want ErrMalformed naming the open-file limit", got, err)
	}
}
