//go:build integration

package test

// The delivery side's remote throughput, against Postfix's smtp-sink.
//
//	go test -tags integration -run '^$' -bench RemoteDelivery -benchtime 1000x ./test/

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/testutil"
	"github.com/quail-mta/quail/queue"
)

// benchBody is about 2 KB, as in the other benchmarks.
var benchBody = strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32)

// BenchmarkRemoteDelivery is the whole remote path: b.N messages are put
// in the queue first (not timed), then qmail-start starts qmail-send,
// qmail-rspawn and qmail-clean with control/concurrencyremote 20, and
// the clock runs until qmail-send has logged "end msg" for every one.
// Each message has rcpts recipients at the one domain, which
// control/smtproutes sends to a local smtp-sink.
//
// Baselines measured in the same run, reported as ratios:
//   - x-smtp-source: smtp-source sending b.N messages of the same size
//     and recipients to the same smtp-sink with 20 sessions, a new
//     connection per message as qmail-rspawn makes: the peer's and the
//     loopback's own ceiling.
//   - fsync-creates/msg: how many durable 2 KB creates (write, fsync,
//     rename, fsync the directory; BenchmarkFsyncBaseline) the disk
//     does in the time one message takes.
func BenchmarkRemoteDelivery(b *testing.B) {
	for _, rcpts := range []int{1, 10} {
		b.Run(fmt.Sprintf("rcpts=%d", rcpts), func(b *testing.B) { benchRemote(b, rcpts) })
	}
}

func benchRemote(b *testing.B, rcpts int) {
	sink := startBenchSink(b)
	root := remoteBenchInstance(b, sink)
	q := queue.New(root)
	var to []string
	for i := range rcpts {
		to = append(to, fmt.Sprintf("rcpt%d@sink.example", i))
	}
	msg := []byte("Received: bench\nSubject: remote bench\n\n" + benchBody)
	for range b.N {
		w, err := q.Create()
		if err != nil {
			b.Fatal(err)
		}
		w.Write(msg)
		if err := w.Commit(queue.Todo(os.Getuid(), os.Getpid(), queue.Envelope{Sender: "bench@example.org", Recipients: to})); err != nil {
			b.Fatal(err)
		}
	}

	start := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	start.Env = []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}
	start.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := start.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var ended, deferred, lastInfo, firstStart atomic.Int64
	t0 := time.Now()
	done := make(chan struct{})
	var logTail bytes.Buffer
	b.ResetTimer()
	before := forks(b)
	if err := start.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "end msg "):
				ended.Add(1)
			case strings.HasPrefix(line, "info msg "):
				lastInfo.Store(int64(time.Since(t0)))
			case strings.HasPrefix(line, "starting delivery "):
				if firstStart.Load() == 0 {
					firstStart.Store(int64(time.Since(t0)))
				}
			case strings.Contains(line, ": deferral: "), strings.Contains(line, ": failure: "):
				if deferred.Add(1) < 5 {
					logTail.WriteString(line + "\n")
				}
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for ended.Load() < int64(b.N) {
		if time.Now().After(deadline) || deferred.Load() > 0 {
			syscall.Kill(-start.Process.Pid, syscall.SIGKILL)
			start.Wait()
			b.Fatalf("%d of %d messages ended, %d deferrals or failures:\n%s", ended.Load(), b.N, deferred.Load(), logTail.String())
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	b.Logf("N=%d total %v, first delivery at %v, last preprocessed at %v", b.N, elapsed, time.Duration(firstStart.Load()), time.Duration(lastInfo.Load()))
	reportForks(b, before)
	start.Process.Signal(syscall.SIGTERM)
	start.Wait()
	<-done

	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rate*float64(rcpts), "rcpts/s")
	base := smtpSourceRate(b, sink, b.N, rcpts, len(msg))
	b.ReportMetric(base, "sink-msgs/s")
	b.ReportMetric(rate/base, "x-smtp-source")
	b.ReportMetric(fsyncRate(b)/rate, "fsync-creates/msg")
}

// startBenchSink runs smtp-sink discarding what it gets, with a backlog
// large enough for 20 sessions at once.
func startBenchSink(b *testing.B) string {
	b.Helper()
	bin := testutil.NeedTool(b, "smtp-sink", "postfix")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"-h", "sink.test"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, addr, "256")...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i > 100 {
			b.Fatal("smtp-sink did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remoteBenchInstance is an instance with the delivery side in bin/,
// routing sink.example to sink, 20 remote deliveries at once. As root
// it is a root install (each program under its own account).
func remoteBenchInstance(b *testing.B, sink string) string {
	b.Helper()
	bin := testutil.Bin(b)
	root := filepath.Join(b.TempDir(), "q")
	os.Chmod(filepath.Dir(root), 0o755) // the delivery side's accounts must reach it
	os.Chmod(filepath.Dir(filepath.Dir(root)), 0o755)
	if out, err := exec.Command(filepath.Join(bin, "qmailctl"), "init", "--root", root, "--hostname", "mx.example.com").CombinedOutput(); err != nil {
		b.Fatalf("init: %v\n%s", err, out)
	}
	for _, name := range []string{"qmail-start", "qmail-send", "qmail-clean", "qmail-queue", "qmail-lspawn", "qmail-rspawn", "qmail-local"} {
		data, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "bin", name), data, 0o755)
	}
	for name, v := range map[string]string{"concurrencyremote": "20\n", "smtproutes": "sink.example:" + sink + "\n"} {
		if err := os.WriteFile(filepath.Join(root, "control", name), []byte(v), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// smtpSourceRate is messages per second from smtp-source to the sink:
// n messages of size bytes with rcpts recipients each, 20 sessions, a
// new connection per message.
func smtpSourceRate(b *testing.B, sink string, n, rcpts, size int) float64 {
	b.Helper()
	bin := testutil.NeedTool(b, "smtp-source", "postfix")
	cmd := exec.Command(bin, "-s", "20", "-m", strconv.Itoa(n), "-r", strconv.Itoa(rcpts), "-l", strconv.Itoa(size),
		"-f", "bench@example.org", "-t", "rcpt@sink.example", sink)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("smtp-source: %v %s", err, stderr.String())
	}
	return float64(n) / time.Since(t0).Seconds()
}

// fsyncRate is durable 2 KB creates per second on the disk that holds
// the benchmark's temporary directories.
func fsyncRate(b *testing.B) float64 {
	b.Helper()
	dir := b.TempDir()
	data := bytes.Repeat([]byte("x"), 2048)
	const n = 200
	t0 := time.Now()
	for i := range n {
		if err := atomicfile.WriteFile(filepath.Join(dir, strconv.Itoa(i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return n / time.Since(t0).Seconds()
}
