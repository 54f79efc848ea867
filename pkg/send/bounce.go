package send

import (
	"errors"
	"io"
	"os"

	"github.com/quail-mta/quail/pkg/bounce"
)

// injectBounce sends the failure reports in bounce/N back: a bounce to
// the sender, a double bounce to doublebounceto when the sender was
// empty, nothing (logged) when the message was itself a double bounce.
// The bounce is an RFC 3464 report built by package bounce and streamed
// into the queue program.
func (s *Sender) injectBounce(m *message) error {
	report, err := os.ReadFile(s.q.Bounce(m.id))
	if err != nil {
		return err
	}
	failures, err := bounce.Parse(report)
	if err != nil {
		s.log.printf("warning: trouble reading bounce/%d: %s; bouncing what is readable", m.id, safe(err.Error()))
	}
	orig, err := os.Open(s.q.Mess(m.id))
	if err != nil {
		return err
	}
	defer orig.Close()
	st, err := orig.Stat()
	if err != nil {
		return err
	}
	p := bounce.Params{
		Sender: m.sender, Failures: failures,
		BounceFrom: s.bounceTo.from, BounceHost: s.bounceTo.host,
		DoubleBounceTo: s.bounceTo.doubleTo, DoubleBounceHost: s.bounceTo.doubleHost,
		Date: s.now(), Arrival: m.birth,
		Original: orig, OriginalSize: st.Size(), MaxOriginal: bounce.DefaultMaxOriginal,
	}
	env, err := p.Envelope()
	if errors.Is(err, bounce.ErrTripleBounce) {
		s.log.printf("triple bounce: discarding bounce/%d", m.id)
		return nil
	}
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := bounce.Build(pw, p)
		pw.CloseWithError(err)
	}()
	inject := s.cfg.Bounce
	if inject == nil {
		inject = s.queueBounce
	}
	qp, err := inject(Bounce{Sender: env.Sender, Recipient: env.Recipient, Message: pr})
	pr.CloseWithError(io.ErrClosedPipe) // unblock the builder if the injection gave up early
	if err != nil {
		return err
	}
	s.log.printf("bounce msg %d qp %d", m.id, qp)
	return nil
}
