package tcpserver

import (
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/reuse"
	"github.com/quail-mta/quail/pkg/timerslack"
)

// With -k, a program process that speaks package reuse's protocol serves
// up to Options.Reuse connections, one after another: when it reports
// "done", the next connection is handed to it instead of to a new
// process. The pool below is the launcher's side; every change of a
// worker's state happens under pool.mu, which is taken before log.mu, so
// that a connection's "end" line is always written before the "pid" line
// of the next connection its process serves.

// idleMax is how long a process may wait for a connection before it is
// told to exit: a process kept longer only holds memory.
const idleMax = 60 * time.Second

type pool struct {
	mu       sync.Mutex
	idle     []*worker // the most recently used last: handed out first
	stopping bool
	idleMax  time.Duration
}

// worker is one program process started with a channel.
type worker struct {
	p      *os.Process
	ch     *pollfd.Channel // the launcher's end
	served int             // connections handed to it, its first included
	busy   bool            // serving a connection, which holds a -c token
	open   bool            // the channel may carry another connection
	gen    int             // counts its idle spells, so a stale idle timer does nothing
	timer  *time.Timer
}

// startWorker starts the program for a first connection, conn, with env
// and a channel on fd 3 named by $QUAIL_REUSE_FD. The worker counts as
// busy with conn; watch must follow once the connection is logged.
func (s *Server) startWorker(path string, conn *os.File, env []string) (*worker, error) {
	ours, theirs, err := pollfd.NewPair()
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	var p *os.Process
	err = timerslack.StartSession(func() (err error) {
		p, err = os.StartProcess(path, s.o.Program, &os.ProcAttr{
			Env:   setEnv(setEnv(env, reuse.EnvFD, "3"), reuse.EnvProgram, path),
			Files: []*os.File{conn, conn, s.stderr, theirs},
		})
		return err
	})
	if err != nil {
		ours.Close()
		return nil, err
	}
	return &worker{p: p, ch: ours, served: 1, busy: true, open: true}, nil
}

// watch follows a started worker: its packets and its exit.
func (s *Server) watch(w *worker) {
	go s.readChannel(w)
	go s.waitWorker(w)
}

// handoff gives the connection conn (a blocking descriptor) and its
// environment to the most recently idle worker, and logs the connection
// as a new process's. A worker that cannot take it (it died, or closed
// its channel) is given up and the next one tried. It reports whether
// some worker took the connection.
func (s *Server) handoff(conn int, env []string, f *Facts) bool {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	for len(s.pool.idle) > 0 {
		w := s.pool.idle[len(s.pool.idle)-1]
		s.pool.idle = s.pool.idle[:len(s.pool.idle)-1]
		w.timer.Stop()
		if err := reuse.Handoff(w.ch, env, conn); err != nil {
			// EPIPE or ECONNREFUSED: its process is gone or no longer
			// listens. (An idle worker's buffer is empty, so EAGAIN
			// cannot mean "wait".) Its exit is still reaped.
			s.retire(w)
			continue
		}
		w.busy = true
		w.served++
		if s.o.Verbosity >= Verbose {
			s.log.write(pidLine(w.p.Pid, IPString(f.Remote.Addr())) + connLine("ok", w.p.Pid, f))
		}
		return true
	}
	return false
}

// readChannel reads the worker's packets until its channel closes.
func (s *Server) readChannel(w *worker) {
	buf := make([]byte, len(reuse.Done)+1)
	for {
		// No room for descriptors: any a worker sends are closed, and the
		// packet ends its reuse.
		n, _, err := w.ch.Receive(buf, 0)
		if err != nil || string(buf[:n]) != reuse.Done {
			// End of file (the program closed its end or exited), our own
			// close, or a packet the protocol does not have: in every case
			// the worker is never handed anything again.
			s.pool.mu.Lock()
			s.retire(w)
			s.pool.mu.Unlock()
			return
		}
		if !s.finished(w) {
			return
		}
	}
}

// finished handles a worker's "done": its connection is over, logged as
// a process that exited 0, and the worker waits for the next one unless
// it has served its share or the server is stopping. It reports whether
// the worker stays.
func (s *Server) finished(w *worker) bool {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	if !w.busy {
		s.retire(w) // "done" with nothing handed over: not the protocol
		return false
	}
	w.busy = false
	s.changeActive(-1, endLine(w.p.Pid, 0))
	<-s.sem
	if !w.open || w.served >= s.o.Reuse || s.pool.stopping {
		s.retire(w)
		return false
	}
	w.gen++
	gen := w.gen
	s.pool.idle = append(s.pool.idle, w)
	w.timer = time.AfterFunc(s.pool.idleMax, func() {
		s.pool.mu.Lock()
		defer s.pool.mu.Unlock()
		if w.gen == gen && w.open && !w.busy {
			s.retire(w)
		}
	})
	return true
}

// waitWorker reaps the worker's process. A connection it was serving
// ends with the process's wait status, as without -k; an idle process
// that exits just leaves the pool, its last connection already logged.
func (s *Server) waitWorker(w *worker) {
	var wstat uint32
	if st, err := w.p.Wait(); err == nil {
		wstat = uint32(st.Sys().(syscall.WaitStatus))
	}
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	if w.busy {
		w.busy = false
		s.changeActive(-1, endLine(w.p.Pid, wstat))
		<-s.sem
	}
	s.retire(w)
}

// retire makes w take no more connections: it leaves the idle pool and
// its channel is closed, which tells an idle program to exit (and wakes
// readChannel). Called with pool.mu held; retiring twice is harmless.
func (s *Server) retire(w *worker) {
	w.open = false
	if i := slices.Index(s.pool.idle, w); i >= 0 {
		s.pool.idle = slices.Delete(s.pool.idle, i, i+1)
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	w.ch.Close()
}

// stopReuse retires every idle worker and makes busy ones retire when
// they finish: the server is stopping.
func (s *Server) stopReuse() {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	s.pool.stopping = true
	for _, w := range slices.Clone(s.pool.idle) {
		s.retire(w)
	}
}

// envSize is the length of env as a handoff packet.
func envSize(env []string) int {
	n := 0
	for _, kv := range env {
		n += len(kv) + 1
	}
	return n
}
