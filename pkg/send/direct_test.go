package send

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// TestDirectDelivery: a message of one local recipient is delivered
// from todo/N. While its delivery runs, todo/N is still there and no
// info/ or local/ file is; once it succeeded, qmail-clean removes todo/N
// and then mess/N, and the log reads as for any message.
func TestDirectDelivery(t *testing.T) {
	h := newHarness(t, nil)
	started, open := h.holdDeliveries()
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com")
	started()
	if gone(h.q.Todo(id)) || gone(h.q.Intd(id)) || gone(h.q.Mess(id)) {
		t.Errorf("during the delivery: todo gone %v, intd gone %v, mess gone %v; want all three kept",
			gone(h.q.Todo(id)), gone(h.q.Intd(id)), gone(h.q.Mess(id)))
	}
	if !gone(h.q.Info(id)) || !gone(h.q.Local(id)) {
		t.Errorf("during the delivery: info/ or local/ written")
	}
	open()
	h.waitFinished("message finished", id)
	h.stop()
	h.leftBehind(id)
	h.logHas(
		"new msg "+itoa(id)+"\n",
		"info msg "+itoa(id)+": bytes 32 from <sender@example.org> qp 1 uid 0\n",
		"starting delivery 1: msg "+itoa(id)+" to local joe@mx.example.com\n",
		"delivery 1: success: did_1+0+0/\n",
		"end msg "+itoa(id)+"\n",
	)
	h.mu.Lock()
	defer h.mu.Unlock()
	all := strings.Join(h.cleanWrites, "")
	todo, foop := strings.Index(all, "todo/"+itoa(id)+"\x00"), strings.Index(all, "foop/"+itoa(id)+"\x00")
	if todo < 0 || foop < todo || strings.Count(all, itoa(id)) != 2 {
		t.Errorf("qmail-clean was told %q; want todo/%d, then foop/%d", all, id, id)
	}
}

// TestDirectDeferral: when the delivery defers, the message is
// preprocessed as qmail would have: info/ (its mtime the birth) and
// local/ with the recipient, todo/N gone. The retry is an ordinary one.
func TestDirectDeferral(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["joe@mx.example.com"] = "Zmailbox is full\n"
	var reported time.Time
	h.gate = func(spawn.Batch) {
		time.Sleep(20 * time.Millisecond)
		h.mu.Lock()
		if reported.IsZero() {
			reported = time.Now()
		}
		h.mu.Unlock()
	}
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com")
	h.waitFor("files written", func() bool { return gone(h.q.Todo(id)) })
	info, _ := os.ReadFile(h.q.Info(id))
	local, _ := os.ReadFile(h.q.Local(id))
	if string(info) != "Fsender@example.org\x00" || string(local) != "Tjoe@mx.example.com\x00" {
		t.Errorf("info/ holds %q, local/ %q", info, local)
	}
	// Written after the report, but dated before the delivery.
	h.mu.Lock()
	at := reported
	h.mu.Unlock()
	if st, err := os.Stat(h.q.Info(id)); err != nil || !st.ModTime().Before(at) {
		t.Errorf("info/'s mtime is %v, not the birth (before the delivery, which reported at %v); %v", st.ModTime(), at, err)
	}
	if !gone(h.q.Intd(id)) {
		t.Errorf("intd/%d left", id)
	}
	h.mu.Lock()
	delete(h.reports, "joe@mx.example.com")
	h.mu.Unlock()
	h.sigs <- syscall.SIGALRM
	h.waitFinished("delivery after ALRM", id)
	h.stop()
	if !gone(h.q.Info(id)) || !gone(h.q.Local(id)) {
		t.Errorf("info/ or local/ left after the delivery")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != 2 {
		t.Errorf("deliveries %v, want two tries", h.seen)
	}
}

// TestDirectFailure: a failure bounces as for any message, and a bounce/N
// that a crash left beside todo/N is not added to the new one.
func TestDirectFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["joe@mx.example.com"] = "DSorry, no mailbox here by that name. (#5.1.1)\n"
	id := h.inject("sender@example.org", "joe@mx.example.com")
	stale := "<joe@mx.example.com>:\nstale report from before the crash\n\n"
	if err := os.WriteFile(h.q.Bounce(id), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitFinished("message finished", id)
	h.stop()
	h.leftBehind(id)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bounces) != 1 || h.bounces[0].Recipient != "sender@example.org" {
		t.Fatalf("bounces %+v, want one to the sender", h.bounces)
	}
	body := h.bodies[0]
	if !strings.Contains(body, "<joe@mx.example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n") || strings.Contains(body, "stale") {
		t.Errorf("bounce:\n%s", body)
	}
}

// TestDirectStopped: a direct delivery that defers while qmail-send
// stops leaves todo/N as it was (the recipient never had the message),
// and the next start delivers it.
func TestDirectStopped(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["joe@mx.example.com"] = "Ztry later\n"
	started, open := h.holdDeliveries()
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com")
	started()
	h.sigs <- syscall.SIGTERM
	h.waitFor("TERM taken", func() bool { return strings.Contains(h.logText(), " exitasap\n") })
	open()
	h.waitStopped()
	if gone(h.q.Todo(id)) || !gone(h.q.Info(id)) || !gone(h.q.Local(id)) {
		t.Fatalf("after stop: todo gone %v, info gone %v, local gone %v; want todo/ alone",
			gone(h.q.Todo(id)), gone(h.q.Info(id)), gone(h.q.Local(id)))
	}
	h.mu.Lock()
	delete(h.reports, "joe@mx.example.com")
	h.mu.Unlock()
	h.gate = nil
	h.start()
	h.waitFinished("delivery after restart", id)
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != 2 {
		t.Errorf("deliveries %v, want the deferred one and the one after the restart", h.seen)
	}
}

// TestDirectRoom: messages go direct only while fewer than directMax
// are running or waiting, whatever the concurrency; the others are
// preprocessed, so todo/ stays bounded under a backlog. (A small bound
// here: the default's thousand messages would take seconds to inject.)
func TestDirectRoom(t *testing.T) {
	const room = 12
	h := newHarness(t, map[string]string{"concurrencylocal": "3\n"})
	h.directMax = room
	var ids []uint64
	for range room + 3 {
		ids = append(ids, h.inject("sender@example.org", "joe@mx.example.com"))
	}
	started, open := h.holdDeliveries()
	h.start()
	started()
	var direct int
	for _, id := range ids {
		if gone(h.q.Info(id)) {
			direct++
		}
	}
	if direct != room {
		t.Errorf("%d of %d messages went direct with room for %d and concurrencylocal 3", direct, len(ids), room)
	}
	open()
	h.waitFinished("all finished", ids...)
	h.stop()
	for _, id := range ids {
		h.leftBehind(id)
	}
}

// TestReadTodo: a scan lists what has something to be done, and passes
// over the messages whose fsyncs are in flight and the direct ones
// being delivered or waiting.
func TestReadTodo(t *testing.T) {
	root := t.TempDir()
	q := queue.New(root)
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 6; id++ {
		if err := os.WriteFile(q.Todo(id), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &Sender{q: q, syncing: map[uint64]bool{2: true}, msgs: map[uint64]*message{
		3: {id: 3, direct: true},                // being delivered
		4: {id: 4, direct: true, toWrite: true}, // deferred: files to write
		5: {id: 5, direct: true, finished: true},
		6: {id: 6}, // preprocessed, todo/6 left by qmail-clean
	}}
	if err := s.readTodo(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(s.todo)
	want := []uint64{1, 4, 5, 6}
	if !slices.Equal(s.todo, want) {
		t.Errorf("todo %v, want %v", s.todo, want)
	}
	// A scan that cannot read todo/ keeps what the last one found.
	if err := os.Rename(filepath.Join(q.Dir, "todo"), filepath.Join(q.Dir, "todo.away")); err != nil {
		t.Fatal(err)
	}
	if err := s.readTodo(); err == nil {
		t.Errorf("readTodo without todo/: no error")
	}
	if !slices.Equal(s.todo, want) {
		t.Errorf("after a failed scan todo is %v, want %v kept", s.todo, want)
	}
}

// TestDirectCleanRefused: when qmail-clean cannot remove todo/N of a
// direct message that finished, the message stays finished and a later
// scan of todo/ has it removed, and only then mess/N: it is neither
// delivered again nor left behind.
func TestDirectCleanRefused(t *testing.T) {
	h := newHarness(t, nil)
	started, open := h.holdDeliveries()
	h.start()
	id := h.inject("sender@example.org", "joe@mx.example.com")
	started()
	// A directory in todo/N's place: qmail-clean's unlink of it fails.
	saved := filepath.Join(h.q.Dir, "saved")
	if err := os.Rename(h.q.Todo(id), saved); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(h.q.Todo(id), "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	open()
	h.waitFor("qmail-clean's refusal", func() bool {
		return strings.Contains(h.logText(), "warning: trouble with todo/"+itoa(id)+":")
	})
	if gone(h.q.Mess(id)) {
		t.Fatalf("mess/%d removed while todo/%d stayed", id, id)
	}
	if err := os.RemoveAll(h.q.Todo(id)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(saved, h.q.Todo(id)); err != nil {
		t.Fatal(err)
	}
	h.q.Pull()
	h.waitFinished("message finished", id)
	h.stop()
	h.leftBehind(id)
	if n := strings.Count(h.logText(), "starting delivery"); n != 1 {
		t.Errorf("%d deliveries started, want 1; log:\n%s", n, h.logText())
	}
}
