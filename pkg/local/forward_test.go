package local

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeQueue installs a QMAILQUEUE program that saves the message (fd 0)
// and the envelope (fd 1) in dir and exits with status exit. It uses
// t.Setenv, so its tests do not run in parallel.
func fakeQueue(t *testing.T, exit string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	script := "#!/bin/sh\ncat > " + dir + "/msg || exit 54\ncat <&1 > " + dir + "/env || exit 54\nexit " + exit + "\n"
	p := filepath.Join(dir, "qq")
	writeMode(t, p, script, 0o755)
	t.Setenv("QMAILQUEUE", p)
	return dir
}

var qpRE = regexp.MustCompile(`^did (\d+)\+(\d+)\+(\d+)\nqp [1-9]\d*\n$`)

func TestForward(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
		sender    string
		newSender string
	}{
		{name: "sender kept", sender: sender, newSender: sender},
		{name: "owner", files: map[string]string{".qmail-list-owner": "&joe\n"}, sender: sender, newSender: "joe-list-owner@example.test"},
		{name: "owner VERP", files: map[string]string{".qmail-list-owner": "&joe\n", ".qmail-list-owner-default": "&joe\n"}, sender: sender, newSender: "joe-list-owner-@example.test-@[]"},
		{name: "bounce", files: map[string]string{".qmail-list-owner": "&joe\n"}, sender: "", newSender: ""},
		{name: "double bounce", files: map[string]string{".qmail-list-owner": "&joe\n"}, sender: "#@[]", newSender: "#@[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := fakeQueue(t, "0")
			home := newHome(t)
			writeQmail(t, home, ".qmail-list", "&a@example.com\n./Maildir/\nb@example.net\n|echo program ran\n")
			for name, content := range tc.files {
				writeQmail(t, home, name, content)
			}
			req := request(home)
			req.Local, req.Dash, req.Ext, req.Sender = "joe-list", "-", "list", tc.sender
			code, out := run(t, req, sampleMsg)
			if code != 0 || !qpRE.MatchString(strings.TrimPrefix(out, "program ran\n")) || !strings.Contains(out, "did 1+2+1\n") {
				t.Fatalf("exit %d, report %q", code, out)
			}
			if got, want := readFile(t, filepath.Join(q, "msg")), "Delivered-To: joe-list@example.test\n"+sampleMsg; got != want {
				t.Errorf("forwarded message %q, want %q", got, want)
			}
			if got, want := readFile(t, filepath.Join(q, "env")), "F"+tc.newSender+"\x00Ta@example.com\x00Tb@example.net\x00\x00"; got != want {
				t.Errorf("envelope %q, want %q", got, want)
			}
			if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 1 {
				t.Errorf("Maildir holds %d messages, want 1", len(got))
			}
		})
	}
}

// TestForwardLast: forwards are queued only when every other line
// succeeded, before or after them; a program exiting 99 still lets the
// forwards above it go.
func TestForwardLast(t *testing.T) {
	for _, tc := range []struct {
		name    string
		qmail   string
		code    int
		report  string
		queued  bool
		rcpts   string
		mailbox bool
	}{
		{name: "failing program before", qmail: "|exit 111\n&a@example.com\n", code: 111},
		{name: "failing program after", qmail: "&a@example.com\n|exit 100\n", code: 100},
		{name: "failing Maildir after", qmail: "&a@example.com\n./nosuch/\n", code: 111, report: "Unable to chdir to maildir. (#4.2.1)\n"},
		{name: "99 after", qmail: "&a@example.com\n|exit 99\n&b@example.com\n./Maildir/\n", queued: true, rcpts: "Ta@example.com\x00"},
		{name: "empty address", qmail: "./Maildir/\n&a@example.com\n&\n", code: 100, report: "Sorry, .qmail file has a forward line without an address. (#5.1.3)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := fakeQueue(t, "0")
			home := newHome(t)
			writeQmail(t, home, ".qmail", tc.qmail)
			code, out := run(t, request(home), sampleMsg)
			if code != tc.code || (!tc.queued && out != tc.report) || (tc.queued && !qpRE.MatchString(out)) {
				t.Errorf("exit %d, report %q; want %d, %q", code, out, tc.code, tc.report)
			}
			env := readFile(t, filepath.Join(q, "env"))
			if tc.queued != (env != "") {
				t.Errorf("queued %q, want queued %v", env, tc.queued)
			}
			if tc.queued && env != "F"+sender+"\x00"+tc.rcpts+"\x00" {
				t.Errorf("envelope %q", env)
			}
			if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 0 {
				t.Errorf("Maildir holds %d messages, want none", len(got))
			}
		})
	}
}

func TestForwardQueueFails(t *testing.T) {
	for _, tc := range []struct {
		exit   string
		code   int
		report string
	}{
		{"31", 100, "Unable to forward message: mail server permanently rejected message (#5.3.0).\n"},
		{"11", 100, "Unable to forward message: envelope address too long for qq (#5.1.3).\n"},
		{"71", 111, "Unable to forward message: mail server temporarily rejected message (#4.3.0).\n"},
		{"53", 111, "Unable to forward message: qq write error or disk full (#4.3.0).\n"},
	} {
		t.Run(tc.exit, func(t *testing.T) {
			fakeQueue(t, tc.exit)
			home := newHome(t)
			writeQmail(t, home, ".qmail", "&a@example.com\n")
			code, out := run(t, request(home), sampleMsg)
			expect(t, code, out, tc.code, tc.report)
		})
	}
	t.Run("custom text", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "qq")
		writeMode(t, p, "#!/bin/sh\ncat >/dev/null\nprintf 'DNo viruses here, thank you' >&4\nexit 82\n", 0o755)
		t.Setenv("QMAILQUEUE", p)
		home := newHome(t)
		writeQmail(t, home, ".qmail", "&a@example.com\n")
		code, out := run(t, request(home), sampleMsg)
		expect(t, code, out, 100, "Unable to forward message: No viruses here, thank you.\n")
	})
	t.Run("no queue program", func(t *testing.T) {
		t.Setenv("QMAILQUEUE", "/nonexistent/qmail-queue")
		home := newHome(t)
		writeQmail(t, home, ".qmail", "&a@example.com\n")
		code, out := run(t, request(home), sampleMsg)
		expect(t, code, out, 111, "Unable to forward message: unable to exec qq (#4.3.0).\n")
	})
	t.Run("interrupted", func(t *testing.T) {
		q := fakeQueue(t, "0")
		home := newHome(t)
		writeQmail(t, home, ".qmail", "&a@example.com\n")
		big := "Subject: big\n\n" + strings.Repeat("x", 3<<20)
		code, out := runOpt(t, newFailingCtx(20), request(home), big, options{lockWait: LockWait})
		expect(t, code, out, 111, "Delivery interrupted: context canceled. (#4.3.0)\n")
		if env := readFile(t, filepath.Join(q, "env")); env != "" {
			t.Errorf("queued %q after the interruption", env)
		}
	})
}

// TestForwardRoot: without QMAILQUEUE, Root/bin/qmail-queue queues.
func TestForwardRoot(t *testing.T) {
	t.Setenv("QMAILQUEUE", "")
	home := newHome(t)
	req := request(home)
	req.Root = t.TempDir()
	os.Mkdir(filepath.Join(req.Root, "bin"), 0o755)
	writeMode(t, filepath.Join(req.Root, "bin", "qmail-queue"), "#!/bin/sh\ncat > "+req.Root+"/msg\ncat <&1 > "+req.Root+"/env\n", 0o755)
	writeQmail(t, home, ".qmail", "&a@example.com\n")
	code, out := runOpt(t, context.Background(), req, sampleMsg, options{lockWait: LockWait})
	if code != 0 || !qpRE.MatchString(out) {
		t.Fatalf("exit %d, report %q", code, out)
	}
	if got := readFile(t, filepath.Join(req.Root, "msg")); got != dtline+sampleMsg {
		t.Errorf("queued %q", got)
	}
}
