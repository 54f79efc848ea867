package send

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/routing"
	"github.com/quail-mta/quail/pkg/sysfile"
	"github.com/quail-mta/quail/queue"
)

// todoChunk is how many messages are preprocessed together: their files
// are made durable with one round of concurrent fsyncs, and one round
// trip to qmail-clean removes their todo/ entries.
const todoChunk = 64

// syncWorkers bounds the fsyncs in flight at once.
const syncWorkers = 16

// scanTodo reads todo/ (reference §2.3) and preprocesses its first
// chunk; the loop does the rest a chunk at a time, between other events,
// as qmail does one message per turn.
func (s *Sender) scanTodo() {
	if err := s.readTodo(); err != nil {
		s.log.printf("alert: unable to opendir todo, sleeping...")
		return
	}
	s.preprocessSome()
}

// readTodo sets todo to the ids in todo/ that have something to be
// done: not those whose fsyncs are in flight, nor the direct messages
// being delivered or waiting to be, which can be a thousand (directMax)
// and would otherwise be walked past at every scan. qmail-send scans
// for every trigger, so the names are read into a kept buffer
// (queue.ScanIDs). A failed read keeps todo as it was.
func (s *Sender) readTodo() error {
	ids := s.scanIDs[:0]
	var err error
	s.scanBuf, err = queue.ScanIDs(filepath.Join(s.q.Dir, "todo"), s.scanBuf, func(id uint64) {
		if s.syncing[id] {
			return
		}
		if m := s.msgs[id]; m != nil && m.direct && !m.toWrite && !m.finished {
			return
		}
		ids = append(ids, id)
	})
	if err != nil {
		s.scanIDs = ids[:0]
		return err
	}
	s.todo, s.scanIDs = ids, s.todo[:0]
	return nil
}

// synced is a chunk whose files were fsynced, and how that went.
type synced struct {
	ready []*prepared
	err   error
}

// preprocessSome writes the next chunk of todo/ and starts its fsyncs.
// The loop goes on meanwhile: under load an fsync waits tens of
// milliseconds, and deliveries that finish in that time must not wait
// for it too. commitChunk ends the chunk when its fsyncs are done; one
// chunk is in flight at a time.
func (s *Sender) preprocessSome() {
	if len(s.syncing) > 0 || s.exiting {
		return
	}
	var ready []*prepared
	var leftover []uint64
	// taken counts the messages direct delivery took too, so that one
	// turn of the loop does a chunk's worth, not all of todo/.
	for taken := 0; len(s.todo) > 0 && taken < todoChunk; taken++ {
		id := s.todo[0]
		s.todo = s.todo[1:]
		var p *prepared
		var err error
		if m := s.msgs[id]; m != nil {
			switch {
			case !m.direct:
				// Preprocessed already, but qmail-clean failed to
				// remove todo/N: only the cleanup is left to do.
				leftover = append(leftover, id)
				continue
			case m.finished:
				s.directDone = append(s.directDone, id)
				continue
			case !m.toWrite:
				continue // being delivered
			}
			if p, err = s.writeDirect(m); err == nil {
				m.toWrite = false // until the chunk fails
			}
		} else {
			p, err = s.prepare(id)
		}
		if err != nil {
			s.log.printf("warning: trouble with todo/%d: %s; will try again later", id, safe(err.Error()))
			continue
		}
		if p != nil {
			ready = append(ready, p)
		}
	}
	for i, err := range s.cleanCmds("todo", leftover) {
		if err != nil {
			s.log.printf("warning: trouble with todo/%d: %s; will try again later", leftover[i], safe(err.Error()))
		}
	}
	if len(ready) == 0 {
		return
	}
	for _, p := range ready {
		s.syncing[p.id] = true
	}
	go func() {
		if s.cfg.beforeSync != nil {
			s.cfg.beforeSync()
		}
		s.synced <- synced{ready, s.syncPrepared(ready)}
	}()
}

// commitChunk ends the preprocessing of a chunk once its fsyncs are
// done: only now does qmail-clean remove each todo/N and intd/N, so at
// every instant one of the two forms is complete on disk. Then the
// deliveries are scheduled.
func (s *Sender) commitChunk(c synced) {
	for _, p := range c.ready {
		delete(s.syncing, p.id)
	}
	again := func(id uint64) {
		if m := s.msgs[id]; m != nil && m.direct {
			m.toWrite = true
		}
	}
	if c.err != nil {
		for _, p := range c.ready {
			again(p.id)
		}
		// todo/N stays for each: the next scan does them again (a
		// direct message keeps toWrite for it).
		s.log.printf("warning: trouble with todo/: %s; will try again later", safe(c.err.Error()))
		return
	}
	ids := make([]uint64, len(c.ready))
	for i, p := range c.ready {
		ids[i] = p.id
	}
	for i, err := range s.cleanCmds("todo", ids) {
		if err != nil && exists(s.q.Todo(ids[i])) {
			s.log.printf("warning: trouble with todo/%d: %s; will try again later", ids[i], safe(err.Error()))
			again(ids[i])
			continue
		}
		s.commit(c.ready[i])
	}
}

// prepared is a message whose info/ and local/ or remote/ files are
// written but not yet known to be durable.
type prepared struct {
	id     uint64
	sender string
	files  []*os.File // written, to be fsynced and closed
	dirs   []string   // their directories, to be fsynced
	chans  [2]bool    // which of local/ and remote/ it has
}

// prepare turns todo/N into info/S/N and local/S/N, remote/S/N, written
// but not synced; nil when todo/N is gone, or when the message is
// delivered directly (startDirect).
func (s *Sender) prepare(id uint64) (*prepared, error) {
	data, err := sysfile.ReadFile(s.q.Todo(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // cleaned meanwhile
	}
	if err != nil {
		return nil, err
	}
	recs, err := queue.ParseRecords(data)
	if err != nil {
		return nil, fmt.Errorf("todo/%d: %w", id, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.q.Mess(id), &st); err != nil {
		return nil, fmt.Errorf("unable to stat mess/%s: %w", messPath(id), err)
	}
	// Stale from a crash during an earlier preprocessing, or during a
	// direct delivery (whose failure report may be in bounce/N). They are
	// files: unlink(2) alone, where os.Remove would try rmdir(2) too for
	// each one absent, as they nearly always are.
	for _, p := range []string{s.q.Info(id), s.q.Local(id), s.q.Remote(id), s.q.Bounce(id)} {
		syscall.Unlink(p)
	}
	s.log.printf("new msg %d", id)
	var info []byte
	var files [2][]byte
	var uid, qp, sender string
	for _, r := range recs {
		switch r.Type {
		case 'u':
			uid = r.Data
		case 'p':
			qp = r.Data
		case 'F':
			sender = r.Data
			info = append(append([]byte{'F'}, r.Data...), 0)
			s.log.printf("info msg %d: bytes %d from <%s> qp %s uid %s", id, st.Size, safe(r.Data), qp, uid)
		case 'T':
			ch, addr := s.route.Route(r.Data)
			c := chRemote
			if ch == routing.Local {
				c = chLocal
			}
			files[c] = append(append(append(files[c], 'T'), addr...), 0)
		default:
			return nil, fmt.Errorf("unknown record type in todo/%d", id)
		}
	}
	if info == nil {
		return nil, fmt.Errorf("todo/%d has no sender record", id)
	}
	if files[chRemote] == nil && bytes.Count(files[chLocal], []byte{0}) == 1 && s.directRoom() {
		s.startDirect(id, sender, files[chLocal])
		return nil, nil
	}
	return s.write(id, sender, info, files, time.Time{})
}

// startDirect delivers a message of one local recipient straight from
// todo/N, without qmail's preprocessing: no info/ or local/ file is
// written, fsynced, and removed again for a delivery that takes
// milliseconds. todo/N, intd/N and mess/N, durable since qmail-queue
// acknowledged the message, are its whole state on disk. If the
// delivery succeeds or fails for good, the message ends as any other
// (bounce included), and qmail-clean removes todo/N, then mess/N. If it
// defers, writeDirect writes the files qmail's preprocessing would have
// (birth kept), and from then on it is an ordinary queued message.
//
// A crash meanwhile leaves todo/N, and the next qmail-send delivers the
// message again: the one recipient may get it twice, as after a crash
// between a delivery and the D mark that records it.
func (s *Sender) startDirect(id uint64, sender string, local []byte) {
	m := &message{id: id, birth: s.now(), sender: sender, direct: true}
	s.msgs[id] = m
	s.addJob(m, chLocal, m.birth)
	m.jobs[chLocal].mem = local
	s.directWaiting++
}

// directRoom reports whether a message can go direct: while the local
// deliveries running (direct or not) and the direct messages waiting to
// start number fewer than directMax. The others are preprocessed, as
// qmail does.
func (s *Sender) directRoom() bool {
	limit := directMax
	if s.cfg.directMax != 0 {
		limit = s.cfg.directMax
	}
	return s.chans[chLocal].used+s.directWaiting < limit
}

// directMax bounds the direct messages. It is a count, not a multiple
// of the local concurrency, because what it bounds is the length of
// todo/, where they stay until their delivery ends: every scan reads
// all of it (about 0.2 ms for a thousand names on the VM quail is
// measured on), and qmail-qread does not list them. The bound must not
// be reached under a passing burst: a message that finds it reached is
// preprocessed, which costs more than its delivery (two files, their
// fsyncs and their removal), so delivery falls further behind and more
// messages are preprocessed. In bench-smtp.sh, with 100 qmail-send
// made up to two fsyncs per message in some runs, most messages
// preprocessed; with 1000, none.
const directMax = 1000

// writeDirect writes the files of a direct message whose delivery
// deferred; commit makes it an ordinary message once they are durable.
func (s *Sender) writeDirect(m *message) (*prepared, error) {
	for _, p := range []string{s.q.Info(m.id), s.q.Local(m.id)} {
		os.Remove(p) // from an attempt whose chunk failed
	}
	info := append(append([]byte{'F'}, m.sender...), 0)
	return s.write(m.id, m.sender, info, [2][]byte{m.jobs[chLocal].mem, nil}, m.birth)
}

// write writes a message's info/ file and its local/ and remote/ files
// with the given records, not synced. A birth that is not zero becomes
// info/'s mtime, which is where qmail keeps it.
func (s *Sender) write(id uint64, sender string, info []byte, files [2][]byte, birth time.Time) (*prepared, error) {
	p := &prepared{id: id, sender: sender}
	add := func(path, dir string, content []byte) error {
		f, err := s.create(path, content)
		if err != nil {
			return err
		}
		p.files = append(p.files, f)
		p.dirs = append(p.dirs, splitDir(s.q, dir, id))
		return nil
	}
	err := add(s.q.Info(id), "info", info)
	if err == nil && !birth.IsZero() {
		err = os.Chtimes(s.q.Info(id), birth, birth)
	}
	for c, content := range files {
		if content != nil && err == nil {
			err = add(s.jobPath(id, c), []string{"local", "remote"}[c], content)
			p.chans[c] = true
		}
	}
	if err != nil {
		// The next scan writes them again; meanwhile a spare's old bytes
		// must not sit under this message's names.
		for _, f := range p.files {
			f.Close()
			os.Remove(f.Name())
		}
		return nil, err
	}
	return p, nil
}

// syncPrepared makes the chunk's files durable, then their directories:
// fsyncs run concurrently so the filesystem can commit them together
// (ext4 joins the fsyncs of one journal transaction), where one after
// the other each would wait for a commit of its own.
func (s *Sender) syncPrepared(ready []*prepared) error {
	var files []*os.File
	dirs := map[string]bool{}
	for _, p := range ready {
		files = append(files, p.files...)
		for _, d := range p.dirs {
			dirs[d] = true
		}
	}
	err := parallel(len(files), func(i int) error {
		err := files[i].Sync()
		if cerr := files[i].Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return err
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	return parallel(len(names), func(i int) error { return atomicfile.SyncDir(names[i]) })
}

// parallel runs f(0) to f(n-1) on at most syncWorkers goroutines and
// returns the first error.
func parallel(n int, f func(int) error) error {
	var next atomic.Int64
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(n, syncWorkers) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// commit schedules the deliveries of a message whose todo/N is gone. A
// direct message's job is ready already, and waits for its next retry.
func (s *Sender) commit(p *prepared) {
	if m := s.msgs[p.id]; m != nil && m.direct {
		m.direct, m.toWrite = false, false
		j := m.jobs[chLocal]
		j.mem = nil
		s.chans[chLocal].due.add(j)
		return
	}
	var fi syscall.Stat_t
	syscall.Stat(s.q.Info(p.id), &fi)
	m := &message{id: p.id, birth: timespec(fi.Mtim), sender: p.sender}
	s.msgs[p.id] = m
	now := s.now()
	for c, has := range p.chans {
		if has {
			s.addJob(m, c, now)
		}
	}
	if m.jobs[chLocal] == nil && m.jobs[chRemote] == nil {
		s.complete(m)
	}
}

// spareDelay is how long finished info/, local/ and remote/ files cool
// before they serve new messages (see queue.Spares).
const spareDelay = 500 * time.Millisecond

// create makes path, which must not exist, with content, and returns it
// open for the fsync. The file is a spare from info/ when there is one,
// cut to content from whatever it held.
func (s *Sender) create(path string, content []byte) (*os.File, error) {
	f, _, err := s.q.SendSpares().Create(path, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(content)
	if err == nil {
		err = queue.Fit(f, int64(len(content)))
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// recover rebuilds the schedule from info/ at start: each message's jobs
// are its local/ and remote/ files, due at their mtimes (where a clean
// stop stored them).
func (s *Sender) recover() {
	for i := range queue.Split {
		dir := filepath.Join(s.q.Dir, "info", fmt.Sprint(i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			s.log.printf("alert: unable to opendir %s, sleeping...", dir)
			continue
		}
		for _, e := range entries {
			id, ok := queue.ParseID(e.Name())
			if !ok {
				continue
			}
			s.recoverMessage(id)
		}
	}
}

func (s *Sender) recoverMessage(id uint64) {
	if _, err := os.Stat(s.q.Todo(id)); err == nil {
		// A crash came during its preprocessing: scanTodo does it again
		// from todo/N, which is still complete.
		return
	}
	data, err := sysfile.ReadFile(s.q.Info(id))
	if err != nil {
		s.log.printf("warning: unable to stat %s; will try again later", s.q.Info(id))
		return
	}
	recs, err := queue.ParseRecords(data)
	if err != nil || len(recs) == 0 || recs[0].Type != 'F' {
		s.log.printf("warning: trouble reading info/%s; will try again later", messPath(id))
		return
	}
	var st syscall.Stat_t
	syscall.Stat(s.q.Info(id), &st)
	m := &message{id: id, birth: timespec(st.Mtim), sender: recs[0].Data}
	s.msgs[id] = m
	for c := range 2 {
		var js syscall.Stat_t
		if err := syscall.Stat(s.jobPath(id, c), &js); err == nil {
			s.addJob(m, c, timespec(js.Mtim))
		}
	}
	if m.jobs[chLocal] == nil && m.jobs[chRemote] == nil {
		s.complete(m)
	}
}

func (s *Sender) addJob(m *message, c int, next time.Time) {
	j := &job{msg: m, ch: c, next: next, index: -1}
	m.jobs[c] = j
	s.chans[c].due.add(j)
}

func timespec(ts syscall.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }
