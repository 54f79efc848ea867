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
// into one Maildir's new/. Each call returns once an fsync of dir that
// started after the call has ended, as SyncDir's own would have: but
// calls that arrive while one fsync is running share the next, so a
// burst of n calls costs two fsyncs, not n.
func SyncDirShared(dir string) error { return sharedSyncs.sync(dir) }

var sharedSyncs = dirSyncs{syncDir: SyncDir}

// dirSyncs runs the fsyncs of SyncDirShared, one at a time per
// directory.
type dirSyncs struct {
	syncDir func(string) error
	mu      sync.Mutex
	dirs    map[string]*dirSync
}

// dirSync is one directory's state. Its fsyncs are numbered in the order
// they start; only one runs at a time.
type dirSync struct {
	users    int        // calls in progress; the entry goes with the last
	running  bool       // an fsync is running
	started  uint64     // number of the last fsync started
	done     uint64     // number of the last fsync ended
	failedAt uint64     // number of the last fsync that failed
	err      error      // its error
	ended    *sync.Cond // signalled when an fsync ends
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
	// The caller's change is made: the first fsync to start from now on
	// covers it. One running now may have started before the change.
	need := s.started + 1
	for s.done < need {
		if s.running {
			s.ended.Wait()
			continue
		}
		s.running = true
		s.started++
		n := s.started
		d.mu.Unlock()
		err := d.syncDir(dir)
		d.mu.Lock()
		s.running = false
		s.done = n
		if err != nil {
			s.failedAt, s.err = n, err
		}
		s.ended.Broadcast()
	}
	// A failure of any fsync from need on may have lost the change: a
	// later fsync's success does not say the directory reached the disk
	// (Linux reports a writeback error to one fsync only).
	if s.failedAt >= need {
		return s.err
	}
	return nil
}
