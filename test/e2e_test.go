//go:build integration

package test

// What scripts/demo shows, with real clients: an instance made by
// qmailctl, run by qmailctl run; swaks sends a message to the MX port,
// curl sends one over submission with AUTH PLAIN after STARTTLS, and
// Python's poplib logs in with APOP and reads both back, byte for byte.
// As root this is a root install.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// e2ePOP logs in with APOP until the wanted number of messages shows
// (as qmail-pop3d, it shows a message from the second after its
// delivery on), and writes each message to a file.
const e2ePOP = `
import poplib, sys, time
host, port, user, password, out, want = sys.argv[1:7]
for _ in range(100):
    p = poplib.POP3(host, int(port), timeout=20)
    p.apop(user, password)
    count, _ = p.stat()
    if count >= int(want):
        break
    p.quit()
    time.sleep(0.1)
for i in range(1, count + 1):
    _, lines, _ = p.retr(i)
    with open("%s/%d" % (out, i), "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
p.quit()
print(count)
`

func TestEndToEnd(t *testing.T) {
	swaks := testutil.NeedTool(t, "swaks", "swaks")
	curl := testutil.NeedTool(t, "curl", "curl")
	python := testutil.NeedTool(t, "python3", "python3")
	root := qrInstance(t, nil)
	r := qrStart(t, root, nil, "smtp", "submission", "pop3")
	dir := t.TempDir()

	// 1. swaks into the MX port, from outside, to a hosted mailbox.
	smtpBody := "First line of the SMTP body.\n.a line that starts with a dot\n\nLast line, after an empty one.\n"
	smtpMsg := filepath.Join(dir, "smtp.eml")
	// Without its last newline: swaks ends the data with CRLF itself
	// (and would add an empty line after one already there).
	os.WriteFile(smtpMsg, []byte("From: Ann <ann@example.org>\nTo: joe@example.test\nSubject: e2e over SMTP\n\n"+strings.TrimSuffix(smtpBody, "\n")), 0o644)
	host, port, _ := net.SplitHostPort(r.addr["smtp"])
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--from", "ann@example.org",
		"--to", "joe@example.test", "--data", "@"+smtpMsg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<-  250 ok ") {
		t.Fatalf("swaks: %v\n%s\nqmailctl run:\n%s", err, out, r.out)
	}

	// 2. curl over submission: STARTTLS required, then AUTH PLAIN.
	subBody := "Sent with AUTH PLAIN after STARTTLS.\r\n..two dots at the start\r\n"
	subMsg := filepath.Join(dir, "submission.eml")
	os.WriteFile(subMsg, []byte("From: joe@example.test\r\nTo: joe@example.test\r\nSubject: e2e over submission\r\n\r\n"+subBody), 0o644)
	out, err = exec.Command(curl, "-v", "-sS", "--ssl-reqd", "-k", "--url", "smtp://"+r.addr["submission"],
		"--mail-from", "joe@example.test", "--mail-rcpt", "joe@example.test",
		"--user", "joe@example.test:"+qrPassword, "--login-options", "AUTH=PLAIN", "--upload-file", subMsg).CombinedOutput()
	transcript := string(out)
	starttls, auth := strings.Index(transcript, "> STARTTLS"), strings.Index(transcript, "> AUTH PLAIN")
	if err != nil || starttls < 0 || auth < starttls {
		t.Fatalf("curl over submission (want STARTTLS, then AUTH PLAIN): %v\n%s\nqmailctl run:\n%s", err, out, r.out)
	}

	// Both delivered to joe's Maildir.
	newDir := filepath.Join(root, "domains", "example.test", "joe", "Maildir", "new")
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(newDir)
		if len(entries) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s, want 2; qmailctl run:\n%s", len(entries), newDir, r.out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 3. Python's poplib, APOP, reads them back.
	host, port, _ = net.SplitHostPort(r.addr["pop3"])
	got := filepath.Join(dir, "got")
	os.Mkdir(got, 0o755)
	out, err = exec.Command(python, "-c", e2ePOP, host, port, "joe@example.test", qrPassword, got, "2").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Fatalf("poplib APOP: %v\n%s\nqmailctl run:\n%s", err, out, r.out)
	}
	bodies := map[string]string{}
	for _, name := range []string{"1", "2"} {
		b, err := os.ReadFile(filepath.Join(got, name))
		if err != nil {
			t.Fatal(err)
		}
		header, body, ok := strings.Cut(string(b), "\n\n")
		if !ok {
			t.Fatalf("message %s has no body:\n%s", name, b)
		}
		for _, h := range []string{"\nReceived: ", "Delivered-To: example.test-joe@example.test\n"} {
			if !strings.Contains(header, h) {
				t.Errorf("message %s lacks %q:\n%s", name, h, header)
			}
		}
		for _, subject := range []string{"e2e over SMTP", "e2e over submission"} {
			if strings.Contains(header+"\n", "\nSubject: "+subject+"\n") {
				bodies[subject] = body
			}
		}
	}
	for subject, want := range map[string]string{
		"e2e over SMTP":       smtpBody,
		"e2e over submission": strings.ReplaceAll(subBody, "\r\n", "\n"),
	} {
		if bodies[subject] != want {
			t.Errorf("%q came back with the body\n%q\nwant\n%q", subject, bodies[subject], want)
		}
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("qmailctl run exited %d; stderr %s", code, r.stderr)
	}
	qrNoLeftovers(t, root)
}
