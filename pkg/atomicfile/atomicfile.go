// Package atomicfile replaces files so that a crash at any instant leaves
// either the old content or the new, never a mix, and the new content
// survives power loss once the call returns.
//
// The order, which every durable replacement in quail follows:
//  1. create a temporary file in the target's directory (same filesystem,
//     so the rename below is atomic);
//  2. write the content and set the owner, then the permissions (chown
//     clears setuid bits);
//  3. fsync the file, so its blocks and mode are on disk before any name
//     points at them, then close;
//  4. rename the temporary file over the target: the atomic switch;
//  5. fsync the directory, so the rename itself is on disk (Linux does
//     not promise that a rename is durable when it returns).
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// WriteFile durably replaces path with data, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), perm, nil)
}

// Owner is the account a replaced file is given.
type Owner struct{ UID, GID int }

// WriteFrom durably replaces path with what r holds, with permissions
// perm, owned by owner when it is not nil. Owner and mode are set before
// the file gets its name, so it is never visible with the wrong ones (a
// setuid program owned by the wrong account, a key readable by others).
func WriteFrom(path string, r io.Reader, perm os.FileMode, owner *Owner) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("replace %s: write: %w", path, err)
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("replace %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replace %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	committed = true
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creations, links, renames and
// removals of names in it durable.
// It opens the directory with open(2) itself: os.Open would spend five
// more system calls offering it to the network poller.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync directory: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// SyncDirShared is SyncDir for the goroutines of one process that change
// the same directory at once, such as a qmail-local worker's deliveries
// into one Maildir's new/. Each call waits for the first fsync of dir to
// start after the call, as SyncDir's own would be, and returns its
// result; but calls that arrive while one fsync is running share the
// next, so a burst of n calls costs two fsyncs, not n.
func SyncDirShared(dir string) error { return sharedSyncs.sync(dir) }

var sharedSyncs = dirSyncs{syncDir: SyncDir}

// dirSyncs runs the fsyncs of SyncDirShared, one at a time per
// directory.
type dirSyncs struct {
	syncDir func(string) error
	mu      sync.Mutex
	dirs    map[string]*dirSync
}

// dirSync is one directory's state.
type dirSync struct {
	users   int        // calls in progress; the entry goes with the last
	running *syncRound // the fsync running, if any
	next    *syncRound // the one that starts next, for the calls since
	ended   *sync.Cond // signalled when an fsync ends
}

// syncRound is one fsync and the calls that wait for it.
type syncRound struct {
	done bool
	err  error
}

func (d *dirSyncs) sync(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs = map[string]*dirSync{}
	}
	s := d.dirs[dir]
	if s == nil {
		s = &dirSync{ended: sync.NewCond(&d.mu)}
		d.dirs[dir] = s
	}
	s.users++
	defer func() {
		if s.users--; s.users == 0 {
			delete(d.dirs, dir)
		}
	}()
	// The caller's change is made, so the next fsync to start covers it;
	// the one running may have started before the change.
	if s.next == nil {
		s.next = &syncRound{}
	}
	r := s.next
	for !r.done {
		if s.running != nil {
			s.ended.Wait()
			continue
		}
		// r has not started (it would be running or done) and is still
		// the next: start it.
		s.running, s.next = r, nil
		d.mu.Unlock()
		err := d.syncDir(dir)
		d.mu.Lock()
		r.done, r.err = true, err
		s.running = nil
		s.ended.Broadcast()
	}
	// Its result alone says whether the change is on disk: a later
	// fsync's success would not (Linux reports a writeback error to one
	// fsync only), and a later failure does not concern it.
	return r.err
}
