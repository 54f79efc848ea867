//go:build integration

package test

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

// Two instances on one machine, both with their delivery side running:
// A sends to B's domain over SMTP with STARTTLS, B's qmail-smtpd
// listening under Debian's tcpserver. A message from a user on A reaches
// a mailbox on B over TLS; an unknown mailbox at B is refused at RCPT
// and bounces to the sender on A with B's reply; a temporary failure at
// B is retried and delivered; with control/tlsrequired, B's self-signed
// certificate is refused until A trusts it.
func TestTwoInstances(t *testing.T) {
	asEveryone(t, testTwoInstances)
}

func testTwoInstances(t *testing.T, cred *syscall.Credential) {
	testutil.NeedTool(t, "tcpserver", "ucspi-tcp")
	// B: the receiving side, domain b.example with the mailbox ann.
	b := smtpInstance(t, cred)
	for _, p := range []proc{
		{args: []string{"qmailctl", "domain", "add", "b.example", "--root", b}},
		{args: []string{"qmailctl", "user", "add", "ann@b.example", "--password-stdin", "--root", b}, stdin: "pw\n"},
	} {
		p.as = cred
		if r := run(t, p); r.code != 0 {
			t.Fatalf("%v: %s", p.args, r.stderr)
		}
	}
	smtp := listen(t, "tcpserver", b, cred, nil)
	bUnit := startUnit(t, b, "/dev/null", cred)
	defer bUnit.term(t)
	annDir := filepath.Join(b, "domains", "b.example", "ann", "Maildir")

	// A: the sending side, with joe@example.test, routing b.example to
	// B's qmail-smtpd.
	a := localInstance(t, cred)
	writeControl(t, a, "smtproutes", "b.example:"+smtp.addr()+"\n", cred)
	aUnit := startUnitEnv(t, a, cred, nil)
	joeDir := filepath.Join(a, "domains", "example.test", "joe", "Maildir")
	send := func(to, subject string) {
		t.Helper()
		r := runPath(t, filepath.Join(a, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "joe@example.test", to},
			env: []string{"QMAILHOME=" + a}, as: cred, stdin: "From: joe@example.test\nTo: " + to + "\nSubject: " + subject + "\n\nHello from A.\n"})
		if r.code != 0 {
			aUnit.term(t)
			t.Fatalf("sendmail: %d %s", r.code, r.stderr)
		}
	}
	checkTLS := func(file, subject string) {
		t.Helper()
		data, _ := os.ReadFile(file)
		msg := string(data)
		if !strings.Contains(msg, "Subject: "+subject+"\n") || !strings.Contains(msg, "Hello from A.\n") {
			t.Errorf("B's mailbox got:\n%s", msg)
		}
		// B's qmail-smtpd notes TLS in its Received line (RFC 3848).
		if !strings.Contains(msg, "by mx.example.com with ESMTPS (TLS 1.") {
			t.Errorf("B's Received line does not note TLS:\n%s", msg)
		}
	}

	// 1. Opportunistic STARTTLS: B's self-signed certificate is fine.
	send("ann@b.example", "over TLS")
	got := waitMaildir(t, annDir, 1, aUnit)
	checkTLS(got[0], "over TLS")
	waitLog(t, aUnit, "success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok", 1)

	// 2. An unknown mailbox: B refuses it at RCPT; the bounce reaches
	// joe on A with B's reply.
	send("nobody@b.example", "to no one")
	bounces := waitMaildir(t, joeDir, 1, aUnit)
	data, _ := os.ReadFile(bounces[0])
	bounce := string(data)
	for _, want := range []string{
		"Subject: failure notice",
		"<nobody@b.example>:\n127.0.0.1 does not like recipient.\nRemote host said: 550 sorry, no mailbox here by that name (#5.1.1)\n",
		"Giving up on 127.0.0.1.",
		"Final-Recipient: rfc822; nobody@b.example",
		"Diagnostic-Code: smtp; 550 sorry, no mailbox here by that name (#5.1.1)",
		"Subject: to no one",
	} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}

	// 3. A temporary failure: B cannot read its controls and greets
	// with 421; A defers, and delivers once B is mended.
	databytes := filepath.Join(b, "control", "databytes")
	writeControl(t, b, "databytes", "twenty megabytes\n", cred)
	send("ann@b.example", "after a deferral")
	waitLog(t, aUnit, "deferral: Connected_to_127.0.0.1_but_greeting_failed./Remote_host_said:_421_unable_to_read_controls_(#4.3.0)/", 1)
	os.Remove(databytes)
	aUnit.cmd.Process.Signal(syscall.SIGALRM)
	got = waitMaildir(t, annDir, 2, aUnit)
	checkTLS(newest(got, "after a deferral"), "after a deferral")

	// 4. control/tlsrequired: a certificate must verify, and B's is
	// self-signed. Untrusted, the mail waits (it is never sent in plain
	// text); once A trusts B's certificate (SSL_CERT_FILE, read by Go's
	// TLS for qmail-rspawn, as an admin would add it to the system's
	// store), it goes.
	writeControl(t, a, "tlsrequired", "b.example\n", cred)
	send("ann@b.example", "verified TLS")
	waitLog(t, aUnit, "deferral: Connected_to_127.0.0.1_but_the_TLS_handshake_failed:_tls:_failed_to_verify_certificate:_x509:_certificate_signed_by_unknown_authority._(#4.7.5)/", 1)
	aUnit.term(t)
	trust := filepath.Join(a, "control", "b-cert.pem")
	certPEM, err := os.ReadFile(filepath.Join(b, "control", "servercert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	writeControl(t, a, "b-cert.pem", string(certificateOnly(certPEM)), cred)
	aUnit = startUnitEnv(t, a, cred, []string{"SSL_CERT_FILE=" + trust})
	defer aUnit.term(t)
	waitLog(t, aUnit, "status: ", 1)
	aUnit.cmd.Process.Signal(syscall.SIGALRM)
	got = waitMaildir(t, annDir, 3, aUnit)
	checkTLS(newest(got, "verified TLS"), "verified TLS")
	if n := len(mustGlob(t, filepath.Join(joeDir, "new", "*"))); n != 1 {
		t.Errorf("joe has %d messages, want only the one bounce", n)
	}
}

// startUnitEnv is startUnit with more environment for qmail-start and so
// for every program of the delivery side.
func startUnitEnv(t *testing.T, root string, cred *syscall.Credential, env []string) *unit {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	cmd.Env = append([]string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}, env...)
	log := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &unit{cmd: cmd, log: log}
}

// writeControl writes control/NAME of the instance at root, owned by
// cred's user.
func writeControl(t *testing.T, root, name, content string, cred *syscall.Credential) {
	t.Helper()
	p := filepath.Join(root, "control", name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(p, int(cred.Uid), int(cred.Gid))
	}
}

// certificateOnly keeps the CERTIFICATE blocks of a PEM file (leaving
// its private key behind).
func certificateOnly(data []byte) []byte {
	var out []byte
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return out
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(blk)...)
		}
	}
}

// newest is the file among files whose content has the subject.
func newest(files []string, subject string) string {
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), "Subject: "+subject+"\n") {
			return f
		}
	}
	return ""
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
