package send

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/bounce"
	"github.com/quail-mta/quail/pkg/spawn"
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
		for ch.used < ch.limit {
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

// advance moves the job's cursor to its next T record; false when the
// pass has no more to start.
func (j *job) advance() bool {
	for j.cursor < len(j.recs) {
		if j.recs[j.cursor].Type == 'T' {
			return true
		}
		j.cursor++
	}
	return false
}

// beginPass reads the job's file afresh and decides whether the message
// is dying (older than queuelifetime when the pass starts).
func (s *Sender) beginPass(j *job, now time.Time) error {
	data, err := os.ReadFile(s.jobPath(j.msg.id, j.ch))
	if err != nil {
		return err
	}
	recs, err := queue.ParseRecords(data)
	if err != nil {
		return err
	}
	j.recs, j.cursor, j.flight = recs, 0, 0
	j.dying = now.Sub(j.msg.birth) > s.lifetime
	j.next = nextRetry(j.msg.birth, now, j.ch)
	return nil
}

func (s *Sender) start(c int, j *job) {
	ch := s.chans[c]
	rec := j.recs[j.cursor]
	j.cursor++
	slot := 0
	for ch.slots[slot] != nil {
		slot++
	}
	s.delnum++
	d := &delivery{num: s.delnum, job: j, rec: rec}
	ch.slots[slot] = d
	ch.used++
	j.flight++
	s.log.printf("starting delivery %d: msg %d to %s %s", d.num, j.msg.id, chanName[c], safe(rec.Data))
	cmd := spawn.Command{Slot: byte(slot), Mess: messPath(j.msg.id), Sender: senderFor(j.msg.sender, rec.Data), Recipient: rec.Data}
	if _, err := ch.to.Write(cmd.Encode()); err != nil {
		// The spawner is gone; the read side reports it and we exit.
		s.log.printf("alert: oh no! lost spawn connection! dying...")
	}
	s.status()
}

// result handles one delivery report.
func (s *Sender) result(c int, r spawn.Result) {
	ch := s.chans[c]
	if int(r.Slot) >= len(ch.slots) || ch.slots[r.Slot] == nil {
		s.log.printf("warning: internal error: delivery report out of range")
		return
	}
	d := ch.slots[r.Slot]
	ch.slots[r.Slot] = nil
	ch.used--
	j := d.job
	j.flight--
	report := r.Report
	if strings.HasPrefix(report, "Z") && j.dying {
		report = "D" + report[1:] + dyingText
	}
	text := ""
	if len(report) > 1 {
		text = report[1:]
	}
	switch {
	case strings.HasPrefix(report, "K"):
		s.log.printf("delivery %d: success: %s", d.num, safe(text))
		s.markDone(j, d.rec)
	case strings.HasPrefix(report, "Z"):
		s.log.printf("delivery %d: deferral: %s", d.num, safe(text))
	case strings.HasPrefix(report, "D"):
		s.log.printf("delivery %d: failure: %s", d.num, safe(text))
		if err := s.addBounce(j.msg.id, d.rec.Data, text); err != nil {
			s.log.printf("alert: unable to append to bounce message; HELP! sleeping...")
			// Leave the record undone: it is tried again, not lost.
		} else {
			s.markDone(j, d.rec)
		}
	default:
		s.log.printf("delivery %d: report mangled, will defer", d.num)
	}
	s.status()
	s.endPassIfDone(j)
}

// markDone rewrites the record's T as D in place, as qmail does (without
// an fsync: after a crash the recipient is simply delivered again).
func (s *Sender) markDone(j *job, rec queue.Record) {
	for i := range j.recs {
		if j.recs[i].Off == rec.Off {
			j.recs[i].Type = 'D'
		}
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
			ch.due.add(j)
			return
		}
	}
	if err := os.Remove(s.jobPath(j.msg.id, j.ch)); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
		if err := s.injectBounce(m); err != nil {
			s.log.printf("warning: trouble injecting bounce message, will try later")
			m.bounceRetry = s.now().Add(time.Minute)
			s.unsent[m.id] = m
			return
		}
		os.Remove(s.q.Bounce(m.id))
	}
	delete(s.unsent, m.id)
	s.log.printf("end msg %d", m.id)
	if err := os.Remove(s.q.Info(m.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.printf("warning: unable to unlink %s; will try again later", s.q.Info(m.id))
		return
	}
	delete(s.msgs, m.id)
	if err := s.cleanCmd("foop", m.id); err != nil {
		s.log.printf("warning: qmail-clean unable to clean up mess/%s", messPath(m.id))
	}
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
	if _, err := fmt.Fprintf(s.cfg.ToClean, "%s/%d\x00", kind, id); err != nil {
		s.log.printf("alert: oh no! lost qmail-clean connection! dying...")
		return err
	}
	b, err := s.clean.ReadByte()
	if err != nil {
		s.log.printf("alert: oh no! lost qmail-clean connection! dying...")
		return err
	}
	if b != '+' {
		return fmt.Errorf("qmail-clean answered %q", b)
	}
	return nil
}
