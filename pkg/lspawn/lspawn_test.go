package lspawn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/localworker"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/recipient"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// The reports qmail-lspawn gives before any worker is involved.
func TestDeliverRefusals(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"control", "domains"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	if err := queue.New(root).MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	if err := contract.New(root).AddDomain(contract.Domain{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	owner := func() (string, privsep.IDs, error) { return "someone", privsep.IDs{UID: 4242, GID: 4242}, nil }
	// Built by hand rather than with New, so the test needs no qmailq
	// account and accepts message files written by whoever runs it.
	s := &Spawner{cfg: Config{Root: root, DefaultDelivery: "./Maildir/", Worker: "/nonexistent",
		Resolver: &recipient.Resolver{Root: root, Owner: owner, SingleUser: true}},
		q: queue.New(root), workers: map[privsep.IDs]*localworker.Worker{}, queueUID: -1}
	for _, tc := range []struct {
		mess, rcpt, want string
	}{
		{"1/1", "nohost", "DSorry, address must include host name. (#5.1.3)\n"},
		{"1/1", "@example.test", "Kdid 0+0+0\n"},
		{"1/1", "example.test-bob@example.test", "DSorry, no mailbox here by that name. (#5.1.1)\n"},
		{"1/x", "postmaster@mx.example.com", "DInternal error: messid has nonnumerics. (#5.3.5)\n"},
		{"5/28", "postmaster@mx.example.com", "Zqmail-spawn unable to open message. (#4.3.0)\n"},
	} {
		if got := s.Deliver(spawn.Command{Mess: tc.mess, Recipient: tc.rcpt}); got != tc.want {
			t.Errorf("Deliver(%s, %s) = %q, want %q", tc.mess, tc.rcpt, got, tc.want)
		}
	}
	// A worker that cannot start is a temporary failure, never a loss.
	w, _ := queue.New(root).Create()
	w.Write([]byte("Subject: x\n\n"))
	w.Commit(queue.Todo(0, 1, queue.Envelope{Sender: "a@b", Recipients: []string{"x@y"}}))
	mess := filepath.Base(filepath.Dir(queue.New(root).Mess(w.ID()))) + "/" + filepath.Base(queue.New(root).Mess(w.ID()))
	if got := s.Deliver(spawn.Command{Mess: mess, Recipient: "postmaster@mx.example.com"}); got[0] != 'Z' {
		t.Errorf("with no qmail-local to run: %q, want a Z report", got)
	}
}
