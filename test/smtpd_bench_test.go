//go:build integration

package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// smtpBenchServer is qmail-smtpd under qmail-tcpserver -k reuse on an
// instance with joe@example.test, and no delivery side: what is measured
// ends in the queue.
func smtpBenchServer(b *testing.B, reuse int) string {
	b.Helper()
	bin := testutil.Bin(b)
	root := filepath.Join(b.TempDir(), "q")
	for _, args := range [][]string{
		{"init", "--root", root, "--hostname", "mx.example.com"},
		{"domain", "add", "example.test", "--root", root},
	} {
		if out, err := exec.Command(filepath.Join(bin, "qmailctl"), args...).CombinedOutput(); err != nil {
			b.Fatalf("qmailctl %v: %v\n%s", args, err, out)
		}
	}
	add := exec.Command(filepath.Join(bin, "qmailctl"), "user", "add", "joe@example.test", "--password-stdin", "--root", root)
	add.Stdin = strings.NewReader("pw\n")
	if out, err := add.CombinedOutput(); err != nil {
		b.Fatalf("user add: %v\n%s", err, out)
	}
	for _, name := range []string{"qmail-queue", "qmail-smtpd", "qmail-tcpserver"} {
		data, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "bin", name), data, 0o755)
	}
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-tcpserver"), "-1", "-R", "-H", "-l", "mx.example.com", "-c", "100",
		"-k", strconv.Itoa(reuse), "127.0.0.1", "0", filepath.Join(root, "bin", "qmail-smtpd"))
	cmd.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	})
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return "127.0.0.1:" + strings.TrimSpace(port)
}

// smtpExchange sends lines and checks each reply's first digit.
func smtpExchange(addr string, lines []string, wants string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	readReply := func() (string, error) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(l) < 4 || l[3] != '-' {
				return l, nil
			}
		}
	}
	if l, err := readReply(); err != nil || l[0] != '2' {
		return fmt.Errorf("greeting %q %v", l, err)
	}
	for i, line := range lines {
		if _, err := conn.Write([]byte(line)); err != nil {
			return err
		}
		l, err := readReply()
		if err != nil || l[0] != wants[i] {
			return fmt.Errorf("%q: %q %v", line, l, err)
		}
	}
	return nil
}

// BenchmarkSMTPD measures qmail-smtpd under qmail-tcpserver over real
// sockets, serially: "session" is a connection with EHLO and QUIT;
// "message" is one 2 KB message per connection into the queue, durable
// when the client reads 250. Under "k1" (tcpserver's way) a session
// creates one process and a message two (the session and qmail-queue);
// under "k100" (qmailctl's services) one qmail-smtpd process serves up
// to 100 connections in turn and keeps one qmail-queue for all its
// messages. Compare with BenchmarkFsyncBaseline and BenchmarkExecHello
// from the same run.
func BenchmarkSMTPD(b *testing.B) {
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 2048/80)
	for _, reuse := range []int{1, 100} {
		b.Run(fmt.Sprintf("k%d", reuse), func(b *testing.B) {
			addr := smtpBenchServer(b, reuse)
			b.Run("session", func(b *testing.B) {
				before := forks(b)
				for b.Loop() {
					if err := smtpExchange(addr, []string{"EHLO bench\r\n", "QUIT\r\n"}, "22"); err != nil {
						b.Fatal(err)
					}
				}
				reportForks(b, before)
			})
			b.Run("message", func(b *testing.B) {
				before := forks(b)
				lines := []string{"EHLO bench\r\n", "MAIL FROM:<a@example.org>\r\n", "RCPT TO:<joe@example.test>\r\n",
					"DATA\r\n", "Subject: bench\r\n\r\n" + body + ".\r\n", "QUIT\r\n"}
				for b.Loop() {
					if err := smtpExchange(addr, lines, "222322"); err != nil {
						b.Fatal(err)
					}
				}
				reportForks(b, before)
			})
		})
	}
}
