package send

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/bounce"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/pkg/sysfile"
	"github.com/quail-mta/quail/queue"
)

// dyingText is what qmail appends when it turns a deferral into a
// failure because the message outlived queuelifetime.
const dyingText = "I'm not going to try again; this message has been in the queue too long.\n"

// schedule starts every delivery that is due and has a free slot.
func (s *Sender) schedule() {
	if s.exiting {
		return
	}
	now := s.now()
	for c, ch := range s.chans {
		for ch.used < ch.limit && ch.free() > 0 && !ch.waiting(now) {
			j := s.nextRecord(c, now)
			if j == nil {
				break
			}
			s.start(c, j)
		}
	}
	s.retryBounces(now)
}

// nextRecord finds the job whose next undelivered record should start:
// an active pass first, else the earliest due job, whose pass begins.
func (s *Sender) nextRecord(c int, now time.Time) *job {
	ch := s.chans[c]
	for _, j := range ch.active {
		if j.advance() {
			return j
		}
	}
	for len(ch.due) > 0 && !ch.due[0].next.After(now) {
		j := ch.due.pop()
		if j.msg.direct {
			s.directWaiting-- // it enters due once, at startDirect
		}
		if err := s.beginPass(j, now); err != nil {
			s.log.printf("warning: unable to stat %s; will try again later", s.jobPath(j.msg.id, c))
			j.next = now.Add(time.Minute)
			ch.due.add(j)
			continue
		}
		ch.active = append(ch.active, j)
		if j.advance() {
			return j
		}
		s.endPassIfDone(j)
	}
	return nil
}

// advance moves the job's cursor to its next T record not yet started;
// false when the pass has no more to start.
func (j *job) advance() bool {
	for j.cursor < len(j.recs) {
		if j.recs[j.cursor].Type == 'T' && !j.started[j.cursor] {
			return true
		}
		j.cursor++
	}
	return false
}

// group sorts a remote pass's undelivered records into groups that can
// share one SMTP transaction: the same domain (case does not matter)
// and the same envelope sender (so a VERP message, whose sender differs
// per recipient, is never batched).
func (j *job) group() {
	j.started = make([]bool, len(j.recs))
	j.keyOf, j.groups = nil, nil
	if j.ch != chRemote {
		return
	}
	j.keyOf = make([]int, len(j.recs))
	index := map[string]int{}
	for i, r := range j.recs {
		j.keyOf[i] = -1
		if r.Type != 'T' {
			continue
		}
		k := len(j.groups)
		if at := strings.LastIndexByte(r.Data, '@'); at >= 0 {
			key := strings.ToLower(r.Data[at+1:]) + "\x00" + senderFor(j.msg.sender, r.Data)
			if g, ok := index[key]; ok {
				k = g
			} else {
				index[key] = k
			}
		}
		if k == len(j.groups) {
			j.groups = append(j.groups, nil)
		}
		j.keyOf[i] = k
		j.groups[k] = append(j.groups[k], i)
	}
}

// take starts the record at the cursor and, up to max in all, the next
// records of its group; it returns their indices.
func (j *job) take(max int) []int {
	i := j.cursor
	batch := []int{i}
	if j.groups != nil {
		k := j.keyOf[i]
		if g := j.groups[k]; len(g) > 0 && g[0] == i {
			n := min(max, len(g))
			batch, j.groups[k] = g[:n:n], g[n:]
		}
	}
	for _, x := range batch {
		j.started[x] = true
	}
	j.cursor++
	return batch
}

// beginPass reads the job's file afresh and decides whether the message
// is dying (older than queuelifetime when the pass starts).
func (s *Sender) beginPass(j *job, now time.Time) error {
	data := j.mem
	if data == nil {
		var err error
		if data, err = sysfile.ReadFile(s.jobPath(j.msg.id, j.ch)); err != nil {
			return err
		}
	}
	recs, err := queue.ParseRecords(data)
	if err != nil {
		return err
	}
	j.recs, j.cursor, j.flight = recs, 0, 0
	j.group()
	j.dying = now.Sub(j.msg.birth) > s.lifetime
	j.next = nextRetry(j.msg.birth, now, j.ch)
	return nil
}

// start hands the next delivery of j to its spawner: one recipient,
// or on the remote channel, once qmail-rspawn takes batches, up to
// ch.batch recipients of one domain. Each recipient gets its own
// delivery number and log lines, as if delivered alone; the batch takes
// one slot.
func (s *Sender) start(c int, j *job) {
	ch := s.chans[c]
	idx := j.take(min(ch.batch, MaxBatch))
	slot := 0
	for ch.slots[slot] != nil || ch.probing && slot == probeSlot {
		slot++
	}
	d := &delivery{job: j}
	rcpts := make([]string, len(idx))
	for k, i := range idx {
		rec := j.recs[i]
		s.delnum++
		d.recs = append(d.recs, rec)
		d.nums = append(d.nums, s.delnum)
		rcpts[k] = rec.Data
		s.log.printf("starting delivery %d: msg %d to %s %s", s.delnum, j.msg.id, chanName[c], safe(rec.Data))
	}
	ch.slots[slot] = d
	ch.used++
	j.flight++
	b := spawn.Batch{Slot: byte(slot), Mess: messPath(j.msg.id), Sender: senderFor(j.msg.sender, rcpts[0]), Recipients: rcpts}
	if _, err := ch.to.Write(b.Encode()); err != nil {
		// The spawner is gone; the read side reports it and we exit.
		s.log.printf("alert: oh no! lost spawn connection! dying...")
	}
	s.status()
}

// result handles one answer: the probe's, or the reports of one
// delivery.
func (s *Sender) result(c int, r spawn.Result) {
	ch := s.chans[c]
	if ch.probing && r.Slot == probeSlot {
		ch.probing = false
		ch.batch = min(spawn.BatchSize(r.Report), MaxBatch)
		return
	}
	if int(r.Slot) >= len(ch.slots) || ch.slots[r.Slot] == nil {
		s.log.printf("warning: internal error: delivery report out of range")
		return
	}
	d := ch.slots[r.Slot]
	ch.slots[r.Slot] = nil
	ch.used--
	j := d.job
	j.flight--
	for k, rec := range d.recs {
		// One report for a batch applies to all its recipients; a
		// batch answer with the wrong count is mangled for all.
		report := r.Report
		if r.Reports != nil {
			report = ""
			if len(r.Reports) == len(d.recs) {
				report = r.Reports[k]
			}
		}
		s.report(j, d.nums[k], rec, report)
	}
	s.status()
	s.endPassIfDone(j)
}

// report handles one recipient's report.
func (s *Sender) report(j *job, num int, rec queue.Record, report string) {
	if strings.HasPrefix(report, "Z") && j.dying {
		report = "D" + report[1:] + dyingText
	}
	text := ""
	if len(report) > 1 {
		text = report[1:]
	}
	switch {
	case strings.HasPrefix(report, "K"):
		s.log.printf("delivery %d: success: %s", num, safe(text))
		s.markDone(j, rec)
	case strings.HasPrefix(report, "Z"):
		s.log.printf("delivery %d: deferral: %s", num, safe(text))
	case strings.HasPrefix(report, "D"):
		s.log.printf("delivery %d: failure: %s", num, safe(text))
		if err := s.addBounce(j.msg.id, rec.Data, text); err != nil {
			s.log.printf("alert: unable to append to bounce message; HELP! sleeping...")
			// Leave the record undone: it is tried again, not lost.
		} else {
			s.markDone(j, rec)
		}
	default:
		s.log.printf("delivery %d: report mangled, will defer", num)
	}
}

// markDone rewrites the record's T as D in place, as qmail does (without
// an fsync: after a crash the recipient is simply delivered again).
func (s *Sender) markDone(j *job, rec queue.Record) {
	for i := range j.recs {
		if j.recs[i].Off == rec.Off {
			j.recs[i].Type = 'D'
		}
	}
	if j.mem != nil {
		j.mem[rec.Off] = 'D'
		return
	}
	f, err := os.OpenFile(s.jobPath(j.msg.id, j.ch), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt([]byte{'D'}, rec.Off)
		f.Close()
	}
	if err != nil {
		s.log.printf("warning: trouble marking %s; message will be delivered twice!", s.jobPath(j.msg.id, j.ch))
	}
}

// endPassIfDone finishes a pass once every delivery started in it has
// reported: a job with nothing left is removed, the others wait for
// their next retry.
func (s *Sender) endPassIfDone(j *job) {
	if j.flight > 0 || j.cursor < len(j.recs) && j.advance() {
		return
	}
	ch := s.chans[j.ch]
	for i, a := range ch.active {
		if a == j {
			ch.active = append(ch.active[:i], ch.active[i+1:]...)
			break
		}
	}
	for _, r := range j.recs {
		if r.Type == 'T' {
			if s.exiting {
				j.next = s.now()
			}
			if j.msg.direct {
				// Its retry waits for its files (commit). Exiting,
				// todo/N is left as it is: the recipient has not
				// had the message, and gets it after the restart.
				j.msg.toWrite = true
				s.todo = append(s.todo, j.msg.id)
				return
			}
			ch.due.add(j)
			return
		}
	}
	if j.msg.direct {
		j.msg.jobs[j.ch] = nil
		s.complete(j.msg)
		return
	}
	if err := s.q.SendSpares().Retire(s.jobPath(j.msg.id, j.ch)); err != nil {
		s.log.printf("warning: unable to unlink %s; will try again later", s.jobPath(j.msg.id, j.ch))
		j.next = s.now().Add(time.Minute)
		ch.due.add(j)
		return
	}
	j.msg.jobs[j.ch] = nil
	if j.msg.jobs[chLocal] == nil && j.msg.jobs[chRemote] == nil {
		s.complete(j.msg)
	}
}

// addBounce appends a failure to bounce/N in qmail's format, naming the
// recipient as the sender wrote it (without the virtual-domain prefix).
func (s *Sender) addBounce(id uint64, recipient, text string) error {
	f, err := os.OpenFile(s.q.Bounce(id), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = bounce.Append(f, s.route.Unroute(recipient), text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// complete finishes a message with no deliveries left: inject its bounce
// if it has one, then remove info/ and have qmail-clean remove mess/.
func (s *Sender) complete(m *message) {
	if _, err := os.Stat(s.q.Bounce(m.id)); err == nil {
		if !m.bounced {
			if err := s.injectBounce(m); err != nil {
				s.log.printf("warning: trouble injecting bounce message, will try later")
				m.bounceRetry = s.now().Add(time.Minute)
				s.unsent[m.id] = m
				return
			}
			m.bounced = true
		}
		// The id comes back soon (its inode is kept as a spare): a
		// bounce/N left behind would go to the next message N.
		if err := os.Remove(s.q.Bounce(m.id)); err != nil && !os.IsNotExist(err) {
			s.log.printf("warning: unable to unlink %s; will try again later", s.q.Bounce(m.id))
			m.bounceRetry = s.now().Add(time.Minute)
			s.unsent[m.id] = m
			return
		}
	}
	delete(s.unsent, m.id)
	s.log.printf("end msg %d", m.id)
	if m.direct {
		m.finished = true
		s.directDone = append(s.directDone, m.id) // cleanFinished
		return
	}
	if err := s.q.SendSpares().Retire(s.q.Info(m.id)); err != nil {
		s.log.printf("warning: unable to unlink %s; will try again later", s.q.Info(m.id))
		return
	}
	delete(s.msgs, m.id)
	s.foop = append(s.foop, m.id) // cleanFinished, before the loop waits
}

func (s *Sender) retryBounces(now time.Time) {
	for _, m := range s.unsent {
		if !m.bounceRetry.After(now) {
			s.complete(m)
		}
	}
}

// cleanCmd asks qmail-clean to remove todo/N and intd/N ("todo") or
// mess/S/N and intd/N ("foop").
func (s *Sender) cleanCmd(kind string, id uint64) error {
	return s.cleanCmds(kind, []uint64{id})[0]
}

// cleanRound bounds the commands cleanCmds writes before it reads their
// answers: a pipe holds at least one page, even for a user over the
// pipe-user-pages-soft limit, so a round's write never waits for a
// qmail-clean that is itself waiting for us to read.
const cleanRound = 4096

// cleanCmds gives qmail-clean one command per id and returns each
// answer. The commands of a round go out before the first answer is
// read, so a batch waits for qmail-clean once, not once per message:
// under load each wait is a trip through a busy run queue.
func (s *Sender) cleanCmds(kind string, ids []uint64) []error {
	errs := make([]error, len(ids))
	var cmds []byte
	for start := 0; start < len(ids); {
		cmds = cmds[:0]
		end := start
		for end < len(ids) {
			cmd := fmt.Sprintf("%s/%d\x00", kind, ids[end])
			if end > start && len(cmds)+len(cmd) > cleanRound {
				break
			}
			cmds = append(cmds, cmd...)
			end++
		}
		_, err := s.cfg.ToClean.Write(cmds)
		for err == nil && start < end {
			var b byte
			if b, err = s.clean.ReadByte(); err == nil {
				if b != '+' {
					errs[start] = fmt.Errorf("qmail-clean answered %q", b)
				}
				start++
			}
		}
		if err != nil {
			// The unanswered commands failed; answered ones stand.
			// Without qmail-clean nothing can be finished: qmail-send
			// ends once its deliveries have, as qmail's does.
			s.log.printf("alert: oh no! lost qmail-clean connection! dying...")
			s.exiting = true
			s.cleanLost = fmt.Errorf("lost qmail-clean: %w", err)
			for i := start; i < len(ids); i++ {
				errs[i] = err
			}
			return errs
		}
	}
	return errs
}
