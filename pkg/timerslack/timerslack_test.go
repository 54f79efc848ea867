package timerslack

import (
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// withSlack locks the test to its thread and sets the thread's timer
// slack to ns until the test ends.
func withSlack(t *testing.T, ns int) {
	t.Helper()
	runtime.LockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("no timer slack here: %v", err)
	}
	t.Cleanup(func() {
		unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
		runtime.UnlockOSThread()
	})
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// childSlack starts a shell through starter from a thread whose own
// slack is first set to from, and returns the slack the shell's child
// reports: what a program two execs down inherits.
func childSlack(t *testing.T, from int, starter func(func() error) error) int {
	t.Helper()
	withSlack(t, from)
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
	// StartSession locks and unlocks the thread itself; withSlack's lock
	// keeps it the same thread throughout.
	withSlack(t, Slack)
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
