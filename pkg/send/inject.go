package send

import (
	"io"

	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/queue"
)

// queueBounce injects a bounce through the queue program, as qmail-send
// does (the queue program's Received line then reads "for bounce").
func (s *Sender) queueBounce(b Bounce) (int, error) {
	inj, err := qq.Start(s.cfg.Root)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(inj, b.Message); err != nil {
		inj.Abort()
		return 0, err
	}
	return inj.Pid(), inj.Finish(queue.Envelope{Sender: b.Sender, Recipients: []string{b.Recipient}})
}
