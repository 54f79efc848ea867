package send

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// batchesCopy returns the remote commands so far.
func (h *harness) batchesCopy() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.batches)
}

// Recipients of one message at one domain go to qmail-rspawn in one
// command; each gets its own delivery number and log lines, and is
// marked done, retried or bounced on its own.
func TestBatchOneDomain(t *testing.T) {
	h := newHarness(t, nil)
	h.reports["b@FAR.example"] = "D192.0.2.7 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n"
	h.reports["c@far.example"] = "Z192.0.2.7 does not like recipient.\nRemote host said: 451 4.7.1 greylisted\n"
	h.start()
	id := h.inject("s@example.org", "a@far.example", "b@FAR.example", "c@far.example", "d@other.example", "e@Far.Example", "joe@mx.example.com")
	h.waitFor("first pass", func() bool { return strings.Count(h.logText(), "delivery ") >= 2*6 })
	want := [][]string{{"a@far.example", "b@FAR.example", "c@far.example", "e@Far.Example"}, {"d@other.example"}}
	got := h.batchesCopy()
	// The spawner runs deliveries at once: it records them in any order.
	slices.SortFunc(got, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("remote commands %q, want %q", got, want)
	}
	log := h.logText()
	starts := regexp.MustCompile(`starting delivery (\d+): msg \d+ to remote (\S+)`).FindAllStringSubmatch(log, -1)
	nums := map[string]string{}
	for _, m := range starts {
		nums[m[2]] = m[1]
	}
	if len(nums) != 5 {
		t.Fatalf("%d remote starting lines, want 5:\n%s", len(nums), log)
	}
	for rcpt, verdict := range map[string]string{"a@far.example": "success: did_1+0+0/", "b@FAR.example": "failure: 192.0.2.7_does_not_like_recipient./Remote_host_said:_550_5.1.1_no_such_user/",
		"c@far.example": "deferral: 192.0.2.7_does_not_like_recipient./Remote_host_said:_451_4.7.1_greylisted/", "e@Far.Example": "success: did_1+0+0/"} {
		if line := "delivery " + nums[rcpt] + ": " + verdict + "\n"; !strings.Contains(log, line) {
			t.Errorf("log lacks %q for %s:\n%s", line, rcpt, log)
		}
	}
	// The remote file: everything done but c.
	data, err := os.ReadFile(h.q.Remote(id))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := queue.ParseRecords(data)
	for _, r := range recs {
		if want := byte('D'); r.Data == "c@far.example" {
			want = 'T'
			if r.Type != want {
				t.Errorf("%s marked %c, want %c", r.Data, r.Type, want)
			}
		} else if r.Type != want {
			t.Errorf("%s marked %c, want %c", r.Data, r.Type, want)
		}
	}
	// The retry carries only c.
	h.mu.Lock()
	delete(h.reports, "c@far.example")
	h.mu.Unlock()
	h.sigs <- syscall.SIGALRM
	h.waitFinished("message finished", id)
	h.stop()
	if got := h.batchesCopy(); len(got) != 3 || !reflect.DeepEqual(got[2], []string{"c@far.example"}) {
		t.Errorf("remote commands %q, want the retry of c alone last", got)
	}
	if len(h.bounces) != 1 || !strings.Contains(h.bodies[0], "<b@FAR.example>:\n") || strings.Contains(h.bodies[0], "<a@far.example>") || strings.Contains(h.bodies[0], "<c@far.example>") {
		t.Errorf("bounces %d: %q", len(h.bounces), h.bodies)
	}
	// The local channel never saw the probe.
	for _, m := range h.messes {
		if m == spawn.ProbeMess {
			t.Error("a spawner got the probe as a delivery")
		}
	}
	if st := regexp.MustCompile(`to remote e@Far.Example\nstatus: local \d+/10 remote 1/20\n`); !st.MatchString(log) {
		t.Errorf("a batch should take one remote slot, with one status line after its starting lines:\n%s", log)
	}
}

// A batch holds at most MaxBatch recipients, or fewer when the spawner
// says so.
func TestBatchCap(t *testing.T) {
	for _, tc := range []struct {
		spawnerMax int
		want       []int
	}{{1000, []int{100, 100, 50}}, {40, []int{40, 40, 40, 40, 40, 40, 10}}} {
		t.Run(fmt.Sprint(tc.spawnerMax), func(t *testing.T) {
			h := newHarness(t, nil)
			h.remoteMax = tc.spawnerMax
			h.start()
			var rcpts []string
			for i := range 250 {
				rcpts = append(rcpts, fmt.Sprintf("u%d@far.example", i))
			}
			id := h.inject("s@example.org", rcpts...)
			h.waitFinished("message finished", id)
			h.stop()
			var sizes []int
			seen := map[string]bool{}
			for _, b := range h.batchesCopy() {
				sizes = append(sizes, len(b))
				for _, r := range b {
					if seen[r] {
						t.Errorf("%s delivered twice", r)
					}
					seen[r] = true
				}
			}
			slices.Sort(sizes)
			slices.Sort(tc.want)
			if !reflect.DeepEqual(sizes, tc.want) || len(seen) != 250 {
				t.Errorf("batch sizes %v (%d recipients), want %v", sizes, len(seen), tc.want)
			}
		})
	}
}

// A VERP sender differs per recipient: no batches.
func TestBatchNotVERP(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	id := h.inject("owner-@lists.example-@[]", "a@far.example", "b@far.example")
	h.waitFinished("message finished", id)
	h.stop()
	if got := h.batchesCopy(); len(got) != 2 {
		t.Errorf("remote commands %q, want one per recipient", got)
	}
	if !slices.Contains(h.seen, "owner-a=far.example@lists.example a@far.example") {
		t.Errorf("deliveries %q", h.seen)
	}
}

// A spawner that speaks only qmail's protocol gets one recipient per
// command; the probe reaches it as a command it refuses.
func TestBatchQmailSpawner(t *testing.T) {
	h := newHarness(t, nil)
	h.plainRemote = true
	h.start()
	id := h.inject("s@example.org", "a@far.example", "b@far.example", "c@far.example")
	h.waitFinished("message finished", id)
	h.stop()
	got := h.batchesCopy()
	if len(got) != 4 || !reflect.DeepEqual(got[0], []string{""}) {
		t.Errorf("remote commands %q, want the probe, then one per recipient", got)
	}
	if h.messes[0] != spawn.ProbeMess {
		t.Errorf("first remote command %q, want the probe", h.messes[0])
	}
	if strings.Contains(h.logText(), "to remote \n") || strings.Contains(h.logText(), "?batch") {
		t.Errorf("the probe shows in the log:\n%s", h.logText())
	}
}

// One report for a batch applies to all its recipients; a bad report
// in a batch answer defers only its recipient.
func TestBatchAnswers(t *testing.T) {
	h := newHarness(t, nil)
	h.answer = func(b spawn.Batch) []string { return []string{"Zqmail-spawn unable to open message. (#4.3.0)\n"} }
	h.start()
	id := h.inject("s@example.org", "a@far.example", "b@far.example")
	h.waitFor("deferrals", func() bool {
		return strings.Count(h.logText(), ": deferral: qmail-spawn_unable_to_open_message._(#4.3.0)/\n") == 2
	})
	h.mu.Lock()
	h.answer = func(b spawn.Batch) []string { return []string{"Kone\n", "Xtwo\n"} }
	h.mu.Unlock()
	h.sigs <- syscall.SIGALRM
	h.waitFor("mangled", func() bool { return strings.Count(h.logText(), ": report mangled, will defer\n") == 1 })
	h.mu.Lock()
	h.answer = nil
	h.mu.Unlock()
	h.sigs <- syscall.SIGALRM
	h.waitFinished("message finished", id)
	h.stop()
	if got := h.batchesCopy(); !reflect.DeepEqual(got[len(got)-1], []string{"b@far.example"}) {
		t.Errorf("last remote command %q, want b alone", got[len(got)-1])
	}
}

// A batch answer whose count does not match the command is mangled for
// every recipient, which stay to be tried again.
func TestBatchAnswerWrongCount(t *testing.T) {
	var log strings.Builder
	s := &Sender{log: logger{w: &log}, now: time.Now}
	for c := range s.chans {
		s.chans[c] = &channel{slots: make([]*delivery, 4), limit: 4, batch: MaxBatch}
	}
	j := &job{msg: &message{id: 5}, ch: chRemote, index: -1,
		recs: []queue.Record{{Type: 'T', Data: "a@x.example", Off: 0}, {Type: 'T', Data: "b@x.example", Off: 13}}}
	j.group()
	if got := j.take(MaxBatch); !reflect.DeepEqual(got, []int{0, 1}) {
		t.Fatalf("take = %v", got)
	}
	ch := s.chans[chRemote]
	ch.slots[2] = &delivery{job: j, recs: j.recs, nums: []int{7, 8}}
	ch.used, j.flight, ch.active = 1, 1, []*job{j}
	s.result(chRemote, spawn.Result{Slot: 2, Reports: []string{"Kok\n"}})
	want := "delivery 7: report mangled, will defer\ndelivery 8: report mangled, will defer\nstatus: local 0/4 remote 0/4\n"
	if log.String() != want {
		t.Errorf("log\n%s\nwant\n%s", log.String(), want)
	}
	if len(ch.due) != 1 || ch.slots[2] != nil || ch.used != 0 {
		t.Errorf("job not back in the schedule: due %d, slot %v, used %d", len(ch.due), ch.slots[2], ch.used)
	}
}

func TestGroupAndTake(t *testing.T) {
	recs := []queue.Record{
		{Type: 'T', Data: "a@X.example"}, {Type: 'D', Data: "done@x.example"}, {Type: 'T', Data: "b@y.example"},
		{Type: 'T', Data: "c@x.EXAMPLE"}, {Type: 'T', Data: "nohost"}, {Type: 'T', Data: "d@x.example"}, {Type: 'T', Data: "e@y.example"},
	}
	j := &job{msg: &message{sender: "s@example.org"}, ch: chRemote, recs: recs}
	j.group()
	var got [][]int
	for j.advance() {
		got = append(got, j.take(2))
	}
	if want := [][]int{{0, 3}, {2, 6}, {4}, {5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("batches %v, want %v", got, want)
	}
	local := &job{msg: &message{}, ch: chLocal, recs: recs}
	local.group()
	got = nil
	for local.advance() {
		got = append(got, local.take(MaxBatch))
	}
	if want := [][]int{{0}, {2}, {3}, {4}, {5}, {6}}; !reflect.DeepEqual(got, want) {
		t.Errorf("local deliveries %v, want one record each %v", got, want)
	}
}

// lineWrites records each write it gets.
type lineWrites struct{ writes []string }

func (w *lineWrites) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// qmail-send's log may share its pipe with other programs' stderr: every
// write must hold whole lines, however many a loop turn logs.
func TestLogWritesWholeLines(t *testing.T) {
	var w lineWrites
	l := logger{w: &w, buf: bufio.NewWriterSize(&w, 16<<10)}
	for i := range 2000 {
		l.printf("delivery %d: success: %s", i, strings.Repeat("x", i%50))
	}
	l.printf("long: %s", strings.Repeat("y", 40<<10))
	l.flush()
	if len(w.writes) < 2 {
		t.Fatalf("%d writes; the test needs the buffer to fill", len(w.writes))
	}
	for i, s := range w.writes {
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("write %d ends mid-line: ...%q", i, s[max(0, len(s)-20):])
		}
	}
}
