package timerslack

import (
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// childSlack starts a shell through Start from a thread whose own slack
// is first set to from, and returns the slack the shell's child reports:
// what a program two execs down inherits.
func childSlack(t *testing.T, from int, starter func(func() error) error) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Skipf("no timer slack here: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(from), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "cat /proc/self/timerslack_ns")
	var out strings.Builder
	cmd.Stdout = &out
	if err := starter(cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("timerslack_ns: %q", out.String())
	}
	return n
}

func TestStartGivesSlack(t *testing.T) {
	if got := childSlack(t, 50_000, Start); got != Slack {
		t.Errorf("child's timer slack %d ns, want %d", got, Slack)
	}
}

func TestStartKeepsLargerSlack(t *testing.T) {
	const larger = 5 * Slack
	if got := childSlack(t, larger, Start); got != larger {
		t.Errorf("child's timer slack %d ns, want the larger %d kept", got, larger)
	}
}

func TestStartSessionGivesSessionSlack(t *testing.T) {
	if got := childSlack(t, Slack, StartSession); got != SessionSlack {
		t.Errorf("child's timer slack %d ns, want %d", got, SessionSlack)
	}
	const larger = 2 * SessionSlack
	if got := childSlack(t, larger, StartSession); got != larger {
		t.Errorf("child's timer slack %d ns, want the larger %d kept", got, larger)
	}
}

// The launcher's own thread gets its slack back: only the program it
// starts runs with the session slack.
func TestStartSessionRestoresSlack(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Skipf("no timer slack here: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, Slack, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	// StartSession locks and unlocks the thread itself; this test's lock
	// keeps it the same thread throughout.
	var during int
	if err := StartSession(func() (err error) {
		during, err = unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if during != SessionSlack || after != Slack {
		t.Errorf("slack %d ns while starting and %d after, want %d and %d", during, after, SessionSlack, Slack)
	}
}
