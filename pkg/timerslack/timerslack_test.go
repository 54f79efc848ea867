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
func childSlack(t *testing.T, from int) int {
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
	if err := Start(cmd.Start); err != nil {
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
	if got := childSlack(t, 50_000); got != Slack {
		t.Errorf("child's timer slack %d ns, want %d", got, Slack)
	}
}

func TestStartKeepsLargerSlack(t *testing.T) {
	const larger = 5 * Slack
	if got := childSlack(t, larger); got != larger {
		t.Errorf("child's timer slack %d ns, want the larger %d kept", got, larger)
	}
}
