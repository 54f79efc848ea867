package send

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/clean"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// harness runs a Sender in-process with fake spawners and the real
// qmail-clean logic over pipes.
type harness struct {
	t           *testing.T
	root        string
	q           queue.Queue
	sigs        chan os.Signal
	done        chan error
	mu          sync.Mutex
	log         bytes.Buffer
	reports     map[string]string // recipient → report; default K
	failBounces int               // the first failBounces injections fail
	seen        []string          // "sender recipient" per delivery
	bounces     []Bounce
	bodies      []string
	// plainRemote makes the remote spawner speak qmail's protocol only;
	// otherwise it takes batches of up to remoteMax recipients.
	plainRemote bool
	remoteMax   int
	batches     [][]string // the recipients of each remote command
	messes      []string   // the message field of every command, local and remote
	// answer, when set, replaces the per-recipient reports of a batch.
	answer func(b spawn.Batch) []string
	// gate, when set, runs before each delivery, outside mu.
	gate func(b spawn.Batch)
	// beforeSync is Config.beforeSync, directMax Config.directMax.
	beforeSync func()
	directMax  int
	// cleanWrites is each write qmail-send made to qmail-clean.
	cleanWrites []string
	// cleanGone makes every write to qmail-clean fail, as when it died.
	cleanGone bool
	// cleanIn is qmail-clean's input; cleanDone closes when it ends.
	cleanIn   *io.PipeWriter
	cleanDone chan bool
}

// cleanRecorder passes qmail-send's commands on to qmail-clean and
// records each write.
type cleanRecorder struct {
	h *harness
	w io.Writer
}

func (c cleanRecorder) Write(p []byte) (int, error) {
	c.h.mu.Lock()
	c.h.cleanWrites = append(c.h.cleanWrites, string(p))
	gone := c.h.cleanGone
	c.h.mu.Unlock()
	if gone {
		return 0, io.ErrClosedPipe
	}
	return c.w.Write(p)
}

func newHarness(t *testing.T, controls map[string]string) *harness {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	files := map[string]string{"me": "mx.example.com\n", "locals": "mx.example.com\n"}
	for k, v := range controls {
		files[k] = v
	}
	for k, v := range files {
		os.WriteFile(filepath.Join(root, "control", k), []byte(v), 0o644)
	}
	q := queue.New(root)
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, root: root, q: q, reports: map[string]string{}}
}

func (h *harness) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.Write(p)
}

func (h *harness) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

func (h *harness) spawner(remote bool) (to io.Writer, from io.Reader) {
	cmdR, cmdW := io.Pipe()
	resR, resW := io.Pipe()
	deliver := func(b spawn.Batch) []string {
		if h.gate != nil {
			h.gate(b)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.messes = append(h.messes, b.Mess)
		if remote {
			h.batches = append(h.batches, b.Recipients)
		}
		var reps []string
		for _, r := range b.Recipients {
			h.seen = append(h.seen, b.Sender+" "+r)
			if _, err := os.Stat(filepath.Join(h.q.Dir, "mess", b.Mess)); err != nil {
				reps = append(reps, "Zno such message file "+b.Mess)
			} else if rep, ok := h.reports[r]; ok {
				reps = append(reps, rep)
			} else {
				reps = append(reps, "Kdid 1+0+0\n")
			}
		}
		if h.answer != nil {
			return h.answer(b)
		}
		return reps
	}
	if remote && !h.plainRemote {
		max := h.remoteMax
		if max == 0 {
			max = 1000
		}
		go spawn.ServeBatches(cmdR, resW, spawn.Limit, max, deliver)
	} else {
		go spawn.Serve(cmdR, resW, spawn.Limit, func(c spawn.Command) string {
			return deliver(spawn.Batch{Slot: c.Slot, Mess: c.Mess, Sender: c.Sender, Recipients: []string{c.Recipient}})[0]
		})
	}
	return cmdW, resR
}

func (h *harness) start() {
	h.t.Helper()
	lTo, lFrom := h.spawner(false)
	rTo, rFrom := h.spawner(true)
	cmdR, cmdW := io.Pipe()
	resR, resW := io.Pipe()
	h.cleanIn, h.cleanDone = cmdW, make(chan bool)
	go func() {
		clean.Run(h.q, cmdR, resW)
		close(h.cleanDone)
	}()
	h.sigs = make(chan os.Signal, 4)
	h.done = make(chan error, 1)
	cfg := Config{Root: h.root, Log: h, ToLocal: lTo, FromLocal: lFrom, ToRemote: rTo, FromRemote: rFrom,
		ToClean: cleanRecorder{h, cmdW}, FromClean: resR, Signals: h.sigs, beforeSync: h.beforeSync, directMax: h.directMax,
		Bounce: func(b Bounce) (int, error) {
			body, _ := io.ReadAll(b.Message)
			h.mu.Lock()
			if h.failBounces > 0 {
				h.failBounces--
				h.mu.Unlock()
				return 0, io.ErrUnexpectedEOF
			}
			h.bounces = append(h.bounces, b)
			h.bodies = append(h.bodies, string(body))
			h.mu.Unlock()
			return 4242, nil
		}}
	go func() { h.done <- Run(cfg) }()
}

func (h *harness) stop() {
	h.t.Helper()
	h.sigs <- syscall.SIGTERM
	h.waitStopped()
}

// waitStopped waits for Run to return nil after a TERM, then ends
// qmail-clean.
func (h *harness) waitStopped() {
	h.t.Helper()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("qmail-send did not stop on TERM; log:\n%s", h.logText())
	}
	h.stopClean()
}

// stopClean ends qmail-clean, as its input closing does, so that a
// restart's qmail-clean is the only one.
func (h *harness) stopClean() {
	h.cleanIn.Close()
	<-h.cleanDone
}

func (h *harness) inject(sender string, rcpts ...string) uint64 {
	h.t.Helper()
	w, err := h.q.Create()
	if err != nil {
		h.t.Fatal(err)
	}
	io.WriteString(w, "Received: test\nSubject: x\n\nbody\n")
	if err := w.Commit(queue.Todo(0, 1, queue.Envelope{Sender: sender, Recipients: rcpts})); err != nil {
		h.t.Fatal(err)
	}
	return w.ID()
}

// waitFor polls until cond holds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; log:\n%s", what, h.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gone(p string) bool { _, err := os.Stat(p); return os.IsNotExist(err) }

// waitFinished waits until each message's mess/ file is gone: the last
// step of its end.
func (h *harness) waitFinished(what string, ids ...uint64) {
	h.t.Helper()
	h.waitFor(what, func() bool {
		for _, id := range ids {
			if !gone(h.q.Mess(id)) {
				return false
			}
		}
		return true
	})
}

// leftBehind reports each file of message id that is still there once it
// finished.
func (h *harness) leftBehind(id uint64) {
	h.t.Helper()
	for _, p := range []string{h.q.Todo(id), h.q.Intd(id), h.q.Info(id), h.q.Local(id), h.q.Remote(id), h.q.Bounce(id)} {
		if !gone(p) {
			h.t.Errorf("%s left behind", p)
		}
	}
}

// logHas reports each of want that the log lacks.
func (h *harness) logHas(want ...string) {
	h.t.Helper()
	log := h.logText()
	for _, w := range want {
		if !strings.Contains(log, w) {
			h.t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
}

// holdDeliveries makes each delivery wait at a gate: started returns
// once one waits there, and open lets them all through.
func (h *harness) holdDeliveries() (started, open func()) {
	at, gate := make(chan bool), make(chan bool)
	h.gate = func(spawn.Batch) {
		select {
		case at <- true:
		case <-gate: // open: nobody waits on at any more
		}
		<-gate
	}
	started = func() {
		h.t.Helper()
		select {
		case <-at:
		case <-time.After(10 * time.Second):
			h.t.Fatalf("no delivery started; log:\n%s", h.logText())
		}
	}
	return started, func() { close(gate) }
}

func TestDeliverAndFinish(t *testing.T) {
	h := newHarness(t, map[string]string{"virtualdomains": "example.test:example.test\n"})
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com", "ann@example.test", "far@remote.example")
	h.waitFor("message finished", func() bool { return gone(h.q.Mess(id)) && gone(h.q.Info(id)) })
	h.stop()
	h.leftBehind(id)
	h.logHas(
		"new msg "+itoa(id)+"\n",
		"info msg "+itoa(id)+": bytes 32 from <sender@example.org> qp 1 uid 0\n",
		"msg "+itoa(id)+" to local joe@mx.example.com\n",
		"msg "+itoa(id)+" to local example.test-ann@example.test\n",
		"msg "+itoa(id)+" to remote far@remote.example\n",
		": success: did_1+0+0/\n",
		"end msg "+itoa(id)+"\n",
		"status: exiting\n",
	)
	if len(h.seen) != 3 || len(h.bounces) != 0 {
		t.Errorf("deliveries %v, bounces %d", h.seen, len(h.bounces))
	}
}

func itoa(id uint64) string { return strconv.FormatUint(id, 10) }

func TestBounces(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["bad@remote.example"] = "D192.0.2.7 does not like recipient.\nRemote host said: 550 no such user\n\nGiving up on 192.0.2.7.\n"
	h.start()
	single := h.inject("sender@example.org", "bad@remote.example", "good@remote.example")
	double := h.inject("", "bad@remote.example")
	triple := h.inject("#@[]", "bad@remote.example")
	for _, id := range []uint64{single, double, triple} {
		h.waitFinished("message finished", id)
	}
	h.stop()
	log := h.logText()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bounces) != 2 {
		t.Fatalf("%d bounces, want 2 (single and double; the triple is discarded)", len(h.bounces))
	}
	byRcpt := map[string]int{}
	for i, b := range h.bounces {
		byRcpt[b.Recipient] = i
	}
	i, ok := byRcpt["sender@example.org"]
	if !ok || h.bounces[i].Sender != "" {
		t.Fatalf("single bounce: %+v", h.bounces)
	}
	body := h.bodies[i]
	for _, want := range []string{"<bad@remote.example>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 no such user\n/Giving up on 192.0.2.7.\n", "Return-Path: <sender@example.org>\n", "Subject: x\n\nbody\n",
		"Content-Type: multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; bad@remote.example",
		"Action: failed", "Diagnostic-Code: smtp; 550 no such user"} {
		if !strings.Contains(body, want) {
			t.Errorf("bounce lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "good@remote.example") {
		t.Errorf("bounce names the recipient that was delivered")
	}
	if i, ok := byRcpt["postmaster@mx.example.com"]; !ok || h.bounces[i].Sender != "#@[]" {
		t.Errorf("double bounce: %+v", h.bounces)
	}
	if !strings.Contains(log, "bounce msg "+itoa(single)+" qp 4242\n") {
		t.Errorf("no bounce line in log:\n%s", log)
	}
	if !strings.Contains(log, "triple bounce: discarding bounce/"+itoa(triple)) {
		t.Errorf("no triple-bounce line in log")
	}
}

func TestDeferralRetryAndAlarm(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["slow@remote.example"] = "Zconnected but greeting failed.\n"
	h.start()
	id := h.inject("s@example.org", "slow@remote.example")
	h.waitFor("deferral", func() bool { return strings.Contains(h.logText(), ": deferral: connected_but_greeting_failed./") })
	if gone(h.q.Remote(id)) {
		t.Fatal("a deferred recipient was dropped")
	}
	h.mu.Lock()
	delete(h.reports, "slow@remote.example")
	h.mu.Unlock()
	h.sigs <- syscall.SIGALRM // retry now
	h.waitFinished("delivery after ALRM", id)
	h.stop()
}

// A clean stop keeps the schedule in file mtimes; a restart resumes it,
// and a message past queuelifetime is failed and bounced.
func TestRestartAndLifetime(t *testing.T) {
	h := newHarness(t, map[string]string{"queuelifetime": "3600"})
	h.reports["slow@remote.example"] = "Ztry later\n"
	h.start()
	id := h.inject("s@example.org", "slow@remote.example")
	h.waitFor("deferral", func() bool { return strings.Contains(h.logText(), "deferral") })
	h.stop()
	st, err := os.Stat(h.q.Remote(id))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(st.ModTime()); d < 300*time.Second || d > 500*time.Second {
		t.Errorf("saved next retry is %v away, want about 400 s (qmail's first remote retry)", d)
	}
	// Age the message past its lifetime and make it due: the next pass
	// turns the deferral into a failure.
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(h.q.Info(id), old, old)
	os.Chtimes(h.q.Remote(id), old, old)
	h.log.Reset()
	h.start()
	h.waitFinished("message finished", id)
	h.stop()
	if len(h.bounces) != 1 || !strings.Contains(h.bodies[0], "try later\nI'm not going to try again; this message has been in the queue too long.\n") {
		t.Errorf("bounces %d: %q", len(h.bounces), h.bodies)
	}
}

func TestSecondInstanceRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	h.waitFor("start", func() bool { return strings.Contains(h.logText(), "status:") })
	lTo, lFrom := h.spawner(false)
	rTo, rFrom := h.spawner(true)
	var log bytes.Buffer
	err := Run(Config{Root: h.root, Log: &log, ToLocal: lTo, FromLocal: lFrom, ToRemote: rTo, FromRemote: rFrom,
		ToClean: io.Discard, FromClean: bufio.NewReader(strings.NewReader(""))})
	if err != ErrRunning || log.String() != "alert: cannot start: qmail-send is already running\n" {
		t.Errorf("second Run = %v, log %q", err, log.String())
	}
	h.stop()
}

func TestNextRetry(t *testing.T) {
	birth := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		age  time.Duration
		c    int
		want time.Duration
	}{
		{0, chLocal, 100 * time.Second},
		{0, chRemote, 400 * time.Second},
		{400 * time.Second, chRemote, 1600 * time.Second},
		{1600 * time.Second, chRemote, 3600 * time.Second},
		{100 * time.Second, chLocal, 400 * time.Second},
		{150 * time.Second, chLocal, 484 * time.Second}, // floor(sqrt(150)) = 12
	} {
		if got := nextRetry(birth, birth.Add(tc.age), tc.c).Sub(birth); got != tc.want {
			t.Errorf("nextRetry(age %v, %s) = %v after birth, want %v", tc.age, chanName[tc.c], got, tc.want)
		}
	}
}

func TestSenderFor(t *testing.T) {
	for _, tc := range []struct{ sender, rcpt, want string }{
		{"owner-@lists.example-@[]", "box@rhost.example", "owner-box=rhost.example@lists.example"},
		{"plain@example.org", "box@rhost.example", "plain@example.org"},
		{"", "box@rhost.example", ""},
		{"#@[]", "box@rhost.example", "#@[]"},
		{"-@[]", "box@r", "-@[]"},
	} {
		if got := senderFor(tc.sender, tc.rcpt); got != tc.want {
			t.Errorf("senderFor(%q, %q) = %q, want %q", tc.sender, tc.rcpt, got, tc.want)
		}
	}
}

func TestSafe(t *testing.T) {
	if got := safe("a b\n100%\x01é"); got != "a_b/100____" {
		t.Errorf("safe = %q", got)
	}
}

func TestCleanupOssified(t *testing.T) {
	h := newHarness(t, nil)
	orphan := h.inject("s@example.org", "x@remote.example")
	// Make it an orphan of a crashed injection: no todo/, no info/.
	os.Remove(h.q.Todo(orphan))
	os.Remove(h.q.Intd(orphan))
	young := h.inject("s@example.org", "y@remote.example")
	os.Remove(h.q.Todo(young))
	os.Remove(h.q.Intd(young))
	old := time.Now().Add(-37 * time.Hour)
	os.Chtimes(h.q.Mess(orphan), old, old)
	h.start()
	h.waitFor("status", func() bool { return strings.Contains(h.logText(), "status:") })
	h.stop()
	if !gone(h.q.Mess(orphan)) {
		t.Error("an ossified orphan stayed in mess/")
	}
	if gone(h.q.Mess(young)) {
		t.Error("a young orphan (maybe an injection in progress) was removed")
	}
}

// A bounce that cannot be injected is kept and tried again; the message
// stays until it is sent.
func TestBounceRetry(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["bad@remote.example"] = "DNo such user.\n"
	h.failBounces = 1
	h.start()
	id := h.inject("sender@example.org", "bad@remote.example")
	h.waitFor("failed injection", func() bool {
		return strings.Contains(h.logText(), "warning: trouble injecting bounce message, will try later")
	})
	if gone(h.q.Mess(id)) || gone(h.q.Bounce(id)) {
		t.Fatal("message or bounce/N removed though the bounce was not sent")
	}
	h.sigs <- syscall.SIGALRM
	h.waitFinished("bounce sent", id)
	h.stop()
	if len(h.bounces) != 1 || !gone(h.q.Bounce(id)) {
		t.Errorf("%d bounces, bounce/N gone: %v", len(h.bounces), gone(h.q.Bounce(id)))
	}
}

// HUP rereads the control files: a domain added to virtualdomains is
// delivered locally from then on.
func TestHUPRereadsControls(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	first := h.inject("s@example.org", "ann@new.example")
	h.waitFinished("first message", first)
	os.WriteFile(filepath.Join(h.root, "control", "virtualdomains"), []byte("new.example:new.example\n"), 0o644)
	h.sigs <- syscall.SIGHUP
	h.waitFor("status after HUP", func() bool { return strings.Count(h.logText(), "status:") > 0 })
	time.Sleep(50 * time.Millisecond) // the HUP is handled before the next trigger
	second := h.inject("s@example.org", "ann@new.example")
	h.waitFinished("second message", second)
	h.stop()
	log := h.logText()
	if !strings.Contains(log, "msg "+itoa(first)+" to remote ann@new.example\n") {
		t.Errorf("before HUP the domain should be remote:\n%s", log)
	}
	if !strings.Contains(log, "msg "+itoa(second)+" to local new.example-ann@new.example\n") {
		t.Errorf("after HUP the domain should be virtual and local:\n%s", log)
	}
}

// The loop sleeps until something can happen: a due job in a channel
// that cannot start it (full, holding for the probe, or qmail-send
// exiting) must not make it wake at once, or it would spin for as long
// as the channel stays full.
func TestUntilNext(t *testing.T) {
	now := time.Unix(1_000_000_000, 0)
	const idle = time.Hour + 10*time.Millisecond
	overdue := func() jobHeap {
		var h jobHeap
		h.add(&job{next: now.Add(-time.Minute)})
		return h
	}
	for _, tc := range []struct {
		name    string
		ch      channel
		exiting bool
		unsent  time.Time // a bounce to retry then, if set
		want    time.Duration
	}{
		{name: "nothing due", ch: channel{limit: 2, slots: make([]*delivery, 2)}, want: idle},
		{name: "overdue, a slot free", ch: channel{limit: 2, used: 1, slots: make([]*delivery, 2), due: overdue()}, want: 0},
		{name: "due later", ch: channel{limit: 2, slots: make([]*delivery, 2), due: func() jobHeap {
			var h jobHeap
			h.add(&job{next: now.Add(time.Minute)})
			return h
		}()}, want: time.Minute + 10*time.Millisecond},
		{name: "overdue, concurrency used up", ch: channel{limit: 2, used: 2, slots: make([]*delivery, 2), due: overdue()}, want: idle},
		{name: "overdue, no free slot", ch: channel{limit: 3, used: 2, slots: make([]*delivery, 2), due: overdue()}, want: idle},
		{name: "overdue, waiting for the probe", ch: channel{limit: 2, slots: make([]*delivery, 2), due: overdue(), probing: true, probeTimeout: now.Add(3 * time.Second)},
			want: 3*time.Second + 10*time.Millisecond},
		{name: "probe timed out, unanswered", ch: channel{limit: 2, slots: make([]*delivery, 2), probing: true, probeTimeout: now.Add(-time.Second)}, want: idle},
		{name: "probe timed out, overdue", ch: channel{limit: 2, slots: make([]*delivery, 2), due: overdue(), probing: true, probeTimeout: now.Add(-time.Second)}, want: 0},
		{name: "overdue, exiting", ch: channel{limit: 2, slots: make([]*delivery, 2), due: overdue()}, exiting: true, want: idle},
		{name: "bounce to retry", ch: channel{limit: 2, slots: make([]*delivery, 2)}, unsent: now.Add(-time.Second), want: 0},
		{name: "bounce to retry, exiting", ch: channel{limit: 2, slots: make([]*delivery, 2)}, unsent: now.Add(-time.Second), exiting: true, want: idle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{now: func() time.Time { return now }, exiting: tc.exiting, unsent: map[uint64]*message{}}
			ch := tc.ch
			s.chans = [2]*channel{&ch, {limit: 1, slots: make([]*delivery, 1)}}
			if !tc.unsent.IsZero() {
				s.unsent[1] = &message{id: 1, bounceRetry: tc.unsent}
			}
			if got := s.untilNext(); got != tc.want {
				t.Errorf("untilNext = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCleanBatched: the todo/ entries of one chunk go to qmail-clean in
// one write, so the chunk waits for qmail-clean once.
func TestCleanBatched(t *testing.T) {
	h := newHarness(t, nil)
	var ids []uint64
	for range 5 {
		// Two recipients: one alone is delivered without a chunk.
		ids = append(ids, h.inject("sender@example.org", "joe@mx.example.com", "ann@mx.example.com"))
	}
	h.start()
	h.waitFinished("messages finished", ids...)
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	var todo []string
	for _, w := range h.cleanWrites {
		if strings.Contains(w, "todo/") {
			todo = append(todo, w)
		}
	}
	if len(todo) != 1 || strings.Count(todo[0], "todo/") != len(ids) {
		t.Errorf("todo commands written as %q, want one write of %d", todo, len(ids))
	}
}

// TestDeliveriesGoOnWhileSyncing: a chunk's fsyncs run off the loop, so
// a delivery that ends meanwhile is handled, and its message finished,
// before they are done.
func TestDeliveriesGoOnWhileSyncing(t *testing.T) {
	h := newHarness(t, nil)
	atGate, openGate := make(chan bool), make(chan bool)
	h.gate = func(b spawn.Batch) {
		if b.Recipients[0] == "first@mx.example.com" {
			atGate <- true
			<-openGate
		}
	}
	syncing, release := make(chan bool, 1), make(chan bool)
	var chunks int
	h.beforeSync = func() {
		if chunks++; chunks == 2 {
			syncing <- true
			<-release
		}
	}
	h.start()
	// Two recipients each: a message of one local recipient is
	// delivered without a chunk (TestDirectDelivery).
	first := h.inject("sender@example.org", "first@mx.example.com", "other@mx.example.com")
	select {
	case <-atGate:
	case <-time.After(10 * time.Second):
		t.Fatalf("first delivery never started; log:\n%s", h.logText())
	}
	second := h.inject("sender@example.org", "second@mx.example.com", "other@mx.example.com")
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatalf("second chunk never synced; log:\n%s", h.logText())
	}
	close(openGate)
	h.waitFinished("first message finished while the second syncs", first)
	close(release)
	h.waitFinished("second message finished", second)
	h.stop()
}

// TestOneFoopAtStart: a message found finished at start, whose mess/ is
// old enough for the sweep of orphans, is removed through qmail-clean
// once: a second foop/N could remove a new message that took its id.
func TestOneFoopAtStart(t *testing.T) {
	h := newHarness(t, nil)
	id := h.inject("sender@example.org", "joe@mx.example.com")
	// State S7: info/ left, every delivery done, todo/ and intd/ gone.
	if err := os.WriteFile(h.q.Info(id), []byte("Fsender@example.org\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(h.q.Todo(id))
	os.Remove(h.q.Intd(id))
	old := time.Now().Add(-40 * time.Hour)
	os.Chtimes(h.q.Mess(id), old, old)
	h.start()
	h.waitFinished("message removed", id)
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, w := range h.cleanWrites {
		n += strings.Count(w, "foop/"+itoa(id)+"\x00")
	}
	if n != 1 {
		t.Errorf("foop/%d written %d times: %q", id, n, h.cleanWrites)
	}
}

// TestCleanLostEndsSend: without qmail-clean nothing can be finished;
// qmail-send says so and exits with an error.
func TestCleanLostEndsSend(t *testing.T) {
	h := newHarness(t, nil)
	h.cleanGone = true
	h.start()
	h.inject("sender@example.org", "joe@mx.example.com")
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "qmail-clean") {
			t.Errorf("Run returned %v, want the lost qmail-clean", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("qmail-send runs on without qmail-clean; log:\n%s", h.logText())
	}
	if log := h.logText(); !strings.Contains(log, "alert: oh no! lost qmail-clean connection! dying...\n") {
		t.Errorf("log lacks the alert:\n%s", log)
	}
}

// TestTermWhileSyncing: a TERM that comes while a chunk's fsyncs are in
// flight waits for them; the chunk is committed (todo/N gone, its info/
// and local/ files kept for the next start) before qmail-send exits.
func TestTermWhileSyncing(t *testing.T) {
	h := newHarness(t, nil)
	syncing, release := make(chan bool, 1), make(chan bool)
	h.beforeSync = func() {
		syncing <- true
		<-release
	}
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com", "ann@mx.example.com")
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatalf("chunk never synced; log:\n%s", h.logText())
	}
	h.sigs <- syscall.SIGTERM
	select {
	case err := <-h.done:
		t.Fatalf("Run returned %v while a chunk was syncing", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	h.waitStopped()
	if !gone(h.q.Todo(id)) || gone(h.q.Info(id)) || gone(h.q.Local(id)) {
		t.Errorf("after TERM: todo gone %v, info gone %v, local gone %v; want the message preprocessed",
			gone(h.q.Todo(id)), gone(h.q.Info(id)), gone(h.q.Local(id)))
	}
}

// TestFinishedCleanedInOneBatch: the messages finished in one turn go to
// qmail-clean as one write, after the turn, not one round trip each.
func TestFinishedCleanedInOneBatch(t *testing.T) {
	h := newHarness(t, nil)
	var ids []uint64
	for range 3 {
		id := h.inject("sender@example.org", "joe@mx.example.com")
		os.WriteFile(h.q.Info(id), []byte("Fsender@example.org\x00"), 0o600)
		ids = append(ids, id)
	}
	cmdR, cmdW := io.Pipe()
	resR, resW := io.Pipe()
	go clean.Run(h.q, cmdR, resW)
	defer cmdW.Close()
	s := &Sender{cfg: Config{ToClean: cleanRecorder{h, cmdW}}, q: h.q, log: logger{w: h},
		msgs: map[uint64]*message{}, unsent: map[uint64]*message{}, now: time.Now, clean: bufio.NewReader(resR)}
	for _, id := range ids {
		m := &message{id: id}
		s.msgs[id] = m
		s.complete(m)
	}
	h.mu.Lock()
	if len(h.cleanWrites) != 0 {
		t.Errorf("qmail-clean asked before the turn ended: %q", h.cleanWrites)
	}
	h.mu.Unlock()
	s.cleanFinished()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cleanWrites) != 1 || strings.Count(h.cleanWrites[0], "foop/") != len(ids) {
		t.Errorf("foop commands written as %q, want one write of %d", h.cleanWrites, len(ids))
	}
	for _, id := range ids {
		if !gone(h.q.Mess(id)) || !gone(h.q.Info(id)) {
			t.Errorf("message %d not removed", id)
		}
	}
}

// A message whose info/ and local/ files are spares that held a longer
// message's goes to its own sender and recipients only: nothing of the
// old envelope shows past the new one.
func TestSparesCutToNewEnvelope(t *testing.T) {
	h := newHarness(t, nil)
	var mu sync.Mutex
	inodes := map[string][]uint64{}   // first recipient → inodes of its message's info/ and local/ files
	contents := map[string][]string{} // first recipient → what those files hold when it is delivered
	h.gate = func(b spawn.Batch) {
		id, _ := strconv.ParseUint(b.Mess[strings.IndexByte(b.Mess, '/')+1:], 10, 64)
		mu.Lock()
		defer mu.Unlock()
		for _, p := range []string{h.q.Info(id), h.q.Local(id)} {
			var st syscall.Stat_t
			if syscall.Stat(p, &st) == nil {
				inodes[b.Recipients[0]] = append(inodes[b.Recipients[0]], st.Ino)
			}
			content, _ := os.ReadFile(p)
			contents[b.Recipients[0]] = append(contents[b.Recipients[0]], string(content))
		}
	}
	h.start()
	first := h.inject("a-rather-long-sender@example.org", "joe@mx.example.com", "ann@mx.example.com", "bob@mx.example.com")
	delivered := func(n int) func() bool {
		return func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.seen) >= n
		}
	}
	h.waitFor("the first message's deliveries", delivered(3))
	h.waitFor("the first message finished", func() bool { return gone(h.q.Info(first)) && gone(h.q.Local(first)) })
	if err := h.q.SendSpares().Flush(); err != nil {
		t.Fatal(err)
	}
	// A remote recipient too, so that the message is preprocessed
	// (TestDirectDelivery) and its local/ file holds al alone.
	second := h.inject("s@x.org", "al@mx.example.com", "far@remote.example")
	h.waitFor("the second message's deliveries", delivered(5))
	h.waitFor("the second message finished", func() bool { return gone(h.q.Info(second)) && gone(h.q.Local(second)) })
	h.stop()
	h.mu.Lock()
	seen := strings.Join(slices.Sorted(slices.Values(h.seen)), "\n")
	h.mu.Unlock()
	want := "a-rather-long-sender@example.org ann@mx.example.com\n" +
		"a-rather-long-sender@example.org bob@mx.example.com\n" +
		"a-rather-long-sender@example.org joe@mx.example.com\n" +
		"s@x.org al@mx.example.com\n" +
		"s@x.org far@remote.example"
	if seen != want {
		t.Errorf("deliveries:\n%s\nwant:\n%s", seen, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := contents["al@mx.example.com"], []string{"Fs@x.org\x00", "Tal@mx.example.com\x00"}; !slices.Equal(got, want) {
		t.Errorf("the second message's info/ and local/ files hold %q, want %q", got, want)
	}
	firsts, seconds := inodes["joe@mx.example.com"], inodes["al@mx.example.com"]
	if len(firsts) != 2 || len(seconds) != 2 || !slices.Contains(firsts, seconds[0]) || !slices.Contains(firsts, seconds[1]) {
		t.Errorf("info/ and local/ inodes: first message %v, second %v; want the second in the first's spares", firsts, seconds)
	}
}
