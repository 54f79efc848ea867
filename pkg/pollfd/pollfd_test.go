package pollfd

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// TestFile: the descriptor becomes non-blocking and the file pollable
// (only a file in the poller takes a deadline); a read waits for data.
func TestFile(t *testing.T) {
	r, w := pipe(t)
	defer syscall.Close(w)
	f, err := File(r, "pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fl, err := unix.FcntlInt(uintptr(r), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("descriptor flags %#o, %v: not non-blocking", fl, err)
	}
	if err := f.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v; the file is not in the poller", err)
	}
	buf := make([]byte, 8)
	if _, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read of an empty pipe: %v, want a wait ended by the deadline", err)
	}
	f.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		syscall.Write(w, []byte("later"))
	}()
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "later" {
		t.Errorf("read: %q, %v; want to wait for the data", buf[:n], err)
	}
}

// TestInherited: a pipe becomes pollable; a character device (as a
// terminal would be) is left blocking; a descriptor that is not open
// still gives a file, whose use reports the trouble.
func TestInherited(t *testing.T) {
	nonBlocking := func(fd int) bool {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl&unix.O_NONBLOCK != 0
	}
	r, w := pipe(t)
	defer syscall.Close(w)
	f := Inherited(r, "pipe")
	defer f.Close()
	if !nonBlocking(r) {
		t.Error("an inherited pipe was left blocking")
	}
	null, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev := Inherited(null, "/dev/null")
	defer dev.Close()
	if nonBlocking(null) {
		t.Error("an inherited character device was made non-blocking")
	}
	gr, gw := pipe(t)
	syscall.Close(gr)
	syscall.Close(gw)
	if _, err := Inherited(gr, "gone").Read(make([]byte, 1)); err == nil {
		t.Error("read of a closed descriptor succeeded")
	}
}

// inReads counts the process's threads blocked in read(2) or
// recvmsg(2) (/proc/self/task/*/syscall begins with the call's number),
// but for the one reading those files.
func inReads(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := strconv.Itoa(unix.Gettid())
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	n := 0
	for _, task := range tasks {
		if task.Name() == self {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue // the thread has exited
		}
		nr, _, _ := strings.Cut(string(b), " ")
		if nr == strconv.Itoa(syscall.SYS_READ) || nr == strconv.Itoa(syscall.SYS_RECVMSG) {
			n++
		}
	}
	return n
}

// TestWaitsHoldNoThread is why the package exists: goroutines waiting on
// Channels and Files are parked in the poller, not each a thread blocked
// in a system call as goroutines in blocking reads are.
func TestWaitsHoldNoThread(t *testing.T) {
	const waiters = 16
	// waitFor starts the waiters and counts the threads they add in
	// reads after 200 ms, or, while that is fewer than until, up to 5 s.
	// The monitor hands a blocked goroutine's processor on after 10 ms;
	// a busy machine may take longer.
	waitFor := func(until int, wait func(i int)) (added int) {
		before := inReads(t)
		for i := range waiters {
			go wait(i)
		}
		time.Sleep(200 * time.Millisecond)
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if added = inReads(t) - before; added >= until || time.Now().After(end) {
				return added
			}
		}
	}
	var peers []int
	chans := make([]*Channel, waiters)
	files := make([]*os.File, waiters)
	for i := range waiters {
		a, b := pair(t)
		ch, err := NewChannel(a)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
		r, w := pipe(t)
		if files[i], err = File(r, "pipe"); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, b, w)
	}
	var returned atomic.Int32 // waits that ended: none may before the peers close
	polled := waitFor(0, func(i int) {
		if i%2 == 0 {
			chans[i].Receive(make([]byte, 8), 0)
		} else {
			files[i].Read(make([]byte, 8))
		}
		returned.Add(1)
	})
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d of %d waits in the poller returned before anything was sent", n, waiters)
	}
	var blockers []int
	for range waiters {
		r, w := pipe(t)
		blockers = append(blockers, r)
		peers = append(peers, w)
	}
	blocked := waitFor(waiters, func(i int) { syscall.Read(blockers[i], make([]byte, 8)) })
	t.Logf("threads added in read or recvmsg: %d by waits in the poller, %d by blocking reads", polled, blocked)
	if blocked != waiters {
		t.Errorf("%d blocking reads show as %d threads in read: the count is wrong", waiters, blocked)
	}
	if polled != 0 {
		t.Errorf("%d waits in the poller hold %d threads in read or recvmsg", waiters, polled)
	}
	for _, fd := range peers {
		syscall.Close(fd) // ends every wait
	}
	for i := range waiters {
		chans[i].Close()
		files[i].Close()
	}
	for _, fd := range blockers {
		syscall.Close(fd)
	}
}

// TestChannelCloseWrite: the other end reads end of file, and this end
// still receives.
func TestChannelCloseWrite(t *testing.T) {
	a, b := pair(t)
	ours, err := NewChannel(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	theirs, err := NewChannel(b)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	if err := ours.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, _, err := theirs.Receive(buf, 0); err != io.EOF {
		t.Errorf("Receive after the other end's CloseWrite: %v, want io.EOF", err)
	}
	if err := theirs.Send([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if n, _, err := ours.Receive(buf, 0); err != nil || string(buf[:n]) != "reply" {
		t.Errorf("Receive after our CloseWrite: %q, %v", buf[:n], err)
	}
}
