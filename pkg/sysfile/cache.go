package sysfile

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ReadFileCached is ReadFile for the small files that change rarely and
// are read over and over by a process that lives long (qmail-smtpd under
// qmail-tcpserver -k reads control/me, rcpthosts, locals and a domain's
// passwd for every session): it keeps what it read, and reads a file
// again only when stat(2) shows a change. A hit costs one stat instead of
// an open, an fstat, two reads and a close. A missing file is not
// remembered: its open fails at the same cost as a stat would.
//
// A change shows as a different device, inode, size, modification time
// or change time. The kernel stamps those times from a clock that ticks
// every few milliseconds, so two writes of the same length within one
// tick could leave the same stamps: a file changed within the last
// settle is not kept (git's "racily clean" rule), and by the time it is,
// any later write gets a later change time.
//
// The caller gets its own copy of the contents. Paths are kept for the
// life of the process: use it only for a bounded set of files, such as
// control files and per-domain files, never for queue files. On NFS a
// stat may answer from the client's attribute cache (up to actimeo),
// where an open would have revalidated: keep control/ on a local
// filesystem, as qmail's own programs would want anyway.
func ReadFileCached(path string) ([]byte, error) {
	data, err := ReadFileShared(path)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), data...), nil
}

// ReadFileShared is ReadFileCached without the copy, for a caller that
// only reads the contents (a large /etc/passwd, parsed for one entry on
// every delivery). It must not modify them.
func ReadFileShared(path string) ([]byte, error) {
	cache.Lock()
	f, ok := cache.files[path]
	cache.Unlock()
	if ok {
		var st unix.Stat_t
		if stat(path, &st) == nil && f.id == identity(&st) {
			cache.Lock()
			cache.hits++
			cache.Unlock()
			return f.data, nil
		}
	}
	// The time is taken before the read: a file whose change time is
	// settle older than that was not being written while we read it.
	now := time.Now()
	data, st, err := readFile(path)
	cache.Lock()
	defer cache.Unlock()
	delete(cache.files, path)
	if err != nil {
		return nil, err
	}
	if settled(&st, now) {
		if cache.files == nil {
			cache.files = map[string]cachedFile{}
		}
		cache.files[path] = cachedFile{id: identity(&st), data: data}
	}
	return data, nil
}

// settle is how old a file's last change must be before it is kept.
var settle = 2 * time.Second

var cache struct {
	sync.Mutex
	files map[string]cachedFile
	hits  int // for tests
}

type cachedFile struct {
	id   fileID
	data []byte
}

type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func identity(st *unix.Stat_t) fileID {
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// settled reports whether the file last changed at least settle before
// now.
func settled(st *unix.Stat_t, now time.Time) bool {
	limit := now.Add(-settle).UnixNano()
	return st.Mtim.Nano() < limit && st.Ctim.Nano() < limit
}

func stat(path string, st *unix.Stat_t) error {
	for {
		err := unix.Stat(path, st)
		if err != unix.EINTR {
			return err
		}
	}
}
