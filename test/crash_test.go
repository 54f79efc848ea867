//go:build integration

package test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
	"github.com/quail-mta/quail/queue"
)

// deliveryInstance makes an instance whose spawners record deliveries in
// a file instead of delivering. Everything runs as cred (nobody when the
// test runs as root: a single-user instance).
func deliveryInstance(t *testing.T, cred *syscall.Credential) (root, record string) {
	t.Helper()
	dir := ownedDir(t, cred)
	root = filepath.Join(dir, "q")
	if r := run(t, proc{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mx.example.com"}, as: cred}); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	bin := testutil.Bin(t)
	rec := filepath.Join(t.TempDir(), "recordspawn")
	build := exec.Command("go", "build", "-o", rec, "./test/recordspawn")
	build.Dir = testutil.ModuleRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build recordspawn: %v\n%s", err, out)
	}
	for _, name := range []string{"qmail-start", "qmail-send", "qmail-clean", "qmail-queue"} {
		copyFile(t, filepath.Join(bin, name), filepath.Join(root, "bin", name), cred)
	}
	copyFile(t, rec, filepath.Join(root, "bin", "qmail-lspawn"), cred)
	copyFile(t, rec, filepath.Join(root, "bin", "qmail-rspawn"), cred)
	return root, filepath.Join(dir, "record")
}

func copyFile(t *testing.T, from, to string, cred *syscall.Credential) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(to, int(cred.Uid), int(cred.Gid))
	}
}

// unit is a running qmail-start.
type unit struct {
	cmd *exec.Cmd
	log *testutil.SyncBuffer
}

func startUnit(t *testing.T, root, record string, cred *syscall.Credential) *unit {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	cmd.Env = []string{"QMAILHOME=" + root, "RECORD=" + record, "PATH=/usr/bin:/bin"}
	log := &testutil.SyncBuffer{}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &unit{cmd: cmd, log: log}
}

// kill9 kills the whole unit at once, as a crash would.
func (u *unit) kill9() {
	syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
	u.cmd.Wait()
}

func (u *unit) term(t *testing.T) {
	t.Helper()
	u.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- u.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("qmail-start exited with %v; log:\n%s", err, u.log)
		}
	case <-time.After(20 * time.Second):
		u.kill9()
		t.Fatalf("qmail-start did not stop on TERM; log:\n%s", u.log)
	}
}

// inject runs qmail-queue for one recipient; killAfter > 0 SIGKILLs it
// after that long. It reports whether qmail-queue exited 0.
func inject(root, rcpt string, cred *syscall.Credential, killAfter time.Duration) bool {
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-queue"))
	cmd.Env = []string{"QMAILHOME=" + root}
	cmd.Stdin = strings.NewReader("Subject: crash test\n\n" + strings.Repeat("line of body text\n", 200))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	// qmail-queue reads the envelope from its fd 1: give it a pipe
	// that already holds the envelope.
	r, w, err := os.Pipe()
	if err != nil {
		return false
	}
	cmd.Stdout = r
	w.Write([]byte("Fcrash@example.org\x00T" + rcpt + "\x00\x00"))
	w.Close()
	if err := cmd.Start(); err != nil {
		r.Close()
		return false
	}
	r.Close()
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	return cmd.Wait() == nil
}

// TestCrash kills qmail-queue at random points of injections and the
// whole delivery side at random points of delivery, again and again, then
// restarts it and checks that every message whose injection exited 0 was
// delivered, at least once.
func TestCrash(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	root, record := deliveryInstance(t, cred)
	const rounds, perRound = 12, 25
	rng := rand.New(rand.NewPCG(1, 2))
	acked := map[string]bool{}
	var killedQueue, killedUnit int
	for round := range rounds {
		u := startUnit(t, root, record, cred)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range perRound {
			rcpt := fmt.Sprintf("r%d-%d@%s", round, i, []string{"mx.example.com", "remote.example"}[i%2])
			var kill time.Duration
			if rng.IntN(3) == 0 {
				kill = time.Duration(rng.IntN(4000)) * time.Microsecond
			}
			wg.Go(func() {
				ok := inject(root, rcpt, cred, kill)
				mu.Lock()
				defer mu.Unlock()
				if ok {
					acked[rcpt] = true
				} else if kill > 0 {
					killedQueue++
				}
			})
		}
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		u.kill9() // mid-delivery, mid-injection: whatever it was doing
		killedUnit++
		wg.Wait()
	}
	// A final, clean run drains the queue. It is up (signals handled,
	// the queue scanned once) when qmail-send logs its first status; a
	// queue already empty must not let the test stop it before then.
	u := startUnit(t, root, record, cred)
	waitLog(t, u, "status: ", 1)
	q := queue.New(root)
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Done when no message is announced (todo/) or being delivered
		// (info/). mess/ files of killed, unacknowledged injections stay
		// until qmail-send's 36-hour cleanup, as in qmail.
		c, err := q.Count()
		msgs, lerr := q.List()
		if err == nil && lerr == nil && c.Todo == 0 && len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			u.term(t)
			var left strings.Builder
			msgs, _ := q.List()
			for _, m := range msgs {
				fmt.Fprintf(&left, "%+v\n", *m)
			}
			t.Fatalf("queue not drained after 20 s (%+v, %v):\n%s", c, err, &left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u.term(t)

	delivered := map[string]int{}
	f, err := os.Open(record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, rcpt, _ := strings.Cut(sc.Text(), " ")
		delivered[rcpt]++
	}
	lost, dups := 0, 0
	for rcpt := range acked {
		switch n := delivered[rcpt]; {
		case n == 0:
			lost++
			t.Errorf("%s: injection exited 0, never delivered", rcpt)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("%d injections acknowledged, %d qmail-queue runs killed, delivery side killed %d times: %d lost, %d duplicate deliveries",
		len(acked), killedQueue, killedUnit, lost, dups)
	if len(acked) < rounds*perRound/2 {
		t.Errorf("only %d of %d injections acknowledged: the test exercised too little", len(acked), rounds*perRound)
	}
	checkQueueConsistent(t, q)
}

// checkQueueConsistent is a small fsck for after the crash test: nothing
// names a message file that is gone.
func checkQueueConsistent(t *testing.T, q queue.Queue) {
	t.Helper()
	for _, dir := range []string{"todo", "intd"} {
		entries, _ := os.ReadDir(filepath.Join(q.Dir, dir))
		for _, e := range entries {
			id, ok := queue.ParseID(e.Name())
			if !ok {
				continue
			}
			if _, err := os.Stat(q.Mess(id)); errors.Is(err, os.ErrNotExist) && dir == "todo" {
				t.Errorf("todo/%d without its message file", id)
			}
		}
	}
}

// A TERM that reaches qmail-start while it is still starting the unit
// stops the whole unit cleanly: qmail-send gets it and exits as on any
// TERM, and none of the unit's programs is left running. The logger,
// which qmail-start starts first, sends it, then passes qmail-send's log
// on to our stderr.
func TestStartTermedWhileStarting(t *testing.T) {
	cred := qrAs() // the logger must be able to signal qmail-start
	root, record := deliveryInstance(t, cred)
	logger := filepath.Join(root, "term-parent-logger")
	if err := os.WriteFile(logger, []byte("#!/bin/sh\nkill -TERM $PPID\nexec cat >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cmd := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/", logger)
		cmd.Env = []string{"QMAILHOME=" + root, "RECORD=" + record, "PATH=/usr/bin:/bin"}
		log := &testutil.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		u := &unit{cmd: cmd, log: log}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			u.kill9()
			t.Fatalf("run %d: the unit did not stop on TERM (its programs keep qmail-start's output open); log:\n%s", i, log)
		}
		pgid := cmd.Process.Pid
		deadline := time.Now().Add(5 * time.Second)
		for !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
			if time.Now().After(deadline) {
				syscall.Kill(-pgid, syscall.SIGKILL)
				t.Fatalf("run %d: qmail-start exited (%v), but programs of its unit still run; log:\n%s", i, cmd.ProcessState, log)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(log.String(), "status: exiting\n") {
			t.Fatalf("run %d: qmail-start exited %d (%v); want 0 after qmail-send's \"status: exiting\"; log:\n%s", i, code, cmd.ProcessState, log)
		}
	}
}
