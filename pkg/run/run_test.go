package run

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// The fakes stand in for qmail-start and a tcpserver, so these tests
// check the supervision itself: order, tags, signals, failures. Files in
// the instance root steer them. test/run_test.go runs the real programs.
const fakeStart = `#!/bin/sh
echo "status: local 0/10 remote 0/20"
echo "qmail-start args: $*" >&2
trap 'echo "got HUP"' HUP
trap 'echo "got ALRM"' ALRM
if [ -f "$QMAILHOME/ignore-term" ]; then
	trap 'echo "TERM ignored"' TERM
else
	trap 'echo "status: exiting"; exit 0' TERM
fi
while :; do sleep 0.05; done
`

const fakeTCPServer = `#!/bin/sh
for a in "$@"; do
	if [ -f "$QMAILHOME/fail-$a" ]; then
		echo "tcpserver: fatal: unable to bind: address already used" >&2
		exit 111
	fi
done
if [ -f "$QMAILHOME/session" ]; then
	# A session that outlives its listener, there before run is ready.
	sh -c 'trap "echo session got TERM >&2; exit 0" TERM; echo up >"$QMAILHOME/session"; while :; do sleep 0.05; done' &
	while [ ! -s "$QMAILHOME/session" ]; do sleep 0.01; done
fi
echo "tcpserver args: $*" >&2
echo "tcpserver: status: 0/40" >&2
while :; do sleep 0.05; done
`

func fakeInstance(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "control", "run"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string, perm os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	write("control/me", "mail.example.test\n", 0o644)
	write("bin/qmail-start", fakeStart, 0o755)
	write("bin/qmail-tcpserver", fakeTCPServer, 0o755)
	for _, p := range []string{"qmail-smtpd", "qmail-popup", "qmail-pop3d", "checkpassword"} {
		write("bin/"+p, "#!/bin/sh\nexit 0\n", 0o755)
	}
	return root
}

// running is one Run in a goroutine.
type running struct {
	out  *testutil.SyncBuffer
	sigs chan os.Signal
	done chan error
}

func start(t *testing.T, o Options) *running {
	t.Helper()
	r := &running{out: &testutil.SyncBuffer{}, sigs: make(chan os.Signal, 4), done: make(chan error, 1)}
	o.Out, o.Signals = r.out, r.sigs
	if o.daemonIDs == nil {
		o.daemonIDs = func() ([]string, error) { return nil, nil }
	}
	go func() { r.done <- Run(o) }()
	return r
}

func (r *running) waitFor(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.out.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", what, r.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return; output:\n%s", r.out)
		return nil
	}
}

var startedRE = regexp.MustCompile(`run: started (\S+) \(pid (\d+)\)`)

// noneLeft fails if a process group of a part still has a member.
func noneLeft(t *testing.T, out string) {
	t.Helper()
	m := startedRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no parts started:\n%s", out)
	}
	for _, p := range m {
		pid, _ := strconv.Atoi(p[2])
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s's process group %d still has processes (kill: %v)", p[1], pid, err)
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

func TestRunStopsListenersFirst(t *testing.T) {
	root := fakeInstance(t)
	r := start(t, Options{Root: root, Listeners: []Listener{
		{SMTP, "127.0.0.1:2525"}, {Submission, "[::1]:2587"}, {POP3, ":2110"},
	}})
	r.waitFor(t, "run: ready: send, smtp 127.0.0.1:2525, submission [::1]:2587, pop3 :2110\n")
	lock, err := os.ReadFile(filepath.Join(root, LockFile))
	if err != nil || string(lock) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want our pid", lock, err)
	}
	r.sigs <- syscall.SIGHUP
	r.waitFor(t, "send: got HUP\n")
	r.sigs <- syscall.SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.out)
	}
	out := r.out.String()
	bin := filepath.Join(root, "bin")
	for _, want := range []string{
		"send: status: local 0/10 remote 0/20\n",
		"send: qmail-start args: ./Maildir/\n",
		"smtp: tcpserver args: -v -R -H -l mail.example.test -c 100 -k 100 127.0.0.1 2525 " + bin + "/qmail-smtpd\n",
		"submission: tcpserver args: -v -R -H -l mail.example.test -c 100 -k 100 ::1 2587 " + bin + "/qmail-smtpd --submission\n",
		"pop3: tcpserver args: -v -R -H -l mail.example.test 0 2110 " + bin + "/qmail-popup mail.example.test " + bin + "/checkpassword " + bin + "/qmail-pop3d Maildir\n",
		"send: status: exiting\n",
		"run: stopped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// qmail-start hears TERM only once every listener is gone.
	if strings.Index(out, "send: status: exiting") < strings.Index(out, "run: SIGTERM") {
		t.Errorf("send stopped before the signal:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !regexp.MustCompile(`^(run|send|smtp|submission|pop3): `).MatchString(line) {
			t.Errorf("untagged line %q", line)
		}
	}
	noneLeft(t, out)
	if lock, _ := os.ReadFile(filepath.Join(root, LockFile)); len(lock) != 0 {
		t.Errorf("lock file still holds %q", lock)
	}
}

func TestRunDefaultDeliveryAndRules(t *testing.T) {
	root := fakeInstance(t)
	os.WriteFile(filepath.Join(root, "control/defaultdelivery"), []byte("./Mailbox\n"), 0o644)
	os.WriteFile(filepath.Join(root, "control/concurrencyincoming"), []byte("7\n"), 0o644)
	os.WriteFile(filepath.Join(root, "control/tcp.smtp.cdb"), nil, 0o644)
	r := start(t, Options{Root: root, Listeners: []Listener{{SMTP, "127.0.0.1:2525"}},
		daemonIDs: func() ([]string, error) { return []string{"-u", "7770", "-g", "2108"}, nil }})
	r.waitFor(t, "run: ready")
	r.sigs <- syscall.SIGINT
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	out := r.out.String()
	for _, want := range []string{
		"send: qmail-start args: ./Mailbox\n",
		"smtp: tcpserver args: -v -R -H -l mail.example.test -u 7770 -g 2108 -x " + root + "/control/tcp.smtp.cdb -c 7 -k 100 127.0.0.1 2525 " + root + "/bin/qmail-smtpd\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunPartDies(t *testing.T) {
	root := fakeInstance(t)
	os.WriteFile(filepath.Join(root, "fail-2525"), nil, 0o644)
	r := start(t, Options{Root: root, Listeners: []Listener{{POP3, "127.0.0.1:2110"}, {SMTP, "127.0.0.1:2525"}}})
	err := r.wait(t)
	out := r.out.String()
	if err == nil || !regexp.MustCompile(`^smtp \(pid \d+\) stopped unexpectedly: exit status 111$`).MatchString(err.Error()) {
		t.Errorf("Run = %v; want smtp's failure\n%s", err, out)
	}
	for _, want := range []string{
		"smtp: tcpserver: fatal: unable to bind: address already used\n",
		"stopped unexpectedly: exit status 111; stopping the rest\n",
		"send: status: exiting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	noneLeft(t, out)
}

func TestRunSessionsGetGraceThenTERM(t *testing.T) {
	root := fakeInstance(t)
	os.WriteFile(filepath.Join(root, "session"), nil, 0o644)
	r := start(t, Options{Root: root, Grace: 300 * time.Millisecond, Listeners: []Listener{{SMTP, "127.0.0.1:2525"}}})
	r.waitFor(t, "run: ready")
	r.sigs <- syscall.SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.out)
	}
	out := r.out.String()
	i := strings.Index(out, "run: smtp: sessions still running after 300ms: terminating them\n")
	j := strings.Index(out, "smtp: session got TERM\n")
	k := strings.Index(out, "send: status: exiting\n")
	if i < 0 || j < i || k < j {
		t.Errorf("want the grace period, then the session's TERM, then qmail-start's:\n%s", out)
	}
	noneLeft(t, out)
}

func TestRunSecondSignalKills(t *testing.T) {
	root := fakeInstance(t)
	os.WriteFile(filepath.Join(root, "ignore-term"), nil, 0o644)
	r := start(t, Options{Root: root, Listeners: []Listener{{SMTP, "127.0.0.1:2525"}}})
	r.waitFor(t, "run: ready")
	r.sigs <- syscall.SIGTERM
	r.sigs <- syscall.SIGTERM // the same one, delivered twice
	r.waitFor(t, "send: TERM ignored\n")
	time.Sleep(sameSignal)
	if strings.Contains(r.out.String(), "killed") {
		t.Fatalf("a signal delivered twice at once killed everything:\n%s", r.out)
	}
	r.sigs <- syscall.SIGINT
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "killed on a second signal") {
		t.Errorf("Run = %v; want the kill reported\n%s", err, r.out)
	}
	out := r.out.String()
	if !strings.Contains(out, "run: interrupt again: killing everything now") || !strings.Contains(out, "run: send: killed\n") {
		t.Errorf("output lacks the kill:\n%s", out)
	}
	noneLeft(t, out)
}

func TestRunRefusals(t *testing.T) {
	root := fakeInstance(t)
	release, err := Lock(root)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Options{Root: root})
	err = r.wait(t)
	release()
	want := fmt.Sprintf("the instance %s is already running under qmailctl run (pid %d, holding %s/run/qmailctl-run.lock): stop that one first", root, os.Getpid(), root)
	if err == nil || err.Error() != want {
		t.Errorf("second run: %v\nwant %s", err, want)
	}
	if strings.Contains(r.out.String(), "started") {
		t.Errorf("the second run started something:\n%s", r.out)
	}

	for _, tc := range []struct {
		name  string
		setup func()
		o     Options
		want  string
	}{
		{"smtps without a certificate", nil, Options{Listeners: []Listener{{SMTPS, "127.0.0.1:2465"}}},
			"--smtps needs a certificate in " + root + "/control/servercert.pem: make one with qmailctl cert --self-signed --root " + root},
		{"broken certificate", func() { os.WriteFile(filepath.Join(root, "control/servercert.pem"), []byte("junk"), 0o600) },
			Options{Listeners: []Listener{{SMTPS, "127.0.0.1:2465"}}}, "control/servercert.pem: tls: failed to find any PEM data"},
		{"bad address", nil, Options{Listeners: []Listener{{SMTP, "127.0.0.1"}}}, "--smtp 127.0.0.1: want HOST:PORT"},
		{"bad port", nil, Options{Listeners: []Listener{{POP3, "127.0.0.1:pop3"}}}, `port "pop3": want a number from 1 to 65535`},
		{"same address twice", nil, Options{Listeners: []Listener{{SMTP, ":25"}, {Submission, ":25"}}}, "--submission :25: the address is already given to --smtp"},
		{"no launcher", func() { os.Remove(filepath.Join(root, "bin/qmail-tcpserver")) },
			Options{Listeners: []Listener{{SMTP, ":25"}}}, root + "/bin/qmail-tcpserver is missing: run qmailctl install"},
		{"no qmail-start", func() { os.Remove(filepath.Join(root, "bin/qmail-start")) }, Options{}, root + "/bin/qmail-start is missing"},
		{"no instance", func() { os.Remove(filepath.Join(root, "control/me")) }, Options{}, "is not an instance (control/me is missing): run qmailctl init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			tc.o.Root = root
			r := start(t, tc.o)
			err := r.wait(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct{ in, host, port, err string }{
		{"127.0.0.1:25", "127.0.0.1", "25", ""},
		{"[::1]:587", "::1", "587", ""},
		{":110", "0", "110", ""},
		{"mail.example.com:465", "mail.example.com", "465", ""},
		{"127.0.0.1", "", "", "want HOST:PORT"},
		{"::1:25", "", "", "want HOST:PORT"},
		{"127.0.0.1:0", "", "", "want a number from 1 to 65535"},
		{"127.0.0.1:65536", "", "", "want a number"},
		{"127.0.0.1:025", "", "", "want a number"},
		{"-x:25", "", "", "want an IP address or a host name"},
		{"a b:25", "", "", "want an IP address or a host name"},
	} {
		host, port, err := SplitAddr(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("SplitAddr(%q) = %v; want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("SplitAddr(%q) = %q %q %v; want %q %q", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

// FuzzSplitAddr: whatever an admin types, the result is an error or
// operands tcpserver cannot mistake for flags.
func FuzzSplitAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:25", "[::1]:587", ":110", "-v:25", "[fe80::1%eth0]:25", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := SplitAddr(s)
		if err != nil {
			return
		}
		if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t\n\x00") {
			t.Errorf("SplitAddr(%q): host %q", s, host)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Errorf("SplitAddr(%q): port %q", s, port)
		}
	})
}

func TestTaggerSplitsLongLines(t *testing.T) {
	var out testutil.SyncBuffer
	tg := &tagger{w: &out}
	long := strings.Repeat("x", maxLine+10)
	n := 0
	tg.copy("smtp", strings.NewReader("one\n"+long+"\nstatus: two\nlast"), func() { n++ })
	want := "smtp: one\nsmtp: " + long[:maxLine] + "\nsmtp: " + long[maxLine:] + "\nsmtp: status: two\nsmtp: last\n"
	if out.String() != want {
		t.Errorf("tagged output differs:\n%.200q\nwant\n%.200q", out.String(), want)
	}
	if n != 1 {
		t.Errorf("ready called %d times, want once", n)
	}
}

// benchLog is a burst of typical log lines: tcpserver's and qmail-send's.
var benchLog = strings.Repeat("tcpserver: ok 8484 mail.example.test:127.0.0.1:2525 :127.0.0.1::48942\nsend: delivery 1: success: did_1+0+0/\n", 500)

// BenchmarkTagger is the cost run adds to every log line: read, tag,
// write under the lock. BenchmarkCopyBaseline is a plain copy of the
// same bytes through the same buffer size, without lines or tags.
func BenchmarkTagger(b *testing.B) {
	tg := &tagger{w: io.Discard}
	b.SetBytes(int64(len(benchLog)))
	b.ReportAllocs()
	for b.Loop() {
		tg.copy("smtp", strings.NewReader(benchLog), func() {})
	}
}

func BenchmarkCopyBaseline(b *testing.B) {
	b.SetBytes(int64(len(benchLog)))
	b.ReportAllocs()
	for b.Loop() {
		io.CopyBuffer(io.Discard, struct{ io.Reader }{strings.NewReader(benchLog)}, make([]byte, maxLine))
	}
}

// writeCounter counts the writes it gets.
type writeCounter struct {
	testutil.SyncBuffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.SyncBuffer.Write(p)
}

// The lines one read brings go out in one write: a part that logs five
// lines at once costs the log one write, not five.
func TestTaggerWritesLinesOfOneReadTogether(t *testing.T) {
	out := &writeCounter{}
	tg := &tagger{w: out}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		tg.copy("send", pr, func() {})
		close(done)
	}()
	pw.Write([]byte("new msg 1\ninfo msg 1\nstarting delivery 1\n"))
	pw.Write([]byte("end msg 1\npartial"))
	pw.Close()
	<-done
	want := "send: new msg 1\nsend: info msg 1\nsend: starting delivery 1\nsend: end msg 1\nsend: partial\n"
	if out.String() != want {
		t.Errorf("tagged output %q, want %q", out.String(), want)
	}
	if out.writes != 3 {
		t.Errorf("%d writes for three reads, want 3", out.writes)
	}
}
