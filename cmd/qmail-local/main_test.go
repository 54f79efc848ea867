package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/localworker"
	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bin builds qmail-local (only this program: the test must not depend on
// the rest of cmd/ building).
func bin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "qmail-local-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "qmail-local")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/qmail-local")
		cmd.Dir = testutil.ModuleRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

const msg = "Subject: hi\n\nFrom me\nbody\n"

// home makes joe's home with a Maildir and, if qmail is not empty, a .qmail.
func home(t *testing.T, qmail string) string {
	t.Helper()
	h := filepath.Join(t.TempDir(), "joe")
	if err := os.Mkdir(h, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(h, 0o755)
	if err := maildir.Make(filepath.Join(h, "Maildir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if qmail != "" {
		p := filepath.Join(h, ".qmail")
		os.WriteFile(p, []byte(qmail), 0o644)
		os.Chmod(p, 0o644)
	}
	return h
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs qmail-local with args and the message on stdin: a regular
// file (as qmail-lspawn gives it) or, with pipe, a pipe.
func run(t *testing.T, args []string, pipe bool, env ...string) result {
	t.Helper()
	cmd := exec.Command(bin(t), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "QMAILHOME=" + t.TempDir()}, env...)
	if pipe {
		cmd.Stdin = strings.NewReader(msg)
	} else {
		p := filepath.Join(t.TempDir(), "mess")
		os.WriteFile(p, []byte(msg), 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// ops is qmail-lspawn's argument list for joe@example.test.
func ops(h, dash, ext string) []string {
	return []string{"--", "joe", h, "joe" + dash + ext, dash, ext, "example.test", "bob@example.org", "./Maildir/"}
}

func maildirCount(t *testing.T, h string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(h, "Maildir", "new"))
	var out []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(h, "Maildir", "new", e.Name()))
		out = append(out, string(b))
	}
	return out
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	for _, pipe := range []bool{false, true} {
		h := home(t, "./Maildir/\n|cat > stdin.out\n")
		r := run(t, ops(h, "", ""), pipe)
		if r.code != 0 || r.stdout != "did 1+0+1\n" || r.stderr != "" {
			t.Errorf("pipe %v: %+v", pipe, r)
		}
		want := "Return-Path: <bob@example.org>\nDelivered-To: joe@example.test\n" + msg
		if got := maildirCount(t, h); len(got) != 1 || got[0] != want {
			t.Errorf("pipe %v: Maildir holds %q", pipe, got)
		}
		if b, _ := os.ReadFile(filepath.Join(h, "stdin.out")); string(b) != msg {
			t.Errorf("pipe %v: program read %q", pipe, b)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		qmail  string
		mode   os.FileMode
		dash   string
		ext    string
		code   int
		stdout string
	}{
		{name: "no mailbox", dash: "-", ext: "nosuch", code: 100, stdout: "Sorry, no mailbox here by that name. (#5.1.1)\n"},
		{name: "world-writable home", mode: 0o777, code: 111, stdout: "Uh-oh: home directory is writable. (#4.7.0)\n"},
		{name: "program 100", qmail: "|echo bad; exit 100\n", code: 100, stdout: "bad\n"},
		{name: "program 111", qmail: "|exit 111\n", code: 111, stdout: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := home(t, tc.qmail)
			if tc.mode != 0 {
				os.Chmod(h, tc.mode)
			}
			r := run(t, ops(h, tc.dash, tc.ext), false)
			if r.code != tc.code || r.stdout != tc.stdout {
				t.Errorf("%+v, want exit %d, stdout %q", r, tc.code, tc.stdout)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	h := home(t, "")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // expected in stdout (help) or stderr (errors)
	}{
		{"help", []string{"--help"}, 0, "usage: qmail-local [ -nN ] user homedir local dash ext domain sender defaultdelivery\n"},
		{"no operands", nil, 100, "qmail-local: need exactly 8 operands"},
		{"seven", ops(h, "", "")[:8], 100, "got 7"},
		{"relative home", []string{"joe", "joe", "joe", "", "", "d", "s", "./Maildir/"}, 100, "homedir must be an absolute path"},
		{"unknown option", append([]string{"-x"}, ops(h, "", "")[1:]...), 100, "unknown shorthand flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.args, false)
			got := r.stderr
			if tc.code == 0 {
				got = r.stdout
			}
			if r.code != tc.code || !strings.Contains(got, tc.out) {
				t.Errorf("%+v, want exit %d and %q", r, tc.code, tc.out)
			}
			if tc.code != 0 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("usage error is not one line: %q", r.stderr)
			}
		})
	}
	if got := maildirCount(t, h); len(got) != 0 {
		t.Errorf("a usage error delivered")
	}
}

// TestDryRun writes a script and runs it, so it does not run in parallel
// with tests that fork (a forked child could hold the script open for
// writing: ETXTBSY).
func TestDryRun(t *testing.T) {
	h := home(t, "./Maildir/\n|echo hi\n&a@example.com\n")
	r := run(t, append([]string{"-n"}, ops(h, "", "")...), true)
	if r.code != 0 || r.stdout != "maildir ./Maildir/\nprogram echo hi\nforward a@example.com\ndid 1+1+1\n" {
		t.Errorf("-n: %+v", r)
	}
	if got := maildirCount(t, h); len(got) != 0 {
		t.Errorf("-n delivered")
	}
	// -nN delivers: the last option counts.
	q := t.TempDir()
	qq := filepath.Join(q, "qq")
	os.WriteFile(qq, []byte("#!/bin/sh\ncat > "+q+"/msg\ncat <&1 > "+q+"/env\n"), 0o755)
	r = run(t, append([]string{"-nN"}, ops(h, "", "")[1:]...), false, "QMAILQUEUE="+qq)
	if r.code != 0 || !regexp.MustCompile(`^hi\ndid 1\+1\+1\nqp \d+\n$`).MatchString(r.stdout) {
		t.Errorf("-nN: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(q, "env")); string(b) != "Fbob@example.org\x00Ta@example.com\x00\x00" {
		t.Errorf("forward envelope %q", b)
	}
	if got := maildirCount(t, h); len(got) != 1 {
		t.Errorf("-nN delivered %d messages, want 1", len(got))
	}
}

// TestWorker: "qmail-local --worker" serves deliveries from qmail-lspawn's
// side of package localworker, one after another (see the report of this
// change: concurrent replies are corrupted by localworker's reader, which
// hands out slices of the buffer it reuses).
func TestWorker(t *testing.T) {
	t.Parallel()
	h := home(t, "./Maildir/\n|cat > /dev/null; echo ran\n")
	w, err := localworker.Start(localworker.Options{Program: bin(t), Root: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := filepath.Join(t.TempDir(), "mess")
	os.WriteFile(p, []byte(msg), 0o644)
	for i := range 3 {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		status, out, err := w.Deliver(uint64(i+1), localworker.Request{User: "joe", Home: h, Local: "joe",
			Domain: "example.test", Sender: "bob@example.org", DefaultDelivery: "./Maildir/"}, f)
		f.Close()
		if err != nil || status != 0 || string(out) != "ran\ndid 1+0+1\n" {
			t.Errorf("delivery %d: status %d, report %q, %v", i, status, out, err)
		}
	}
	if got := maildirCount(t, h); len(got) != 3 {
		t.Errorf("Maildir holds %d messages, want 3", len(got))
	}
}

// TestSignal: SIGTERM stops a delivery with a temporary failure, killing
// the running program.
func TestSignal(t *testing.T) {
	t.Parallel()
	h := home(t, "|echo $$ > started; sleep 30\n./Maildir/\n")
	p := filepath.Join(t.TempDir(), "mess")
	os.WriteFile(p, []byte(msg), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin(t), ops(h, "", "")...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin = f
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid string
	for range 500 {
		if b, _ := os.ReadFile(filepath.Join(h, "started")); len(b) > 0 && b[len(b)-1] == '\n' {
			pid = strings.TrimSpace(string(b))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 111 || !strings.HasPrefix(stdout.String(), "Delivery interrupted: ") {
		t.Errorf("%v, report %q; want exit 111 and Delivery interrupted", err, stdout.String())
	}
	t.Logf("report %q", stdout.String())
	if pid == "" {
		t.Fatal("the program never started")
	}
	if _, err := os.Stat("/proc/" + pid); err == nil {
		if b, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(b), ") Z ") {
			t.Errorf("the program (pid %s) still runs", pid)
		}
	}
	if got := maildirCount(t, h); len(got) != 0 {
		t.Errorf("the line after the interrupted program delivered")
	}
}
