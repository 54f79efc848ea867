package send

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/routing"
	"github.com/quail-mta/quail/queue"
)

// scanTodo preprocesses every message in todo/ (reference §2.3).
func (s *Sender) scanTodo() {
	entries, err := os.ReadDir(filepath.Join(s.q.Dir, "todo"))
	if err != nil {
		s.log.printf("alert: unable to opendir todo, sleeping...")
		return
	}
	for _, e := range entries {
		id, ok := queue.ParseID(e.Name())
		if !ok {
			continue
		}
		if err := s.preprocess(id); err != nil {
			s.log.printf("warning: trouble with todo/%d: %s; will try again later", id, safe(err.Error()))
		}
	}
}

// preprocess turns todo/N into info/S/N and local/S/N, remote/S/N, makes
// them durable, and only then has qmail-clean remove todo/N and intd/N:
// at every instant one of the two forms is complete on disk.
func (s *Sender) preprocess(id uint64) error {
	if s.msgs[id] != nil {
		// Preprocessed already, but qmail-clean failed to remove todo/N:
		// only the cleanup is left to do.
		return s.cleanCmd("todo", id)
	}
	data, err := os.ReadFile(s.q.Todo(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // cleaned meanwhile
	}
	if err != nil {
		return err
	}
	recs, err := queue.ParseRecords(data)
	if err != nil {
		return fmt.Errorf("todo/%d: %w", id, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.q.Mess(id), &st); err != nil {
		return fmt.Errorf("unable to stat mess/%s: %w", messPath(id), err)
	}
	for _, p := range []string{s.q.Info(id), s.q.Local(id), s.q.Remote(id)} {
		os.Remove(p) // stale from a crash during an earlier preprocessing
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
			return fmt.Errorf("unknown record type in todo/%d", id)
		}
	}
	if info == nil {
		return fmt.Errorf("todo/%d has no sender record", id)
	}
	if err := writeSynced(s.q.Info(id), info); err != nil {
		return err
	}
	for c, content := range files {
		if content != nil {
			if err := writeSynced(s.jobPath(id, c), content); err != nil {
				return err
			}
		}
	}
	for _, dir := range []string{"info", "local", "remote"} {
		if err := atomicfile.SyncDir(splitDir(s.q, dir, id)); err != nil {
			return err
		}
	}
	if err := s.cleanCmd("todo", id); err != nil {
		return err
	}
	var fi syscall.Stat_t
	syscall.Stat(s.q.Info(id), &fi)
	m := &message{id: id, birth: timespec(fi.Mtim), sender: sender}
	s.msgs[id] = m
	now := s.now()
	for c, content := range files {
		if content != nil {
			s.addJob(m, c, now)
		}
	}
	if m.jobs[chLocal] == nil && m.jobs[chRemote] == nil {
		s.complete(m)
	}
	return nil
}

// writeSynced creates path exclusively with content and fsyncs it.
func writeSynced(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
	data, err := os.ReadFile(s.q.Info(id))
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
