package send

import (
	"bytes"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/maildate"
)

// injectBounce sends the failure reports in bounce/N back to the sender:
// a bounce to the sender, a double bounce to doublebounceto when the
// sender was empty, nothing when the message was itself a double bounce.
func (s *Sender) injectBounce(m *message) error {
	report, err := os.ReadFile(s.q.Bounce(m.id))
	if err != nil {
		return err
	}
	if m.sender == "#@[]" {
		s.log.printf("triple bounce: discarding bounce/%d", m.id)
		return nil
	}
	b := Bounce{}
	double := m.sender == ""
	if double {
		b.Sender, b.Recipient = "#@[]", s.bounceTo.doubleTo+"@"+s.bounceTo.doubleHost
	} else {
		b.Sender, b.Recipient = "", strings.TrimSuffix(m.sender, "-@[]")
	}
	orig, err := os.Open(s.q.Mess(m.id))
	if err != nil {
		return err
	}
	defer orig.Close()
	var msg bytes.Buffer
	writeQSBMF(&msg, s.bounceTo, b.Recipient, m.sender, double, report, s.now())
	b.Message = io.MultiReader(&msg, orig)
	inject := s.cfg.Bounce
	if inject == nil {
		inject = s.queueBounce
	}
	if err := inject(b); err != nil {
		return err
	}
	s.log.printf("bounce msg %d qp %d", m.id, 0)
	return nil
}

// writeQSBMF writes qmail's bounce text up to the copy of the message.
func writeQSBMF(w *bytes.Buffer, cfg bounceConfig, to, sender string, double bool, report []byte, now time.Time) {
	w.WriteString("Date: " + maildate.Format(now) + "\n")
	w.WriteString("From: " + cfg.from + "@" + cfg.host + "\n")
	w.WriteString("To: " + to + "\n")
	w.WriteString("Subject: failure notice\n\n")
	w.WriteString("Hi. This is the qmail-send program at " + cfg.host + ".\n")
	if double {
		w.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		w.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	w.Write(report)
	if double {
		w.WriteString("--- Below this line is the original bounce.\n\n")
	} else {
		w.WriteString("--- Below this line is a copy of the message.\n\n")
	}
	w.WriteString("Return-Path: <" + sender + ">\n")
}
