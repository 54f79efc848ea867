// Package lspawn is qmail-lspawn: it takes local deliveries from
// qmail-send over the spawn protocol, finds who takes each (package
// recipient), and has them done by qmail-local running as that mailbox's
// owner.
//
// qmail ran one qmail-local process per delivery. quail keeps one
// long-lived qmail-local worker per owner (uid and gid) instead, started
// under that account with no supplementary groups and fed deliveries over
// a socket, each with its message file passed as an open descriptor: a
// delivery into a Maildir costs no process creation, and the separation
// is as strict as qmail's (the worker holds only its owner's rights; all
// virtual mailboxes share the qmailv owner). A worker idle for a while
// exits, and is started again when mail comes. Only a .qmail line that
// runs a program creates a process per delivery.
package lspawn

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/quail-mta/quail/pkg/dotqmail"
	"github.com/quail-mta/quail/pkg/localworker"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/recipient"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/pkg/sysfile"
	"github.com/quail-mta/quail/queue"
)

// Config is qmail-lspawn's.
type Config struct {
	Root            string
	DefaultDelivery string
	Resolver        *recipient.Resolver
	// Worker is the qmail-local program, run as "Worker --worker" with the
	// socket on fd 3.
	Worker string
	// Env is the environment workers and their programs get.
	Env []string
}

// Spawner serves qmail-send's local deliveries.
type Spawner struct {
	cfg      Config
	q        queue.Queue
	mu       sync.Mutex
	workers  map[privsep.IDs]*localworker.Worker
	nextID   uint64
	queueUID int // owner every message file must have, or -1
}

// New returns a spawner.
func New(cfg Config) (*Spawner, error) {
	s := &Spawner{cfg: cfg, q: queue.New(cfg.Root), workers: map[privsep.IDs]*localworker.Worker{}, queueUID: -1}
	if privsep.Root() {
		ids, err := privsep.Lookup(privsep.Queue)
		if err != nil {
			return nil, err
		}
		s.queueUID = ids.UID
	}
	return s, nil
}

// Deliver runs one delivery and returns its report (K, Z or D, then text).
func (s *Spawner) Deliver(c spawn.Command) string {
	at := strings.LastIndexByte(c.Recipient, '@')
	if at < 0 {
		return "DSorry, address must include host name. (#5.1.3)\n"
	}
	local, domain := c.Recipient[:at], c.Recipient[at+1:]
	if local == "" {
		return "Kdid 0+0+0\n" // qmail's trash address
	}
	t, err := s.cfg.Resolver.Resolve(local)
	switch {
	case errors.Is(err, recipient.ErrNoMailbox):
		return "D" + err.Error() + "\n"
	case err != nil:
		return "ZTemporary failure in qmail-lspawn: " + err.Error() + "\n"
	case t.UID == 0:
		return "ZNot allowed to perform deliveries as root.\n"
	}
	msg, err := s.openMessage(c.Mess)
	if err != nil {
		return err.Error()
	}
	defer msg.Close()
	rq := localworker.Request{User: t.User, Home: t.Home, Local: local, Dash: t.Dash, Ext: t.Ext,
		Domain: domain, Sender: c.Sender, DefaultDelivery: s.cfg.DefaultDelivery}
	// A worker that went idle between lookup and use is replaced once.
	for try := 0; ; try++ {
		w, err := s.worker(privsep.IDs{UID: t.UID, GID: t.GID})
		if err != nil {
			return "ZUnable to run qmail-local: " + err.Error() + "\n"
		}
		status, output, err := w.Deliver(s.id(), rq, msg)
		if errors.Is(err, localworker.ErrClosed) && try == 0 {
			continue
		}
		if errors.Is(err, localworker.ErrTooLarge) {
			return "DSorry, the envelope of this delivery is too long. (#5.1.3)\n"
		}
		if err != nil {
			return dotqmail.LspawnReport(0, true, nil)
		}
		return dotqmail.LspawnReport(status, false, output)
	}
}

func (s *Spawner) id() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return s.nextID
}

// openMessage opens queue/mess/S/N as qmail-lspawn does, refusing what
// qmailq did not write; errors are reports.
func (s *Spawner) openMessage(mess string) (*os.File, error) {
	id, ok := queue.ParseID(mess[strings.IndexByte(mess, '/')+1:])
	if !ok || strings.Count(mess, "/") != 1 {
		return nil, errors.New("DInternal error: messid has nonnumerics. (#5.3.5)\n")
	}
	f, err := sysfile.Open(s.q.Mess(id))
	if err != nil {
		return nil, errors.New("Zqmail-spawn unable to open message. (#4.3.0)\n")
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, errors.New("Zqmail-spawn unable to fstat message. (#4.3.0)\n")
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		f.Close()
		return nil, errors.New("ZSorry, message has wrong type. (#4.3.5)\n")
	}
	if s.queueUID >= 0 && int(st.Uid) != s.queueUID {
		f.Close()
		return nil, errors.New("ZSorry, message has wrong owner. (#4.3.5)\n")
	}
	return f, nil
}

// worker returns the running worker of an owner, starting one if needed.
func (s *Spawner) worker(ids privsep.IDs) (*localworker.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[ids]; w != nil && !w.Dead() {
		return w, nil
	}
	var owner *privsep.IDs
	if privsep.Root() {
		owner = &ids
	}
	w, err := localworker.Start(localworker.Options{
		Program: s.cfg.Worker, Root: s.cfg.Root, Env: s.cfg.Env, Owner: owner,
		OnExit: func(w *localworker.Worker) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.workers[ids] == w {
				delete(s.workers, ids)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	s.workers[ids] = w
	return w, nil
}

// Close ends every worker after its deliveries in flight.
func (s *Spawner) Close() {
	s.mu.Lock()
	ws := make([]*localworker.Worker, 0, len(s.workers))
	for _, w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
}

// Run is qmail-lspawn: serve qmail-send on in/out until in ends.
func Run(cfg Config, in *os.File, out *os.File) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return spawn.Serve(in, out, spawn.Limit, s.Deliver)
}

// DefaultWorker is the qmail-local program of an instance.
func DefaultWorker(root string) string { return filepath.Join(root, "bin", "qmail-local") }
