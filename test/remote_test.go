//go:build integration

package test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// rcptPeer is an SMTP server (no extensions) that answers each RCPT with
// answer(address, how many times that address came before), and keeps
// the RCPT addresses of each connection and each message accepted.
type rcptPeer struct {
	mu       sync.Mutex
	answer   func(rcpt string, seen int) string
	seen     map[string]int
	sessions [][]string
	messages []string
}

func startRcptPeer(t *testing.T, answer func(rcpt string, seen int) string) (*rcptPeer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &rcptPeer{answer: answer, seen: map[string]int{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			n := len(p.sessions)
			p.sessions = append(p.sessions, nil)
			p.mu.Unlock()
			go p.serve(c, n)
		}
	}()
	return p, ln.Addr().String()
}

func (p *rcptPeer) serve(c net.Conn, n int) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("220 peer.test ESMTP\r\n"))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "RCPT":
			rcpt := strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			p.mu.Lock()
			p.sessions[n] = append(p.sessions[n], rcpt)
			reply := p.answer(rcpt, p.seen[rcpt])
			p.seen[rcpt]++
			p.mu.Unlock()
			c.Write([]byte(reply + "\r\n"))
		case "DATA":
			c.Write([]byte("354 go ahead\r\n"))
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			p.mu.Lock()
			p.messages = append(p.messages, data.String())
			p.mu.Unlock()
			c.Write([]byte("250 ok queued\r\n"))
		case "QUIT":
			c.Write([]byte("221 bye\r\n"))
			return
		default:
			c.Write([]byte("250 ok\r\n"))
		}
	}
}

func (p *rcptPeer) snapshot() (sessions [][]string, messages []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sessions {
		sessions = append(sessions, append([]string(nil), s...))
	}
	return sessions, append([]string(nil), p.messages...)
}

// waitLog waits until the unit's log holds n copies of want.
func waitLog(t *testing.T, u *unit, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(u.log.String(), want) < n {
		if time.Now().After(deadline) {
			u.term(t)
			t.Fatalf("log has %d of %d %q:\n%s", strings.Count(u.log.String(), want), n, want, u.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// asEveryone runs f for the root install (as root) and for a
// single-user instance (as nobody when root, else as ourselves).
func asEveryone(t *testing.T, f func(t *testing.T, cred *syscall.Credential)) {
	t.Run("root", func(t *testing.T) {
		testutil.NeedRoot(t)
		f(t, nil)
	})
	t.Run("user", func(t *testing.T) {
		var cred *syscall.Credential
		if os.Geteuid() == 0 {
			cred = nobody
		}
		f(t, cred)
	})
}

// Three recipients at one domain go out in one connection with three
// RCPTs; a 550 for one bounces only that one, a 451 for another retries
// only that one, in a connection of its own.
func TestRemoteBatch(t *testing.T) {
	asEveryone(t, func(t *testing.T, cred *syscall.Credential) {
		root := localInstance(t, cred)
		peer, addr := startRcptPeer(t, func(rcpt string, seen int) string {
			switch {
			case strings.HasPrefix(rcpt, "bad@"):
				return "550 5.1.1 no such user here"
			case strings.HasPrefix(rcpt, "later@") && seen == 0:
				return "451 4.7.1 greylisted, come back later"
			}
			return "250 ok"
		})
		if err := os.WriteFile(filepath.Join(root, "control", "smtproutes"), []byte("batch.example:"+addr+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		u := startUnit(t, root, "/dev/null", cred)
		r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "joe@example.test", "good@batch.example", "bad@Batch.example", "later@batch.EXAMPLE"},
			env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: three at once\n\nbody\n"})
		if r.code != 0 {
			u.term(t)
			t.Fatalf("sendmail: %d %s", r.code, r.stderr)
		}
		waitLog(t, u, ": deferral: ", 1)
		sessions, messages := peer.snapshot()
		if len(sessions) != 1 || len(sessions[0]) != 3 || len(messages) != 1 {
			u.term(t)
			t.Fatalf("first pass: connections with their RCPTs %q, %d messages; want one connection with three RCPTs, one message\n%s", sessions, len(messages), u.log)
		}
		// The bounce goes when the message's last recipient is done.
		u.cmd.Process.Signal(syscall.SIGALRM)
		waitLog(t, u, "end msg ", 1)
		bounces := waitMaildir(t, filepath.Join(root, "domains", "example.test", "joe", "Maildir"), 1, u)
		u.term(t)

		sessions, messages = peer.snapshot()
		if len(sessions) != 2 || strings.Join(sessions[1], " ") != "later@batch.EXAMPLE" || len(messages) != 2 {
			t.Errorf("after the retry: connections %q, %d messages; want a second connection for later@ alone", sessions, len(messages))
		}
		b, _ := os.ReadFile(bounces[0])
		bounce := string(b)
		for _, want := range []string{"<bad@Batch.example>:", "550 5.1.1 no such user here", "Final-Recipient: rfc822; bad@Batch.example"} {
			if !strings.Contains(bounce, want) {
				t.Errorf("bounce lacks %q:\n%s", want, bounce)
			}
		}
		if strings.Contains(bounce, "<good@") || strings.Contains(bounce, "<later@") {
			t.Errorf("bounce names a recipient that did not fail:\n%s", bounce)
		}
		// Each recipient has its own delivery number and lines, in
		// qmail-send's formats.
		log := u.log.String()
		starts := regexp.MustCompile(`starting delivery (\d+): msg \d+ to remote (\S+)\n`).FindAllStringSubmatch(log, -1)
		num := map[string][]string{}
		for _, m := range starts {
			num[m[2]] = append(num[m[2]], m[1])
		}
		for rcpt, results := range map[string][]string{
			"good@batch.example":  {"success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok_queued/"},
			"bad@Batch.example":   {"failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550_5.1.1_no_such_user_here/"},
			"later@batch.EXAMPLE": {"deferral: 127.0.0.1_does_not_like_recipient./Remote_host_said:_451_4.7.1_greylisted,_come_back_later/", "success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok_queued/"},
		} {
			if len(num[rcpt]) != len(results) {
				t.Errorf("%s: %d deliveries, want %d:\n%s", rcpt, len(num[rcpt]), len(results), log)
				continue
			}
			for i, res := range results {
				if line := "delivery " + num[rcpt][i] + ": " + res + "\n"; !strings.Contains(log, line) {
					t.Errorf("log lacks %q:\n%s", line, log)
				}
			}
		}
	})
}

// fullListener is an address on loopback whose connects time out: a
// socket listening with a backlog of 0 whose one queue place is taken,
// so the kernel drops further SYNs.
func fullListener(t *testing.T, ip [4]byte) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(net.IP(ip[:]).String(), strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections: cannot make a connect time out", addr)
	}
	return addr
}

// A host whose connects time out is recorded in lock/tcpto (qmail-tcpto
// shows it); after two timeouts the next delivery skips it at once;
// qmail-tcpok empties the table and qmail-rspawn empties it at start.
func TestRemoteTCPTo(t *testing.T) {
	asEveryone(t, func(t *testing.T, cred *syscall.Credential) {
		root := localInstance(t, cred)
		slow := fullListener(t, [4]byte{127, 0, 0, 2})
		for name, v := range map[string]string{"smtproutes": "slow.example:" + slow + "\n", "timeoutconnect": "2\n"} {
			if err := os.WriteFile(filepath.Join(root, "control", name), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tcpto := func() string {
			t.Helper()
			r := run(t, proc{args: []string{"qmail-tcpto"}, env: []string{"QMAILHOME=" + root}, as: cred})
			if r.code != 0 {
				t.Fatalf("qmail-tcpto: %d %s", r.code, r.stderr)
			}
			return r.stdout
		}
		timeouts := regexp.MustCompile(`^127\.0\.0\.2 timed out \d+ seconds ago; # recent timeouts: (\d+)\n$`)
		noConn := ": deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/\n"

		u := startUnit(t, root, "/dev/null", cred)
		r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "joe@example.test", "x@slow.example"},
			env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: slow\n\nbody\n"})
		if r.code != 0 {
			u.term(t)
			t.Fatalf("sendmail: %d %s", r.code, r.stderr)
		}
		waitLog(t, u, noConn, 1)
		if m := timeouts.FindStringSubmatch(tcpto()); m == nil || m[1] != "1" {
			u.term(t)
			t.Fatalf("after one timeout qmail-tcpto says %q", tcpto())
		}
		// qmail counts one timeout per address per 120 s: make the
		// one recorded older than that, as if the retry came later.
		ageTCPTo(t, filepath.Join(root, "queue", "lock", "tcpto"), [4]byte{127, 0, 0, 2}, 130*time.Second)
		u.cmd.Process.Signal(syscall.SIGALRM)
		waitLog(t, u, noConn, 2)
		if m := timeouts.FindStringSubmatch(tcpto()); m == nil || m[1] != "2" {
			u.term(t)
			t.Fatalf("after two timeouts qmail-tcpto says %q", tcpto())
		}
		// Now the address is skipped: the deferral comes without the
		// 2 s a connect attempt takes to time out.
		start := time.Now()
		u.cmd.Process.Signal(syscall.SIGALRM)
		waitLog(t, u, noConn, 3)
		if d := time.Since(start); d >= time.Second {
			t.Errorf("the third attempt took %v: the dead address was tried again", d)
		}
		u.term(t)
		if m := timeouts.FindStringSubmatch(tcpto()); m == nil || m[1] != "2" {
			t.Errorf("a skipped address changed the table: %q", tcpto())
		}

		// qmail-rspawn empties the table at start, as qmail's does.
		u = startUnit(t, root, "/dev/null", cred)
		waitLog(t, u, "status: ", 1)
		time.Sleep(200 * time.Millisecond)
		u.term(t)
		if out := tcpto(); out != "" {
			t.Errorf("after a restart qmail-tcpto says %q", out)
		}
		// qmail-tcpok empties it on request.
		ageTCPTo(t, filepath.Join(root, "queue", "lock", "tcpto"), [4]byte{127, 0, 0, 9}, 0)
		if out := tcpto(); !strings.HasPrefix(out, "127.0.0.9 timed out") {
			t.Fatalf("qmail-tcpto says %q", out)
		}
		if r := run(t, proc{args: []string{"qmail-tcpok"}, env: []string{"QMAILHOME=" + root}, as: cred}); r.code != 0 {
			t.Fatalf("qmail-tcpok: %d %s", r.code, r.stderr)
		}
		if out := tcpto(); out != "" {
			t.Errorf("after qmail-tcpok qmail-tcpto says %q", out)
		}
	})
}

// ageTCPTo moves the last timeout of ip in lock/tcpto back by age,
// adding a record with one timeout when ip has none.
func ageTCPTo(t *testing.T, path string, ip [4]byte, age time.Duration) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || len(data) != 1024 {
		t.Fatalf("lock/tcpto: %d bytes, %v", len(data), err)
	}
	i := 0
	for i < 64 && !bytes.Equal(data[i*16:i*16+4], ip[:]) {
		i++
	}
	if i == 64 {
		for i = 0; data[i*16+4] != 0; i++ {
		}
		copy(data[i*16:], ip[:])
		data[i*16+4] = 1
	}
	binary.LittleEndian.PutUint32(data[i*16+8:], uint32(time.Now().Add(-age).Unix()))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX) // as every user of the table
	if _, err := f.WriteAt(data[i*16:i*16+16], int64(i*16)); err != nil {
		t.Fatal(err)
	}
}
