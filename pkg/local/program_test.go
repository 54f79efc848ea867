package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envOf reads a file written by env -0.
func envOf(t *testing.T, path string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(readFile(t, path), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestProgramEnvironment(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	// A default file, so DEFAULT is set; -owner, so NEWSENDER differs.
	writeQmail(t, home, ".qmail-list-default", "|env -0 > env.out; cat > stdin.out; pwd > pwd.out; [ -f /dev/stdin ] && echo file > stdin.kind\n")
	writeQmail(t, home, ".qmail-list-foo:bar-owner", "&owner@example.test\n")
	req := request(home)
	req.Local, req.Dash, req.Ext, req.Domain = "joe-list-Foo.Bar", "-", "list-Foo.Bar", "mx.example.test"
	req.Env = append(req.Env, "INHERITED=yes", "SENDER=overridden", "DEFAULT=inherited")
	code, out := run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 0+0+1\n")

	env := envOf(t, filepath.Join(home, "env.out"))
	want := map[string]string{
		"SENDER":    sender,
		"NEWSENDER": "joe-list-Foo.Bar-owner@mx.example.test",
		"RECIPIENT": "joe-list-Foo.Bar@mx.example.test",
		"USER":      "joe",
		"HOME":      home,
		"LOCAL":     "joe-list-Foo.Bar",
		"HOST":      "mx.example.test",
		"HOST2":     "mx.example",
		"HOST3":     "mx",
		"HOST4":     "mx",
		"EXT":       "list-Foo.Bar",
		"EXT2":      "Foo.Bar",
		"EXT3":      "",
		"EXT4":      "",
		"DEFAULT":   "Foo.Bar",
		"DTLINE":    "Delivered-To: joe-list-Foo.Bar@mx.example.test\n",
		"RPLINE":    rpline,
		"INHERITED": "yes",
		"PATH":      "/usr/local/bin:/usr/bin:/bin",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s=%q (set %v), want %q", k, got, ok, v)
		}
	}
	if !uflineRE.MatchString(env["UFLINE"]) {
		t.Errorf("UFLINE=%q", env["UFLINE"])
	}
	if got := readFile(t, filepath.Join(home, "stdin.out")); got != sampleMsg {
		t.Errorf("stdin %q, want the message without Return-Path and Delivered-To: %q", got, sampleMsg)
	}
	if got := readFile(t, filepath.Join(home, "pwd.out")); got != home+"\n" {
		t.Errorf("working directory %q, want %q", got, home)
	}
	if got := readFile(t, filepath.Join(home, "stdin.kind")); got != "file\n" {
		t.Errorf("stdin is not the message file (seekable) but %q", got)
	}

	// Without a default file, no DEFAULT, not even an inherited one.
	writeQmail(t, home, ".qmail", "|env -0 > env2.out\n")
	req = request(home)
	req.Env = append(req.Env, "DEFAULT=inherited")
	code, out = run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 0+0+1\n")
	env = envOf(t, filepath.Join(home, "env2.out"))
	if v, ok := env["DEFAULT"]; ok {
		t.Errorf("DEFAULT=%q set without a default file", v)
	}
	if env["NEWSENDER"] != sender || env["EXT"] != "" {
		t.Errorf("NEWSENDER=%q EXT=%q", env["NEWSENDER"], env["EXT"])
	}
}

// TestProgramProcess: what the program inherits of the process: only fds
// 0, 1 and 2 (once CloseOnExec has marked those the test process was
// given); SIGPIPE not ignored; a process group of its own.
func TestProgramProcess(t *testing.T) {
	t.Parallel()
	if err := CloseOnExec(); err != nil {
		t.Fatal(err)
	}
	home := newHome(t)
	writeQmail(t, home, ".qmail", "|grep SigIgn /proc/$$/status > sig.out; ps -o pgid= -p $$ | tr -d ' ' > pgid.out; echo $$ > pid.out\n|exec ls /proc/self/fd\n")
	code, out := run(t, request(home), sampleMsg)
	// ls's own: 0, 1, 2, and 3 for the directory it lists.
	expect(t, code, out, 0, "0\n1\n2\n3\ndid 0+0+2\n")
	_, mask, _ := strings.Cut(strings.TrimSpace(readFile(t, filepath.Join(home, "sig.out"))), "\t")
	ign, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		t.Fatalf("SigIgn %q: %v", mask, err)
	}
	if ign&(1<<(13-1)) != 0 {
		t.Errorf("SIGPIPE is ignored in the program (SigIgn %s)", mask)
	}
	if pgid, pid := readFile(t, filepath.Join(home, "pgid.out")), readFile(t, filepath.Join(home, "pid.out")); pgid != pid {
		t.Errorf("program's process group %q, want its own (%q)", pgid, pid)
	}
}

func TestProgramExit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prog   string
		code   int
		report string
		after  bool // the Maildir line after the program ran
	}{
		{"0", "echo ok", 0, "ok\ndid 1+0+1\n", true},
		{"99 stops", "echo stop; exit 99", 0, "stop\ndid 0+0+1\n", false},
		{"100", "echo no such user >&2; exit 100", 100, "no such user\n", false},
		{"64", "exit 64", 100, "", false},
		{"65", "exit 65", 100, "", false},
		{"70", "exit 70", 100, "", false},
		{"76", "exit 76", 100, "", false},
		{"77", "exit 77", 100, "", false},
		{"78", "exit 78", 100, "", false},
		{"112", "exit 112", 100, "", false},
		{"111", "echo later; exit 111", 111, "later\n", false},
		{"1", "exit 1", 111, "", false},
		{"75", "exit 75", 111, "", false},
		{"killed", "echo dying; kill -9 $$", 111, "dying\nAack, child crashed. (#4.3.0)\n", false},
		{"no shell command", "/nonexistent/program", 111, "/bin/sh: 1: /nonexistent/program: not found\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			writeQmail(t, home, ".qmail", "|"+tc.prog+"\n./Maildir/\n")
			code, out := run(t, request(home), sampleMsg)
			if tc.name == "no shell command" {
				if code != 111 || !strings.Contains(out, "not found") {
					t.Errorf("exit %d, report %q", code, out)
				}
				return
			}
			expect(t, code, out, tc.code, tc.report)
			if got := maildirMessages(t, filepath.Join(home, "Maildir")); (len(got) == 1) != tc.after {
				t.Errorf("the line after the program delivered %d messages, want delivered %v", len(got), tc.after)
			}
		})
	}
}

// TestProgramPipe: when the message file cannot be opened anew, the
// program reads the message from a pipe, all of it, or as little as it
// wants.
func TestProgramPipe(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	big := "Subject: big\n\n" + strings.Repeat("0123456789abcdef\n", 1<<16) // 1.1 MB, more than a pipe holds
	writeQmail(t, home, ".qmail", "|cat > stdin.out; [ -p /dev/stdin ] && echo pipe > stdin.kind\n|head -c 10 > head.out\n|exit 0\n")
	code, out := runOpt(t, context.Background(), request(home), big, options{lockWait: LockWait, noReopen: true})
	expect(t, code, out, 0, "did 0+0+3\n")
	if got := readFile(t, filepath.Join(home, "stdin.out")); got != big {
		t.Errorf("stdin through the pipe: %d bytes, want %d", len(got), len(big))
	}
	if got := readFile(t, filepath.Join(home, "stdin.kind")); got != "pipe\n" {
		t.Errorf("stdin kind %q, want a pipe", got)
	}
	if got := readFile(t, filepath.Join(home, "head.out")); got != big[:10] {
		t.Errorf("head read %q", got)
	}
}

// TestProgramCancel: cancelling the context kills the program and all it
// started, and defers the delivery; so does cancelling while a child of
// the program still holds the output open.
func TestProgramCancel(t *testing.T) {
	t.Parallel()
	for _, prog := range []string{
		"echo started; sleep 30; echo too late",
		"(sleep 30; echo too late) & exit 0",
	} {
		home := newHome(t)
		writeQmail(t, home, ".qmail", "|"+prog+"\n./Maildir/\n")
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		code, out := runOpt(t, ctx, request(home), sampleMsg, options{lockWait: LockWait})
		cancel()
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%q: the cancelled delivery took %v", prog, took)
		}
		if code != 111 || !strings.HasSuffix(out, "Delivery interrupted: context deadline exceeded. (#4.3.0)\n") || strings.Contains(out, "too late") {
			t.Errorf("%q: exit %d, report %q", prog, code, out)
		}
		if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 0 {
			t.Errorf("%q: the line after the cancelled program delivered", prog)
		}
	}
}

// TestProgramOutputWriterFails: a report writer that fails does not
// block the program on a full pipe.
func TestProgramOutputWriterFails(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "|head -c 1000000 /dev/zero; exit 0\n")
	f := message(t, sampleMsg)
	done := make(chan int)
	go func() { done <- Deliver(context.Background(), request(home), f, failingWriter{}) }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the program blocked on its output")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }
