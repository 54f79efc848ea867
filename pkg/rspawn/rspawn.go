// Package rspawn is qmail-rspawn: it takes remote deliveries from
// qmail-send over the spawn protocol and makes each with package remote.
//
// qmail's qmail-rspawn ran one qmail-remote process per delivery. quail's
// does the delivery in its own process (it already runs as qmailr, the
// account qmail-remote runs as), so remote delivery creates no process
// per message; qmail-remote stays as a program for scripts and tests.
// Each delivery reads its own control files, as qmail-remote did, so
// changes to smtproutes or helohost apply to the next delivery.
//
// It speaks the spawn protocol's batch extension (package spawn): the
// recipients of one message at one domain come in one command and go
// out in one SMTP transaction, with a report for each. All deliveries
// share lock/tcpto, which it empties at start, as qmail's does.
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

// MaxBatch is the most recipients qmail-rspawn takes in one command of
// the spawn protocol's batch extension (see package spawn).
const MaxBatch = 100

// Spawner makes remote deliveries for one instance.
type Spawner struct {
	Root string
	// Route finds the hosts for a domain; nil means remote.Route (DNS).
	Route func(ctx context.Context, ctl control.Dir, domain string) ([]remote.Target, error)
	// TCPTo is lock/tcpto, shared by every delivery; nil: not used.
	TCPTo *remote.TCPTo
}

// Deliver makes one delivery in qmail's form and returns its report.
func (s *Spawner) Deliver(c spawn.Command) string {
	return s.DeliverBatch(spawn.Batch{Slot: c.Slot, Mess: c.Mess, Sender: c.Sender, Recipients: []string{c.Recipient}})[0]
}

// DeliverBatch delivers one message to its recipients and returns a
// report for each, in order, or one report that applies to all. The
// recipients of one domain (qmail-send sends only such batches) go to
// its servers in one SMTP transaction.
func (s *Spawner) DeliverBatch(b spawn.Batch) []string {
	slash := strings.IndexByte(b.Mess, '/')
	id, ok := queue.ParseID(b.Mess[slash+1:])
	if slash < 0 || !ok {
		return []string{"DInternal error: messid has nonnumerics. (#5.3.5)\n"}
	}
	reps := make([]string, len(b.Recipients))
	var domains []string
	byDomain := map[string][]int{}
	for i, rcpt := range b.Recipients {
		at := strings.LastIndexByte(rcpt, '@')
		if at < 0 {
			reps[i] = "DSorry, address must include host name. (#5.1.3)\n"
			continue
		}
		d := strings.ToLower(rcpt[at+1:])
		if byDomain[d] == nil {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], i)
	}
	if len(domains) == 0 {
		return reps
	}
	f, err := os.Open(queue.New(s.Root).Mess(id))
	if err != nil {
		return []string{"Zqmail-spawn unable to open message. (#4.3.0)\n"}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return []string{"Zqmail-spawn unable to fstat message. (#4.3.0)\n"}
	}
	for _, d := range domains {
		idx := byDomain[d]
		rcpts := make([]string, len(idx))
		for k, i := range idx {
			rcpts[k] = b.Recipients[i]
		}
		res := s.deliver(f, st.Size(), b.Sender, rcpts, d)
		for k, i := range idx {
			reps[i] = ReportFor(res, k)
		}
	}
	return reps
}

func (s *Spawner) deliver(msg *os.File, size int64, sender string, rcpts []string, domain string) remote.Result {
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
	cfg.TCPTo = s.TCPTo
	return remote.Deliver(ctx, cfg, sender, rcpts, msg, size)
}

// Report is ReportFor the first recipient.
func Report(r remote.Result) string { return ReportFor(r, 0) }

// ReportFor turns qmail-remote's result into the report qmail-rspawn
// gives qmail-send for recipient i, by qmail-rspawn's rules: the
// recipient's own verdict counts (a refused recipient fails even if the
// message went to others), the message's verdict otherwise (also when
// the result has no report for it), and the message's text follows the
// recipient's when the message fared no better.
func ReportFor(r remote.Result, i int) string {
	msg := rank(r.Message.Status)
	if i >= len(r.Recipients) {
		return letter(msg) + r.Message.Text
	}
	rc := r.Recipients[i]
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

// Run is qmail-rspawn: serve qmail-send on in/out until in ends. Like
// qmail's it empties lock/tcpto first (a restart forgets which hosts
// were dead); it speaks the batch extension when qmail-send asks.
func Run(root string, in, out *os.File) error {
	path := remote.TCPToPath(root)
	_ = remote.CleanTCPTo(path) // as qmail: a table that cannot be cleaned is only stale
	s := &Spawner{Root: root, TCPTo: remote.NewTCPTo(path)}
	return spawn.ServeBatches(in, out, spawn.Limit, MaxBatch, s.DeliverBatch)
}
