package localworker

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/pollfd"
)

// TestServeWorkerKeepsItsSocket: the worker's socket must stay open for
// the whole session, even when nothing but its number is in use and the
// garbage collector runs (an *os.File finalizer once closed fd 3 under a
// busy worker, which then answered into a message file and made
// qmail-lspawn deliver again).
func TestServeWorkerKeepsItsSocket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := testChannel(t, fds[0])
	home := t.TempDir()
	if err := maildir.Make(filepath.Join(home, "Maildir"), 0o700); err != nil {
		t.Fatal(err)
	}
	msgPath := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(msgPath, []byte("Subject: x\n\nbody\n"), 0o644)
	done := make(chan error, 1)
	go func() { done <- ServeWorker(fds[1], t.TempDir(), nil) }()

	deliver := func(id uint64) {
		t.Helper()
		msg, err := os.Open(msgPath)
		if err != nil {
			t.Fatal(err)
		}
		defer msg.Close()
		rq := request{id, "joe", home, "joe", "", "", "", "a@example.org", "./Maildir/"}
		if err := sendFD(peer, rq.encode(), msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, maxPacket)
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := peer.Receive(buf, 0)
		if err != nil {
			t.Fatalf("delivery %d: no answer from the worker: %v", id, err)
		}
		rep, err := decodeReply(buf[:n])
		if err != nil || rep.id != id || rep.status != 0 {
			t.Fatalf("delivery %d: reply %+v, %v", id, rep, err)
		}
	}
	deliver(1)
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	// Files opened now would take a freed number.
	var held []*os.File
	for i := 0; i < 4; i++ {
		f, _ := os.Open(msgPath)
		held = append(held, f)
	}
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	deliver(2)
	deliver(3)
	peer.CloseWrite()
	if err := <-done; err != nil {
		t.Errorf("ServeWorker: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(home, "Maildir", "new"))
	if len(entries) != 3 {
		t.Errorf("%d messages delivered, want 3", len(entries))
	}
}

// TestDeliverLostOrClosed: a worker that ends with a delivery in flight
// gives ErrLost (the delivery may have happened: qmail-lspawn must not
// make it again at once); a worker already gone gives ErrClosed (nothing
// was sent: another worker may make it).
func TestDeliverLostOrClosed(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "dies")
	os.WriteFile(prog, []byte("#!/bin/sh\nsleep 0.3\n"), 0o755)
	w, err := Start(Options{Program: prog, Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	msgPath := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(msgPath, []byte("x\n"), 0o644)
	msg, _ := os.Open(msgPath)
	defer msg.Close()
	if _, _, err := w.Deliver(1, Request{User: "joe"}, msg); err != ErrLost {
		t.Errorf("worker died with the delivery in flight: %v, want ErrLost", err)
	}
	<-w.done
	if _, _, err := w.Deliver(2, Request{User: "joe"}, msg); err != ErrClosed {
		t.Errorf("worker already gone: %v, want ErrClosed", err)
	}
}

// testChannel wraps one end of a socket pair as the other program's side.
func testChannel(t *testing.T, fd int) *pollfd.Channel {
	t.Helper()
	ch, err := pollfd.NewChannel(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}
