//go:build integration

package test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// startSink runs Postfix's smtp-sink on a loopback port, storing each
// message in dir.
func startSink(t *testing.T, dir string) string {
	t.Helper()
	sink := testutil.NeedTool(t, "smtp-sink", "postfix")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o777) // smtp-sink writes as nobody when run as root
	}
	args := []string{"-d", dir + "/%M.", "-h", "sink.test"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(sink, append(args, addr, "10")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i > 100 {
			t.Fatal("smtp-sink did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRefuser is an SMTP server that refuses every recipient with 550.
func startRefuser(t *testing.T) string {
	return startScripted(t, func(int) string { return "550 5.1.1 no such user here" }, nil)
}

// startScripted is an SMTP server whose answer to the n-th RCPT (from 0)
// is rcpt(n); it accepts the message and reports each one on got.
func startScripted(t *testing.T, rcpt func(n int) string, got chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	rcpts := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				var data strings.Builder
				c.Write([]byte("220 refuser.test ESMTP\r\n"))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
					case "EHLO", "HELO", "MAIL", "RSET", "NOOP":
						c.Write([]byte("250 ok\r\n"))
					case "RCPT":
						mu.Lock()
						reply := rcpt(rcpts)
						rcpts++
						mu.Unlock()
						c.Write([]byte(reply + "\r\n"))
					case "DATA":
						c.Write([]byte("354 go ahead\r\n"))
						for {
							l, err := r.ReadString('\n')
							if err != nil || l == ".\r\n" {
								break
							}
							data.WriteString(l)
						}
						c.Write([]byte("250 ok queued\r\n"))
						if got != nil {
							got <- data.String()
						}
					case "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					default:
						c.Write([]byte("503 bad sequence\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Remote delivery end to end: qmail-send hands remote recipients to
// qmail-rspawn, which delivers by SMTP through control/smtproutes; one
// to Postfix's smtp-sink, one to a server that refuses the recipient,
// whose 5xx comes back as a bounce in the local sender's Maildir.
func TestRemoteDelivery(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	root := localInstance(t, cred)
	sinkDir := t.TempDir()
	sink := startSink(t, sinkDir)
	refuser := startRefuser(t)
	routes := "sink.example:" + sink + "\nrefuse.example:" + refuser + "\n"
	if err := os.WriteFile(filepath.Join(root, "control", "smtproutes"), []byte(routes), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUnit(t, root, "/dev/null", cred)
	for _, to := range []string{"someone@sink.example", "nobody@refuse.example"} {
		r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "joe@example.test", to},
			env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: out to " + to + "\n\n.leading dot\nbody\n"})
		if r.code != 0 {
			u.term(t)
			t.Fatalf("sendmail: %d %s", r.code, r.stderr)
		}
	}
	bounces := waitMaildir(t, filepath.Join(root, "domains", "example.test", "joe", "Maildir"), 1, u)
	var sunk []string
	for i := 0; i < 200 && len(sunk) == 0; i++ {
		sunk, _ = filepath.Glob(filepath.Join(sinkDir, "*"))
		time.Sleep(25 * time.Millisecond)
	}
	u.term(t)
	if len(sunk) != 1 {
		t.Fatalf("%d messages at smtp-sink; log:\n%s", len(sunk), u.log)
	}
	got, _ := os.ReadFile(sunk[0])
	if !strings.Contains(string(got), "Subject: out to someone@sink.example") || !strings.Contains(string(got), "\n.leading dot\n") {
		t.Errorf("smtp-sink stored:\n%s", got)
	}
	b, _ := os.ReadFile(bounces[0])
	for _, want := range []string{"nobody@refuse.example", "550 5.1.1 no such user here", "multipart/report"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if !strings.Contains(u.log.String(), "to remote someone@sink.example") || !strings.Contains(u.log.String(), ": success: 127.0.0.1_accepted_message.") {
		t.Errorf("qmail-send log:\n%s", u.log)
	}
}

// A temporary failure is retried (here at once, on ALRM, as svc -a does)
// and then delivered.
func TestRemoteRetry(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	root := localInstance(t, cred)
	got := make(chan string, 1)
	peer := startScripted(t, func(n int) string {
		if n == 0 {
			return "451 4.3.0 try again later"
		}
		return "250 ok"
	}, got)
	if err := os.WriteFile(filepath.Join(root, "control", "smtproutes"), []byte("later.example:"+peer+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUnit(t, root, "/dev/null", cred)
	r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "joe@example.test", "x@later.example"},
		env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: patience\n\nbody\n"})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: %d %s", r.code, r.stderr)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(u.log.String(), "deferral: ") {
		if time.Now().After(deadline) {
			u.term(t)
			t.Fatalf("no deferral; log:\n%s", u.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u.cmd.Process.Signal(syscall.SIGALRM)
	select {
	case msg := <-got:
		if !strings.Contains(msg, "Subject: patience") {
			t.Errorf("delivered %q", msg)
		}
	case <-time.After(15 * time.Second):
		u.term(t)
		t.Fatalf("not delivered after ALRM; log:\n%s", u.log)
	}
	time.Sleep(100 * time.Millisecond)
	u.term(t)
	log := u.log.String()
	if !strings.Contains(log, "deferral: 127.0.0.1_does_not_like_recipient./Remote_host_said:_451_4.3.0_try_again_later/") || !strings.Contains(log, "success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok_queued/") {
		t.Errorf("log:\n%s", log)
	}
}
