//go:build integration

package test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/popgrant"
	"github.com/quail-mta/quail/pkg/quota"
	"github.com/quail-mta/quail/pkg/testutil"
)

// smtpInstance is a local-delivery instance (localInstance) with
// qmail-smtpd, checkpassword and a self-signed control/servercert.pem;
// in a root install checkpassword is setuid root, as qmail-smtpd runs as
// qmaild and the passwords are root's.
func smtpInstance(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	root := localInstance(t, cred)
	for _, name := range []string{"qmail-smtpd", "checkpassword", "qmail-tcpserver"} {
		copyFile(t, filepath.Join(testutil.Bin(t), name), filepath.Join(root, "bin", name), cred)
	}
	cert := filepath.Join(root, "control", "servercert.pem")
	if err := os.WriteFile(cert, selfSigned(t, "mx.example.com"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(cert, int(cred.Uid), int(cred.Gid))
	} else if os.Geteuid() == 0 {
		d := lookupIDs(t, "qmaild")
		os.Chown(cert, d[0], d[1])
		cp := filepath.Join(root, "bin", "checkpassword")
		if err := os.Chmod(cp, 0o711|os.ModeSetuid); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func lookupIDs(t *testing.T, name string) [2]int {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return [2]int{uid, gid}
}

// selfSigned is a certificate and its key in one PEM file.
func selfSigned(t testing.TB, host string) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})...)
}

// listener is a launcher serving qmail-smtpd on a loopback port.
type listener struct {
	cmd  *exec.Cmd
	port string
	log  *testutil.SyncBuffer
}

// listen starts qmail-smtpd with args under launcher ("tcpserver" for
// Debian's, "qmail-tcpserver" for ours) on 127.0.0.1 and an unused port.
// In a root install the sessions run as qmaild, as a run script has it.
func listen(t *testing.T, launcher, root string, cred *syscall.Credential, env []string, args ...string) *listener {
	t.Helper()
	path := filepath.Join(root, "bin", "qmail-tcpserver")
	if launcher == "tcpserver" {
		path = testutil.NeedTool(t, "tcpserver", "ucspi-tcp")
	}
	largs := []string{"-1", "-R", "-H", "-l", "mx.example.com"}
	if cred == nil && os.Geteuid() == 0 {
		d := lookupIDs(t, "qmaild")
		largs = append(largs, "-u", strconv.Itoa(d[0]), "-g", strconv.Itoa(d[1]))
	}
	largs = append(largs, "127.0.0.1", "0", filepath.Join(root, "bin", "qmail-smtpd"))
	cmd := exec.Command(path, append(largs, args...)...)
	cmd.Env = append([]string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	log := &testutil.SyncBuffer{}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &listener{cmd: cmd, log: log}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", launcher, log)
		}
	})
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s printed no port: %v; log:\n%s", launcher, err, log)
	}
	l.port = strings.TrimSpace(port)
	return l
}

func (l *listener) addr() string { return "127.0.0.1:" + l.port }

// smtpClient is a minimal client for dialogues the tools cannot script.
type smtpClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialSMTP(t *testing.T, addr string) *smtpClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { conn.Close() })
	c := &smtpClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 mx.example.com ESMTP")
	return c
}

// reply reads one whole reply, continuation lines included.
func (c *smtpClient) reply() string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *smtpClient) expect(prefix string) string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("reply %q, want %q", r, prefix)
	}
	return r
}

func (c *smtpClient) cmdReply(line string) string {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	return c.reply()
}

func (c *smtpClient) cmd(line, prefix string) string {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(prefix)
}

const (
	exact552 = "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
	exact553 = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
)

// TestSMTPDRecipients checks the RCPT rules against a real instance: the
// same lookup as local delivery, and every classic relay disguise.
func TestSMTPDRecipients(t *testing.T) {
	root := smtpInstance(t, nil)
	l := listen(t, "tcpserver", root, nil, nil)
	c := dialSMTP(t, l.addr())
	c.cmd("EHLO client.example.org", "250-mx.example.com")
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	for _, tt := range []struct{ rcpt, want string }{
		{"joe@example.test", "250 ok"},
		{"JOE@Example.TEST", "250 ok"},
		{"sales@example.test", "250 ok"},        // the domain's .qmail-sales alias
		{"postmaster@mx.example.com", "250 ok"}, // locals: the alias user
		{"postmaster", "250 ok"},
		{"nosuchuser@example.test", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"joe-nosuchext@example.test", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"nosuchuser@mx.example.com", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"someone@elsewhere.example", exact553},
		{"someone%elsewhere.example@example.test", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"elsewhere.example!someone@example.test", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"\"someone@elsewhere.example\"@example.test", exact553},
		{"@example.test:someone@elsewhere.example", exact553},
		{"someone@[10.9.8.7]", exact553},
		{"someone@elsewhere.example.", exact553},
		{"someone@example.test.elsewhere.example", exact553},
	} {
		if r := c.cmdReply("RCPT TO:<" + tt.rcpt + ">"); r != tt.want {
			t.Errorf("RCPT TO:<%s>: %q, want %q", tt.rcpt, r, tt.want)
		}
	}
	c.cmd("QUIT", "221 ")

	// With the percent hack on for our domain, user%elsewhere@ours is
	// a route elsewhere: refused as a relay attempt, not queued.
	os.WriteFile(filepath.Join(root, "control", "percenthack"), []byte("example.test\n"), 0o644)
	c = dialSMTP(t, l.addr())
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<someone%elsewhere.example@example.test>", exact553)
	c.cmd("RCPT TO:<joe@example.test>", "250 ok")
}

// TestSMTPDRelayGrants: RELAYCLIENT from the launcher and a
// POP-before-SMTP grant let a client relay on port 25, never on 587.
func TestSMTPDRelayGrants(t *testing.T) {
	root := smtpInstance(t, nil)
	mx := listen(t, "tcpserver", root, nil, []string{"RELAYCLIENT="})
	c := dialSMTP(t, mx.addr())
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<someone@elsewhere.example>", "250 ok")

	sub := listen(t, "tcpserver", root, nil, []string{"RELAYCLIENT="}, "--submission")
	c = dialSMTP(t, sub.addr())
	c.cmd("MAIL FROM:<joe@example.test>", "530 5.7.0")

	plainMX := listen(t, "tcpserver", root, nil, nil)
	c = dialSMTP(t, plainMX.addr())
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<someone@elsewhere.example>", exact553)
	if err := popgrant.Record(root, "127.0.0.1", time.Now()); err != nil {
		t.Fatal(err)
	}
	c = dialSMTP(t, plainMX.addr())
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<someone@elsewhere.example>", "250 ok")
	c = dialSMTP(t, sub.addr())
	c.cmd("RCPT TO:<someone@elsewhere.example>", "530 5.7.0")
}

// runSwaks runs swaks and returns its transcript.
func runSwaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	swaks := testutil.NeedTool(t, "swaks", "swaks")
	cmd := exec.Command(swaks, append([]string{"--timeout", "30"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testSMTPDClients sends mail with real clients through qmail-smtpd
// under launcher, on the three ports, and checks what reaches the mailbox.
func testSMTPDClients(t *testing.T, launcher string, cred *syscall.Credential) {
	root := smtpInstance(t, cred)
	u := startUnit(t, root, "", cred)
	defer u.term(t)
	mx := listen(t, launcher, root, cred, nil)
	sub := listen(t, launcher, root, cred, nil, "--submission")
	smtps := listen(t, launcher, root, cred, nil, "--smtps")
	maildir := filepath.Join(root, "domains", "example.test", "joe", "Maildir")
	sent := 0
	expectSwaks := func(name, want string, args ...string) string {
		t.Helper()
		out, err := runSwaks(t, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("%s: swaks %v: %v\n%s", name, args, err, out)
		}
		return out
	}
	// Port 25 to a local user, plain and pipelined.
	expectSwaks("mx", "<-  250 ok", "--server", mx.addr(), "--from", "alice@example.org", "--to", "joe@example.test",
		"--header", "Subject: swaks mx", "--body", "via port 25")
	sent++
	expectSwaks("pipelining", "<-  250 ok", "--server", mx.addr(), "--pipeline", "--from", "alice@example.org",
		"--to", "joe@example.test", "--header", "Subject: swaks pipelined")
	sent++
	// Relaying without authorization is refused with the exact text.
	out, _ := runSwaks(t, "--server", mx.addr(), "--from", "alice@example.org", "--to", "bob@elsewhere.example")
	if !strings.Contains(out, "<** "+exact553) {
		t.Fatalf("relay attempt:\n%s", out)
	}
	// Submission: nothing without AUTH; AUTH PLAIN, LOGIN and CRAM-MD5
	// after STARTTLS.
	out, _ = runSwaks(t, "--server", sub.addr(), "--from", "joe@example.test", "--to", "bob@elsewhere.example")
	if !strings.Contains(out, "<** 530 5.7.0") {
		t.Fatalf("submission without AUTH:\n%s", out)
	}
	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5"} {
		out := expectSwaks("submission "+mech, "<~  250 ok", "--server", sub.addr(), "--tls", "--auth", mech,
			"--auth-user", "joe@example.test", "--auth-password", "pw", "--from", "joe@example.test",
			"--to", "joe@example.test", "--header", "Subject: swaks "+mech)
		if !strings.Contains(out, "<~  235 ok, go ahead (#2.0.0)") {
			t.Fatalf("%s: no 235:\n%s", mech, out)
		}
		sent++
	}
	out, _ = runSwaks(t, "--server", sub.addr(), "--tls", "--auth", "PLAIN", "--auth-user", "joe@example.test",
		"--auth-password", "wrong", "--from", "joe@example.test", "--to", "joe@example.test")
	if !strings.Contains(out, "<~* 535 authentication failed (#5.7.1)") {
		t.Fatalf("wrong password:\n%s", out)
	}
	// CRAM-MD5 needs no TLS; PLAIN does.
	out = expectSwaks("cram without tls", "<-  235 ", "--server", sub.addr(), "--auth", "CRAM-MD5", "--auth-user", "joe@example.test",
		"--auth-password", "pw", "--from", "joe@example.test", "--to", "joe@example.test", "--header", "Subject: cram plain")
	sent++
	// SMTPS: implicit TLS.
	expectSwaks("smtps", "<~  250 ok", "--server", smtps.addr(), "--tlsc", "--auth", "LOGIN",
		"--auth-user", "joe@example.test", "--auth-password", "pw", "--from", "joe@example.test", "--to", "joe@example.test",
		"--header", "Subject: swaks smtps")
	sent++

	// curl, over submission with STARTTLS and over SMTPS.
	curl := testutil.NeedTool(t, "curl", "curl")
	msgFile := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(msgFile, []byte("From: joe@example.test\r\nTo: joe@example.test\r\nSubject: curl\r\n\r\nsent by curl\r\n"), 0o644)
	for _, url := range []string{"smtp://" + sub.addr(), "smtps://" + smtps.addr()} {
		cmd := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "--url", url, "--user", "joe@example.test:pw",
			"--mail-from", "joe@example.test", "--mail-rcpt", "joe@example.test", "-T", msgFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
		sent++
	}

	// Python's smtplib: STARTTLS, login, a message over databytes refused
	// with the exact text, and the session still usable afterwards.
	py := testutil.NeedTool(t, "python3", "python3")
	script := `
import smtplib, ssl, sys
ctx = ssl._create_unverified_context()
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.starttls(context=ctx)
s.login("joe@example.test", "pw")
big = "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * (int(sys.argv[2]) // 1000)
try:
    s.sendmail("joe@example.test", ["joe@example.test"], big)
    print("big accepted")
except smtplib.SMTPSenderRefused as e:
    print("big refused at MAIL", e.smtp_code, e.smtp_error.decode())
# Without SIZE= the refusal comes after the data, and the session goes on.
del s.esmtp_features["size"]
try:
    s.sendmail("joe@example.test", ["joe@example.test"], big)
    print("big accepted")
except smtplib.SMTPDataError as e:
    print("big refused after DATA", e.smtp_code, e.smtp_error.decode())
s.sendmail("joe@example.test", ["joe@example.test"], "Subject: smtplib\r\n\r\nafter the big one\r\n")
print("small accepted")
s.quit()
`
	// Only one launcher's run sends 21 MB through; the others a little
	// over a lowered databytes, since the session code is the same.
	bigSize := "22020096" // 21 MiB
	if launcher != "tcpserver" {
		bigSize = "300000"
		os.WriteFile(filepath.Join(root, "control", "databytes"), []byte("200000\n"), 0o644)
	}
	cmd := exec.Command(py, "-c", script, sub.port, bigSize)
	pyOut, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, pyOut)
	}
	text := strings.TrimPrefix(exact552, "552 ")
	if want := "big refused at MAIL 552 " + text + "\nbig refused after DATA 552 " + text + "\nsmall accepted\n"; string(pyOut) != want {
		t.Fatalf("smtplib said %q, want %q", pyOut, want)
	}
	sent++

	files := waitMaildir(t, maildir, sent, u)
	subjects := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(b)
		for _, line := range strings.Split(msg, "\n") {
			if strings.HasPrefix(line, "Subject: ") {
				subjects[strings.TrimPrefix(line, "Subject: ")] = true
			}
		}
		if strings.Contains(msg, "Subject: swaks smtps") && !strings.Contains(msg, "with ESMTPSA (TLS 1.") {
			t.Errorf("SMTPS message's Received line does not note TLS and AUTH:\n%s", msg)
		}
		if strings.Contains(msg, "Subject: swaks mx") && !strings.Contains(msg, "Received: from unknown (HELO ") {
			t.Errorf("port 25 message's Received line:\n%s", msg)
		}
	}
	for _, s := range []string{"swaks mx", "swaks pipelined", "swaks PLAIN", "swaks LOGIN", "swaks CRAM-MD5", "cram plain", "swaks smtps", "curl", "smtplib"} {
		if !subjects[s] {
			t.Errorf("no message %q delivered; have %v", s, subjects)
		}
	}
	if len(files) != sent {
		t.Errorf("%d messages delivered, %d sent", len(files), sent)
	}
}

func TestSMTPDClientsUnderTcpserver(t *testing.T)      { testSMTPDClients(t, "tcpserver", nil) }
func TestSMTPDClientsUnderQmailTcpserver(t *testing.T) { testSMTPDClients(t, "qmail-tcpserver", nil) }

func TestSMTPDClientsAsOrdinaryUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testSMTPDClients(t, "qmail-tcpserver", nil)
		return
	}
	testSMTPDClients(t, "qmail-tcpserver", nobody)
}

// TestSMTPDBigMessageMemory passes a 20 MB message through qmail-smtpd
// run directly on a socket, with no TCP* variables (as under inetd), and
// checks that the message was streamed: the process's peak memory stays
// far below the message size.
func TestSMTPDBigMessageMemory(t *testing.T) {
	root := smtpInstance(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	started := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			started <- 0
			return
		}
		f, _ := conn.(*net.TCPConn).File()
		conn.Close()
		cmd := exec.Command(filepath.Join(root, "bin", "qmail-smtpd"))
		cmd.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
		cmd.Stdin, cmd.Stdout = f, f
		if err := cmd.Start(); err != nil {
			started <- 0
			return
		}
		f.Close()
		started <- cmd.Process.Pid
		done <- cmd.Wait()
	}()
	c := dialSMTP(t, ln.Addr().String())
	pid := <-started
	if pid == 0 {
		t.Fatal("qmail-smtpd did not start")
	}
	c.cmd("EHLO client.example.org", "250-mx.example.com")
	c.cmd("MAIL FROM:<someone@example.org> SIZE=20000000", "250 ok")
	c.cmd("RCPT TO:<joe@example.test>", "250 ok")
	c.cmd("DATA", "354 ")
	w := bufio.NewWriterSize(c.conn, 1<<16)
	w.WriteString("Subject: big\r\n\r\n")
	line := strings.Repeat("y", 78) + "\r\n"
	const size = 20_000_000
	for n := 0; n < size; n += len(line) {
		w.WriteString(line)
	}
	w.WriteString(".\r\n")
	w.Flush()
	c.expect("250 ok ")
	// The session's own peak, not counting the queue program it ran.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var hwm int64
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm, _ = strconv.ParseInt(strings.Fields(l)[1], 10, 64)
		}
	}
	c.cmd("QUIT", "221 ")
	if err := <-done; err != nil {
		t.Fatalf("qmail-smtpd: %v", err)
	}
	rss := hwm * 1024
	t.Logf("peak RSS of qmail-smtpd while a %d-byte message passed: %.1f MiB", size, float64(rss)/(1<<20))
	if rss == 0 || rss > 12<<20 {
		t.Errorf("qmail-smtpd's peak RSS was %d bytes for a %d-byte message: it was not streamed", rss, size)
	}
	q := injReadQueue(t, root)
	if len(q) != 1 {
		t.Fatalf("%d messages in the queue", len(q))
	}
	if !strings.Contains(q[0].mess, "Received: from unknown (HELO client.example.org) (127.0.0.1)\n  by 127.0.0.1 with SMTP; ") {
		t.Errorf("Received lines under no launcher:\n%.300s", q[0].mess)
	}
}

// TestSMTPDUnderInetd runs qmail-smtpd as inetd does: the socket on
// fds 0, 1 and 2 and no TCP* variables. Nothing it logs may reach the
// client, and the addresses come from the socket.
func TestSMTPDUnderInetd(t *testing.T) {
	root := smtpInstance(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		f, _ := conn.(*net.TCPConn).File()
		conn.Close()
		cmd := exec.Command(filepath.Join(root, "bin", "qmail-smtpd"))
		cmd.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
		err = cmd.Run()
		f.Close()
		done <- err
	}()
	c := dialSMTP(t, ln.Addr().String())
	c.cmd("HELO client.example.org", "250 mx.example.com")
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<someone@elsewhere.example>", exact553)
	c.cmd("RCPT TO:<nosuchuser@example.test>", "550 ")
	c.cmd("RCPT TO:<joe@example.test>", "250 ok")
	c.cmd("DATA", "354 ")
	c.cmd("Subject: inetd\r\n\r\nhello\r\n.", "250 ok ")
	c.cmd("QUIT", "221 mx.example.com")
	if err := <-done; err != nil {
		t.Fatalf("qmail-smtpd: %v", err)
	}
	q := injReadQueue(t, root)
	if len(q) != 1 || !strings.Contains(q[0].mess, "(127.0.0.1)\n  by 127.0.0.1 with SMTP; ") {
		t.Fatalf("queued: %+v", q)
	}
}

// TestSMTPDOnPipes runs a session over pipes, as a launcher with pipes or
// a test harness would: slow input is waited for, and timeoutsmtpd still
// ends a silent session.
func TestSMTPDOnPipes(t *testing.T) {
	root := smtpInstance(t, nil)
	os.WriteFile(filepath.Join(root, "control", "timeoutsmtpd"), []byte("1\n"), 0o644)
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-smtpd"))
	cmd.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r := bufio.NewReader(out)
	read := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return l
	}
	if l := read(); l != "220 mx.example.com ESMTP\r\n" {
		t.Fatalf("greeting %q", l)
	}
	time.Sleep(300 * time.Millisecond) // input arrives late, within the timeout
	io.WriteString(in, "NOOP\r\n")
	if l := read(); l != "250 ok\r\n" {
		t.Fatalf("NOOP: %q", l)
	}
	start := time.Now()
	if l := read(); l != "451 timeout (#4.4.2)\r\n" {
		t.Fatalf("after silence: %q", l)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("timed out after %v, timeoutsmtpd is 1 s", d)
	}
	cmd.Wait()
}

// TestSMTPDAuthDabrowskiCommandLine: "qmail-smtpd HOSTNAME CHECKPROG
// SUBPROG" (the older AUTH patch's form) works; HOSTNAME names the
// CRAM-MD5 challenge's host.
func TestSMTPDAuthDabrowskiCommandLine(t *testing.T) {
	root := smtpInstance(t, nil)
	l := listen(t, "tcpserver", root, nil, nil, "--submission", "auth.example.test", filepath.Join(root, "bin", "checkpassword"), "/bin/true")
	c := dialSMTP(t, l.addr())
	c.cmd("EHLO x", "250-")
	ch := c.cmd("AUTH CRAM-MD5", "334 ")
	challenge, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(ch, "334 "))
	if !strings.HasSuffix(string(challenge), "@auth.example.test>") {
		t.Errorf("challenge %q", challenge)
	}
	c.cmd(base64.StdEncoding.EncodeToString([]byte("joe@example.test "+hmacMD5("pw", string(challenge)))), "235 ")
}

// TestSMTPDAuthFailsClosed: a checkpassword that is missing or crashes is
// a temporary failure, never a login.
func TestSMTPDAuthFailsClosed(t *testing.T) {
	root := smtpInstance(t, nil)
	crash := filepath.Join(t.TempDir(), "crash")
	os.WriteFile(crash, []byte("#!/bin/sh\nkill -SEGV $$\n"), 0o755)
	os.Chmod(filepath.Dir(crash), 0o755)
	for _, checker := range []string{filepath.Join(root, "bin", "nosuchprogram"), crash} {
		l := listen(t, "tcpserver", root, nil, nil, "--submission", "--checkpassword", checker)
		c := dialSMTP(t, l.addr())
		c.cmd("EHLO x", "250-")
		c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00joe@example.test\x00pw")), "538 ")
		c.cmd("STARTTLS", "220 ")
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		c.conn, c.r = tc, bufio.NewReader(tc)
		c.cmd("EHLO x", "250-")
		c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00joe@example.test\x00pw")), "454 ")
		c.cmd("MAIL FROM:<joe@example.test>", "530 5.7.0")
	}
}

func hmacMD5(key, msg string) string {
	m := hmac.New(md5.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestSMTPDContractLimits: a contract over its disk quota gets the 452
// of SPEC §6 at RCPT (counting SIZE=), and one over its receive rate the
// 423, both with the exact texts.
func TestSMTPDContractLimits(t *testing.T) {
	root := smtpInstance(t, nil)
	ctl := filepath.Join(root, "control")
	os.WriteFile(filepath.Join(ctl, "quotas"), []byte("example.test:10000\n"), 0o644)
	os.WriteFile(filepath.Join(ctl, "ratelimits"), []byte("example.test:0:2:1h:1h\n"), 0o644)
	// 6000 bytes already in joe's mailbox, counted as delivery would.
	msg := filepath.Join(root, "domains", "example.test", "joe", "Maildir", "new", "1.2.host")
	if err := os.WriteFile(msg, bytes.Repeat([]byte("x"), 6000), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, err := quota.Current(root, "example.test"); err != nil || u.Bytes != 6000 {
		t.Fatalf("usage %+v, %v", u, err)
	}
	l := listen(t, "tcpserver", root, nil, nil)
	c := dialSMTP(t, l.addr())
	c.cmd("MAIL FROM:<someone@example.org> SIZE=5000", "250 ok")
	c.cmd("RCPT TO:<joe@example.test>", "452 sorry, mailbox is full (#4.5.2)")
	c.cmd("RCPT TO:<sales@example.test>", "452 sorry, mailbox is full (#4.5.2)")
	c.cmd("RCPT TO:<postmaster@mx.example.com>", "250 ok") // not a contract's
	for i := 0; i < 2; i++ {
		c.cmd("MAIL FROM:<someone@example.org> SIZE=100", "250 ok")
		c.cmd("RCPT TO:<joe@example.test>", "250 ok")
		c.cmd("DATA", "354 ")
		c.cmd("Subject: rate\r\n\r\nhi\r\n.", "250 ok ")
	}
	c.cmd("MAIL FROM:<someone@example.org>", "250 ok")
	c.cmd("RCPT TO:<joe@example.test>", "423 sorry, that message exceeds my limit")
	c.cmd("RCPT TO:<postmaster@mx.example.com>", "250 ok")
	c.cmd("QUIT", "221 ")
}
