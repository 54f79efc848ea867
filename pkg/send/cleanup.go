package send

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quail-mta/quail/queue"
)

// CleanupInterval is how often qmail-send looks for message files that
// no todo/ or info/ entry names any more (left by a crash between the
// steps of an injection or of a message's end), as qmail does.
const CleanupInterval = 76431 * time.Second

// ossified is the age after which such a file is removed: long enough
// that no injection can still be writing it.
const ossified = 36 * time.Hour

// cleanup removes ossified leftovers in mess/ through qmail-clean.
func (s *Sender) cleanup() {
	// Finished messages waiting for their foop go first: the sweep
	// below sees them as orphans, and a second foop sent after the
	// first could remove a new message that took the same id.
	s.cleanFinished()
	now := s.now()
	for i := range queue.Split {
		dir := filepath.Join(s.q.Dir, "mess", fmt.Sprint(i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			s.log.printf("alert: unable to opendir %s, sleeping...", dir)
			continue
		}
		for _, e := range entries {
			id, ok := queue.ParseID(e.Name())
			if !ok || s.msgs[id] != nil || exists(s.q.Todo(id)) || exists(s.q.Info(id)) {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(dir, e.Name()), &st) != nil {
				continue
			}
			if now.Sub(queue.LastUsed(&st)) > ossified {
				s.cleanCmd("foop", id)
			}
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
