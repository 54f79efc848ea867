//go:build integration

package test

// Benchmarks of the queue side, run by scripts/bench. Each reports, next
// to ns/op, the process creations per operation (from the "processes"
// line of /proc/stat, so everything the machine forked counts: run on a
// quiet machine) and, where it has one, a ratio to a baseline measured in
// the same run.

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/testutil"
)

// forks reads the number of processes created since boot.
func forks(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "processes "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no processes line in /proc/stat")
	return 0
}

func reportForks(b *testing.B, before int64) {
	b.ReportMetric(float64(forks(b)-before)/float64(b.N), "procs/op")
}

// BenchmarkFsyncBaseline is the disk's durable-create rate: write 2 KB to
// a new file, fsync it, rename it into place, fsync the directory.
func BenchmarkFsyncBaseline(b *testing.B) {
	dir := b.TempDir()
	msg := bytes.Repeat([]byte("x"), 2048)
	i := 0
	for b.Loop() {
		if err := atomicfile.WriteFile(filepath.Join(dir, strconv.Itoa(i)), msg, 0o644); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func buildHello(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-o", out, "./test/hello")
	cmd.Dir = testutil.ModuleRoot(b)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, o)
	}
	return out
}

// BenchmarkExecHello is the start-up baseline: fork, exec and exit of a
// static Go program that does nothing.
func BenchmarkExecHello(b *testing.B) {
	hello := buildHello(b)
	before := forks(b)
	for b.Loop() {
		if err := exec.Command(hello).Run(); err != nil {
			b.Fatal(err)
		}
	}
	reportForks(b, before)
}

// BenchmarkExecStartup runs each per-message program with --help (which
// returns before touching the queue): its start-up cost, to compare with
// BenchmarkExecHello.
func BenchmarkExecStartup(b *testing.B) {
	bin := testutil.Bin(b)
	for _, prog := range []string{"qmail-queue", "sendmail", "qmail-inject", "qmail-smtpd"} {
		if _, err := os.Stat(filepath.Join(bin, prog)); err != nil {
			continue
		}
		b.Run(prog, func(b *testing.B) {
			for b.Loop() {
				c := exec.Command(filepath.Join(bin, prog), "--help")
				c.Stderr = nil
				c.Run()
			}
		})
	}
}

// benchInstance is an instance with the queue programs in its bin/ and no
// delivery side running.
func benchInstance(b *testing.B) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "q")
	bin := testutil.Bin(b)
	if out, err := exec.Command(filepath.Join(bin, "qmailctl"), "init", "--root", root, "--hostname", "mx.example.com").CombinedOutput(); err != nil {
		b.Fatalf("init: %v\n%s", err, out)
	}
	for _, name := range []string{"qmail-queue", "sendmail", "qmail-inject"} {
		data, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			continue
		}
		os.WriteFile(filepath.Join(root, "bin", name), data, 0o755)
	}
	return root
}

// BenchmarkQmailQueue is the injection rate through qmail-queue, one
// process per message, each message durable when it exits 0.
func BenchmarkQmailQueue(b *testing.B) {
	root := benchInstance(b)
	msg := "Subject: bench\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32)
	env := []byte("Fbench@example.org\x00Tuser@example.test\x00\x00")
	before := forks(b)
	for b.Loop() {
		cmd := exec.Command(filepath.Join(root, "bin", "qmail-queue"))
		cmd.Env = []string{"QMAILHOME=" + root}
		cmd.Stdin = strings.NewReader(msg)
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		w.Write(env)
		w.Close()
		cmd.Stdout = r
		err = cmd.Run()
		r.Close()
		if err != nil {
			b.Fatalf("qmail-queue: %v", err)
		}
	}
	reportForks(b, before)
}

// BenchmarkSendmail is injection as a CGI script does it: sendmail -t -i
// with the message on stdin, which runs qmail-queue.
func BenchmarkSendmail(b *testing.B) {
	root := benchInstance(b)
	if _, err := os.Stat(filepath.Join(root, "bin", "sendmail")); err != nil {
		b.Skip("no sendmail built")
	}
	msg := "To: user@example.test\nSubject: bench\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32)
	before := forks(b)
	for b.Loop() {
		cmd := exec.Command(filepath.Join(root, "bin", "sendmail"), "-t", "-i")
		cmd.Env = []string{"QMAILHOME=" + root, "USER=bench"}
		cmd.Stdin = strings.NewReader(msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("sendmail: %v %s", err, out)
		}
	}
	reportForks(b, before)
}

// BenchmarkInjectToMaildir is the whole local path: qmail-queue (one
// process per message), qmail-send, qmail-lspawn and its qmail-local
// worker, into a virtual mailbox's Maildir. It times from the first
// injection until the last message is in new/.
func BenchmarkInjectToMaildir(b *testing.B) {
	bin := testutil.Bin(b)
	root := filepath.Join(b.TempDir(), "q")
	os.Chmod(filepath.Dir(root), 0o755) // the delivery side's accounts must reach it
	os.Chmod(filepath.Dir(filepath.Dir(root)), 0o755)
	qmailctl := filepath.Join(bin, "qmailctl")
	for _, args := range [][]string{
		{"init", "--root", root, "--hostname", "mx.example.com"},
		{"domain", "add", "example.test", "--root", root},
	} {
		if out, err := exec.Command(qmailctl, args...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	add := exec.Command(qmailctl, "user", "add", "joe@example.test", "--password-stdin", "--root", root)
	add.Stdin = strings.NewReader("pw\n")
	if out, err := add.CombinedOutput(); err != nil {
		b.Fatalf("user add: %v\n%s", err, out)
	}
	for _, name := range []string{"qmail-start", "qmail-send", "qmail-clean", "qmail-queue", "qmail-lspawn", "qmail-rspawn", "qmail-local"} {
		data, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "bin", name), data, 0o755)
	}
	if os.Geteuid() == 0 {
		// qmail-queue setuid qmailq, as installed: qmail-lspawn delivers
		// only message files qmailq wrote.
		q, err := user.Lookup("qmailq")
		if err != nil {
			b.Fatal(err)
		}
		uid, _ := strconv.Atoi(q.Uid)
		gid, _ := strconv.Atoi(q.Gid)
		qq := filepath.Join(root, "bin", "qmail-queue")
		os.Chown(qq, uid, gid)
		os.Chmod(qq, 0o711|os.ModeSetuid)
	}
	start := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	start.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
	if err := start.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		start.Process.Signal(syscall.SIGTERM)
		start.Wait()
	}()
	newDir := filepath.Join(root, "domains", "example.test", "joe", "Maildir", "new")
	msg := "Subject: bench\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32)
	env := []byte("Fbench@example.org\x00Tjoe@example.test\x00\x00")
	time.Sleep(200 * time.Millisecond) // the unit is up
	b.ResetTimer()
	before := forks(b)
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(filepath.Join(root, "bin", "qmail-queue"))
		cmd.Env = []string{"QMAILHOME=" + root}
		cmd.Stdin = strings.NewReader(msg)
		r, w, _ := os.Pipe()
		w.Write(env)
		w.Close()
		cmd.Stdout = r
		err := cmd.Run()
		r.Close()
		if err != nil {
			b.Fatalf("qmail-queue: %v", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		entries, _ := os.ReadDir(newDir)
		if len(entries) >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered", len(entries), b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	reportForks(b, before)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
