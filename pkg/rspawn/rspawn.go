// Package rspawn is qmail-rspawn: it takes remote deliveries from
// qmail-send over the spawn protocol and makes each with package remote.
//
// qmail's qmail-rspawn ran one qmail-remote process per delivery. quail's
// does the delivery in its own process (it already runs as qmailr, the
// account qmail-remote runs as), so remote delivery creates no process
// per message; qmail-remote stays as a program for scripts and tests.
// Each delivery reads its own control files, as qmail-remote did, so
// changes to smtproutes or helohost apply to the next delivery.
package rspawn

import (
	"context"
	"os"
	"strings"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/remote"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// Spawner makes remote deliveries for one instance.
type Spawner struct {
	Root string
	// Route finds the hosts for a domain; nil means remote.Route (DNS).
	Route func(ctx context.Context, ctl control.Dir, domain string) ([]remote.Target, error)
}

// Deliver makes one delivery and returns its report for qmail-send.
func (s *Spawner) Deliver(c spawn.Command) string {
	at := strings.LastIndexByte(c.Recipient, '@')
	if at < 0 {
		return "DSorry, address must include host name. (#5.1.3)\n"
	}
	domain := c.Recipient[at+1:]
	slash := strings.IndexByte(c.Mess, '/')
	id, ok := queue.ParseID(c.Mess[slash+1:])
	if slash < 0 || !ok {
		return "DInternal error: messid has nonnumerics. (#5.3.5)\n"
	}
	f, err := os.Open(queue.New(s.Root).Mess(id))
	if err != nil {
		return "Zqmail-spawn unable to open message. (#4.3.0)\n"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "Zqmail-spawn unable to fstat message. (#4.3.0)\n"
	}
	return Report(s.deliver(f, st.Size(), c.Sender, c.Recipient, domain))
}

func (s *Spawner) deliver(msg *os.File, size int64, sender, rcpt, domain string) remote.Result {
	ctx := context.Background()
	ctl := control.New(s.Root)
	cfg, err := remote.LoadConfig(ctl, domain)
	if err != nil {
		return remote.Failed(err)
	}
	route := s.Route
	if route == nil {
		route = remote.Route
	}
	if cfg.Targets, err = route(ctx, ctl, domain); err != nil {
		return remote.Failed(err)
	}
	return remote.Deliver(ctx, cfg, sender, []string{rcpt}, msg, size)
}

// Report turns qmail-remote's result for one recipient into the report
// qmail-rspawn gives qmail-send, by qmail-rspawn's rules: the recipient's
// own verdict counts (a refused recipient fails even if the message went
// to others), the message's verdict otherwise, and the message's text
// follows the recipient's when the message fared no better.
func Report(r remote.Result) string {
	msg := rank(r.Message.Status)
	if len(r.Recipients) == 0 {
		return letter(msg) + r.Message.Text
	}
	rc := r.Recipients[0]
	verdict := msg
	switch rc.Status {
	case remote.TempFail:
		verdict = 0
	case remote.PermFail:
		verdict = -1
	}
	text := rc.Text
	if msg <= verdict {
		text += r.Message.Text
	}
	return letter(verdict) + text
}

// rank orders verdicts as qmail-rspawn does: 1 delivered, 0 temporary,
// -1 permanent.
func rank(s remote.Status) int {
	switch s {
	case remote.Accepted:
		return 1
	case remote.TempFail:
		return 0
	}
	return -1
}

func letter(rank int) string {
	switch rank {
	case 1:
		return "K"
	case 0:
		return "Z"
	}
	return "D"
}

// Run is qmail-rspawn: serve qmail-send on in/out until in ends.
func Run(root string, in, out *os.File) error {
	s := &Spawner{Root: root}
	return spawn.Serve(in, out, spawn.Limit, s.Deliver)
}
