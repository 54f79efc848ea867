package popup

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/pop3"
)

// checker writes a shell script standing in for checkpassword and its
// subprogram: it saves what it read on fd 3 and its environment, then
// runs body.
func checker(t *testing.T, body string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "checker")
	script := "#!/bin/sh\ncat <&3 > " + dir + "/fd3\nenv > " + dir + "/env\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func launch(t *testing.T, prog string) (Outcome, bool, string, time.Duration) {
	t.Helper()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inR.Close()
	defer inW.Close()
	defer outR.Close()
	e := &Exec{Argv: []string{prog, "sub", "arg"}, Stdin: inR, Stdout: outW,
		Env: []string{"PATH=/usr/bin:/bin", "POP3GRANTFD=9"}, Timeout: time.Minute}
	var called atomic.Bool
	start := time.Now()
	out := e.Launch(Attempt{User: []byte("joe@example.test"), Secret: []byte("pass word"), Stamp: stamp,
		OnLogin: func() { called.Store(true) }})
	took := time.Since(start)
	outW.Close()
	b := make([]byte, 4096)
	outR.SetReadDeadline(time.Now().Add(time.Second)) // a grandchild may hold the pipe
	n, _ := outR.Read(b)
	return out, called.Load(), string(b[:n]), took
}

func TestExec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		kind   Kind
		signal bool
		stdout string
	}{
		{"login", `printf x >&$POP3GRANTFD; echo "+OK session"`, LoggedIn, true, "+OK session\n"},
		{"login, session fails after", `printf x >&$POP3GRANTFD; exit 1`, LoggedIn, true, ""},
		{"session without the signal", `exit 0`, LoggedIn, false, ""},
		{"bad password", `exit 1`, BadLogin, false, ""},
		{"misuse", `exit 2`, BadLogin, false, ""},
		{"temporary", `exit 111`, Temporary, false, ""},
		{"crash", `kill -SEGV $$`, Crashed, false, ""},
		{"grandchild keeps the pipe", `sleep 10 2>/dev/null & exit 1`, BadLogin, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, dir := checker(t, tc.body)
			out, signalled, stdout, took := launch(t, prog)
			if out.Kind != tc.kind || signalled != tc.signal || stdout != tc.stdout {
				t.Errorf("outcome %v (%v), signal %v, stdout %q; want %v, %v, %q", out.Kind, out.Err, signalled, stdout, tc.kind, tc.signal, tc.stdout)
			}
			if took > 5*time.Second {
				t.Errorf("Launch took %v", took)
			}
			fd3, _ := os.ReadFile(filepath.Join(dir, "fd3"))
			if string(fd3) != "joe@example.test\x00pass word\x00"+stamp+"\x00" {
				t.Errorf("fd 3 carried %q", fd3)
			}
			env, _ := os.ReadFile(filepath.Join(dir, "env"))
			if !strings.Contains(string(env), "POP3GRANTFD=4\n") || strings.Contains(string(env), "POP3GRANTFD=9") {
				t.Errorf("environment %q, want POP3GRANTFD=4 alone", env)
			}
		})
	}
}

func TestExecMissing(t *testing.T) {
	for _, prog := range []string{"/nonexistent/checkpassword", "no-such-checker-anywhere", "/etc/passwd"} {
		out, signalled, _, _ := launch(t, prog)
		if out.Kind != Temporary || signalled || out.Err == nil {
			t.Errorf("%s: %v (%v), signal %v; want Temporary", prog, out.Kind, out.Err, signalled)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte(""), 0o644)
	env := []string{"PATH=/nonexistent:" + dir}
	if p, err := lookPath("prog", env); err != nil || p != filepath.Join(dir, "prog") {
		t.Errorf("lookPath(prog) = %q, %v", p, err)
	}
	if _, err := lookPath("data", env); err == nil {
		t.Error("found a file that is not executable")
	}
	if _, err := lookPath("", env); err == nil {
		t.Error("found an empty name")
	}
}

func TestFailures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := &Failures{Dir: filepath.Join(t.TempDir(), "popfail"), Now: func() time.Time { return now }}
	ip := "192.0.2.9"
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
	for i, w := range want {
		if d := f.Delay(ip); d != w {
			t.Errorf("after %d failures: delay %v, want %v", i, d, w)
		}
		f.Fail(ip)
	}
	// The mapped form names the same address; another address is clean.
	if d := f.Delay("::ffff:" + ip); d != MaxDelay {
		t.Errorf("mapped address: delay %v", d)
	}
	if d := f.Delay("192.0.2.10"); d != 0 {
		t.Errorf("other address: delay %v", d)
	}
	// Failures are forgotten Forget after the last one, and at a login.
	now = now.Add(Forget + time.Second)
	if d := f.Delay(ip); d != 0 {
		t.Errorf("after %v: delay %v", Forget, d)
	}
	f.Fail(ip)
	if d := f.Delay(ip); d != time.Second {
		t.Errorf("a failure after the pause counts from 1: delay %v", d)
	}
	f.Clear(ip)
	if d := f.Delay(ip); d != 0 {
		t.Errorf("after a login: delay %v", d)
	}
	// Unknown addresses are neither counted nor written.
	f.Fail("")
	f.Fail("not an address")
	if d := f.Delay(""); d != 0 {
		t.Errorf("unknown address: %v", d)
	}
	// Stale files are swept by a later failure from anywhere.
	for i := range 20 {
		f.Fail("198.51.100." + string(rune('0'+i%10)))
	}
	now = now.Add(Forget + 2*time.Minute)
	f.Fail("203.0.113.1")
	ents, err := os.ReadDir(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".swept 203.0.113.1" {
		t.Errorf("after the sweep: %q", names)
	}
	// A directory that cannot be made is no failure of the login.
	g := &Failures{Dir: "/proc/popfail"}
	g.Fail(ip)
	if d := g.Delay(ip); d != 0 {
		t.Errorf("unwritable dir: %v", d)
	}
}

// TestMain lets the test binary stand in for qmail-pop3d: with
// POPUP_TEST_SIGNAL set it signals the login as qmail-pop3d does and
// prints when SignalLogin returned.
func TestMain(m *testing.M) {
	if os.Getenv("POPUP_TEST_SIGNAL") != "" {
		pop3.SignalLogin()
		fmt.Println(monotonic())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// monotonic is CLOCK_MONOTONIC in nanoseconds: one clock for this
// process and its children, which no clock step moves.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// TestExecGrantBeforeSession: the subprogram goes on only once OnLogin
// (which records the POP-before-SMTP grant) has returned, and right
// then, not at SignalLogin's bound.
func TestExecGrantBeforeSession(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	defer outR.Close()
	// GORACE: a race-enabled child would otherwise sleep a second at exit.
	e := &Exec{Argv: []string{os.Args[0]}, Stdin: inR, Stdout: outW,
		Env: []string{"POPUP_TEST_SIGNAL=1", "GORACE=atexit_sleep_ms=0"}, Timeout: time.Minute}
	var granted atomic.Int64
	out := e.Launch(Attempt{User: []byte("joe@example.test"), Secret: []byte("x"), Stamp: stamp,
		OnLogin: func() {
			time.Sleep(300 * time.Millisecond)
			granted.Store(monotonic())
		}})
	outW.Close()
	b, _ := io.ReadAll(outR)
	went, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if out.Kind != LoggedIn || err != nil {
		t.Fatalf("outcome %v (%v), stdout %q", out.Kind, out.Err, b)
	}
	after := time.Duration(went - granted.Load())
	if after < 0 {
		t.Errorf("the subprogram went on %v before OnLogin returned", -after)
	}
	if after > 2*time.Second {
		t.Errorf("the subprogram went on %v after OnLogin returned: it waited for its bound, not for qmail-popup", after)
	}
}
