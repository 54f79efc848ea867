package qq

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/reuse"
	"github.com/quail-mta/quail/queue"
)

// The test binary doubles as a serving queue program: with
// QQ_TEST_SERVE=DIR it answers each message with the status its body
// names ("status N"), recording "pid body" lines in DIR/log.
func TestMain(m *testing.M) {
	if dir := os.Getenv("QQ_TEST_SERVE"); dir != "" {
		os.Exit(fakeServer(dir))
	}
	os.Exit(m.Run())
}

func fakeServer(dir string) int {
	if os.Getenv(EnvServe) == "" || !reuse.FromParent(ServeFD) {
		return 81
	}
	ch, err := pollfd.NewChannel(ServeFD)
	if err != nil {
		return 81
	}
	code := fakeOne(dir, os.Stdin, os.Stdout)
	for {
		if SendResult(ch, code) != nil {
			return 0
		}
		msg, env, err := ReceiveMessage(ch)
		if err != nil {
			return 0
		}
		code = fakeOne(dir, msg, env)
		msg.Close()
		env.Close()
	}
}

func fakeOne(dir string, msg, env io.Reader) int {
	body, err := io.ReadAll(msg)
	if err != nil {
		return 54
	}
	e, err := queue.ReadEnvelope(env)
	if err != nil {
		return 54
	}
	if strings.HasPrefix(string(body), "die") {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	if strings.HasPrefix(string(body), "vanish") {
		os.Exit(0) // gone without an answer, and without failing
	}
	f, _ := os.OpenFile(filepath.Join(dir, "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	f.WriteString(strconv.Itoa(os.Getpid()) + " " + strings.TrimSpace(string(body)) + " " + e.Sender + "\n")
	f.Close()
	if n, ok := strings.CutPrefix(string(body), "status "); ok {
		c, _ := strconv.Atoi(strings.TrimSpace(n))
		return c
	}
	return 0
}

// serving makes the test binary the queue program, serving into a log.
func serving(t *testing.T) (log func() []string) {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILQUEUE", exe)
	t.Setenv("QQ_TEST_SERVE", dir)
	return func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return strings.Fields(strings.ReplaceAll(string(b), "\n", " | "))
	}
}

func send(t *testing.T, k *Keeper, body string) (pid int, err error) {
	t.Helper()
	inj, err := k.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	inj.Write([]byte(body))
	return inj.Pid(), inj.Finish(queue.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
}

func TestKeeperServes(t *testing.T) {
	log := serving(t)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	pids := map[int]bool{}
	for i, want := range []string{"", "", "mail server permanently rejected message (#5.3.0)", ""} {
		body := "msg" + strconv.Itoa(i)
		if want != "" {
			body = "status 31"
		}
		pid, err := send(t, k, body)
		pids[pid] = true
		if (err == nil) != (want == "") || (err != nil && err.Error() != want) {
			t.Errorf("message %d: %v, want %q", i, err, want)
		}
	}
	if len(pids) != 1 {
		t.Errorf("4 messages took %d processes, want 1", len(pids))
	}
	if l := strings.Join(log(), " "); strings.Count(l, "|") != 4 {
		t.Errorf("server log %q", l)
	}
}

// An aborted message is not queued, and the program goes on serving.
func TestKeeperAbort(t *testing.T) {
	log := serving(t)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	pid1, _ := send(t, k, "first")
	inj, err := k.Start()
	if err != nil {
		t.Fatal(err)
	}
	inj.Write([]byte("half a messa"))
	inj.Abort()
	pid2, err := send(t, k, "third")
	if err != nil || pid2 != pid1 {
		t.Errorf("after an abort: %v, pid %d then %d", err, pid1, pid2)
	}
	if l := strings.Join(log(), " "); strings.Contains(l, "half") || !strings.Contains(l, "third") {
		t.Errorf("server log %q", l)
	}
}

// A serving program that dies while idle is replaced unseen; one that
// dies during a message is reported as qmail reports a crash.
func TestKeeperProgramDies(t *testing.T) {
	serving(t)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	pid1, err := send(t, k, "first")
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid1, syscall.SIGKILL)
	k.proc.Wait()
	pid2, err := send(t, k, "second")
	if err != nil || pid2 == pid1 {
		t.Fatalf("after the program died idle: %v, pid %d then %d", err, pid1, pid2)
	}
	_, err = send(t, k, "die now")
	var e *Error
	if !errors.As(err, &e) || e.Text != "qq crashed (#4.3.0)" {
		t.Errorf("program killed mid-message: %v", err)
	}
	if _, err := send(t, k, "fourth"); err != nil {
		t.Errorf("after a crash: %v", err)
	}
}

// A program that does not serve (qmail's qmail-queue, a hook) runs once
// per message, with its own exit status and custom texts, as with Start.
func TestKeeperOneShotProgram(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pids")
	hook(t, `cat >/dev/null; cat <&1 >/dev/null; echo $$ >> `+out+`; if [ -e `+out+`.refuse ]; then printf 'DNo thanks' >&4; exit 82; fi`)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	for i := 0; i < 3; i++ {
		if _, err := send(t, k, "m"); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	os.WriteFile(out+".refuse", nil, 0o644)
	_, err := send(t, k, "m")
	var e *Error
	if !errors.As(err, &e) || e.Text != "No thanks" || !e.Permanent {
		t.Errorf("custom refusal through a one-shot program: %v", err)
	}
	b, _ := os.ReadFile(out)
	if n := len(strings.Fields(string(b))); n != 4 {
		t.Errorf("%d processes for 4 messages, want 4", n)
	}
	if !k.once {
		t.Error("the Keeper still asks a program that does not serve")
	}
}

// A program that does not serve answers by exiting, even when a child it
// left behind still holds the channel open.
func TestKeeperOneShotLeavesChild(t *testing.T) {
	hook(t, `cat >/dev/null; cat <&1 >/dev/null; sleep 5 >/dev/null 2>&1 & exit 0`)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	start := time.Now()
	if _, err := send(t, k, "m"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Finish took %v: it waited for the program's child", d)
	}
}

// A message sent over the channel that gets no answer was not queued,
// even when the program exits 0.
func TestKeeperNoAnswerIsNotQueued(t *testing.T) {
	serving(t)
	k := NewKeeper(t.TempDir())
	defer k.Close()
	if _, err := send(t, k, "first"); err != nil {
		t.Fatal(err)
	}
	_, err := send(t, k, "vanish")
	var e *Error
	if !errors.As(err, &e) || e.Text != "qq crashed (#4.3.0)" {
		t.Errorf("program gone with status 0 and no answer: %v, want qq crashed", err)
	}
}
