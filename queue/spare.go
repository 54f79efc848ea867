package queue

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/sysfile"
)

// Spares recycles the inodes of finished queue files.
//
// Every message makes four queue files (mess/, intd/ with its todo/ link,
// info/, local/ or remote/) and removes them once delivered. On ext4
// without a journal each new file makes the kernel step over every inode
// of its group freed in the last minute, or five if the inode table is
// not yet written back (ialloc.c, recently_deleted), so at a few hundred
// messages a second one creation costs up to a millisecond of CPU. Here a
// finished file is kept instead, and a later file is made by renaming it:
// no inode is allocated or freed.
//
// Two pools, one per owner: pid/ holds qmailq's files (given back by
// qmail-clean, taken by qmail-queue), info/ holds qmails's (qmail-send
// both gives and takes). qmail's programs never read files there: pid/
// holds only temporary names, and qmail reads info/'s subdirectories.
//
// Blocks. A spare keeps its data blocks, up to KeepBytes, and the bytes
// of its last file with them. Emptying a file frees its blocks, which on
// a filesystem mounted with discard is a request the device must finish
// before truncate returns, and the next file allocates them again: four
// of the forty block requests per message in bench-smtp.sh. A taker
// writes over the old bytes from the start and must cut the file to what
// it wrote (Fit) before it syncs it, so nothing of an old file outlives
// it in a new one. A spare that has kept old bytes for IdleAge is
// emptied.
//
// Safety. Retire renames a finished file into the pool as cool.N. Flush
// fsyncs the directories of every name it had and only then renames it
// spare.N, so no name a crash could bring back points at an inode that
// now holds another message. Take renames a spare to its new name and
// uses it only if that is its one name: after a crash fsck counts every
// name of an inode, so a spare whose removal from the pool never reached
// the disk while its new name did is left alone, not overwritten. (That
// needs the fsck a filesystem without a journal must have after a crash
// anyway.) A crash while a taken spare is written leaves a file that no
// todo/ or info/ entry names yet, old bytes and new, which the sweeps for
// files of crashed injections remove as they would a half-written one.
//
// Privacy. A message file is handed to .qmail programs as their standard
// input, and one of them may keep it after its delivery, open or as an
// O_PATH descriptor that /proc/self/fd opens again at will. Flush first
// takes every permission from others and gives the file the pool's
// group, so such a reopening fails once the inode may hold another
// message; then it keeps the file only under a write lease, which the
// kernel grants only when no other process has the file open or mapped.
// Any other file is removed as before. So no one ever reads the next
// message through an old descriptor. The old bytes a spare keeps are
// readable by the queue's owner and group (qmailq, qmails, qmailr), who
// could read the queued messages and their todo/ envelopes anyway: the
// message file a taken spare becomes shows them until its Fit, or, if
// qmail-queue dies first, until the sweep of mess/ removes it.
type Spares struct {
	dir  string
	seq  atomic.Uint64
	kick chan struct{} // wakes the flusher; nil without one
	// known bounds the number of spares from above: the last count
	// plus those promoted since (takers only lower it), so Flush counts
	// (and trims) the pool again only near MaxSpares.
	known int

	mu      sync.Mutex // guards the fields below
	cooling []string   // names in dir waiting for Flush
	dirty   map[string]bool
	off     bool     // the filesystem refused RENAME_NOREPLACE
	dirfd   int      // dir, open for Take's reading; -1 until needed
	gid     int      // dir's group, which spares get; -1 until needed
	buf     []byte   // Take's getdents buffer
	batch   []string // spares read and not yet tried
	chunk   uint64   // counts the batches read, so a stale drop does nothing

	flushing sync.Mutex // one Flush or EmptyIdle at a time

	// whileLeased, for tests, runs while reclaim holds its lease.
	whileLeased func(path string)
}

// MaxSpares bounds a pool: past it a finished file is simply removed.
// A pool that big carries a backlog of thousands of messages; each spare
// is an inode with at most KeepBytes of data.
const MaxSpares = 10000

// lowSpares is what a count that finds more spares cuts the pool down to
// (see trim).
const lowSpares = MaxSpares - MaxSpares/10

// KeepBytes bounds the data a spare keeps: a larger finished file is
// emptied before it becomes a spare, so a burst of big messages leaves no
// lasting claim on the disk. Most messages are smaller, and so are all
// envelopes.
const KeepBytes = 64 << 10

// IdleAge is how long a spare keeps a finished file's bytes while no
// message takes it: a pool's flusher empties it then.
const IdleAge = 10 * time.Minute

// emptyEvery and emptyAge are FlushAfter's period and age for
// EmptyIdle; tests shorten them.
var emptyEvery, emptyAge = IdleAge / 2, IdleAge

const (
	coolPrefix  = "cool."
	sparePrefix = "spare."
)

// IsSpareName reports whether a name in a pool directory is the pool's
// own, a spare or a file cooling.
func IsSpareName(name string) bool {
	return strings.HasPrefix(name, sparePrefix) || strings.HasPrefix(name, coolPrefix)
}

var pools sync.Map // directory → *Spares, one per process

func pool(dir string) *Spares {
	if s, ok := pools.Load(dir); ok {
		return s.(*Spares)
	}
	s, _ := pools.LoadOrStore(dir, NewSpares(dir))
	return s.(*Spares)
}

// QueueSpares is the pool of qmailq's files, pid/.
func (q Queue) QueueSpares() *Spares { return pool(filepath.Join(q.Dir, "pid")) }

// SendSpares is the pool of qmails's files, info/.
func (q Queue) SendSpares() *Spares { return pool(filepath.Join(q.Dir, "info")) }

// NewSpares returns the pool in dir. Most callers want the process's
// own, Queue.QueueSpares or Queue.SendSpares.
func NewSpares(dir string) *Spares {
	s := &Spares{dir: dir, dirty: map[string]bool{}, dirfd: -1, gid: -1, known: MaxSpares} // unknown: count first
	s.seq.Store(uint64(time.Now().UnixNano()))
	return s
}

// FlushAfter starts a goroutine that flushes the pool d after a Retire,
// so finished files become spares without a Flush call per file, and
// that empties idle spares (EmptyIdle) every IdleAge/2. Their errors go
// to report. Call it once, before any Retire.
func (s *Spares) FlushAfter(d time.Duration, report func(error)) {
	if s.kick != nil {
		return
	}
	s.kick = make(chan struct{}, 1)
	every, age := emptyEvery, emptyAge
	go func() {
		idle := time.NewTicker(every)
		for {
			var err error
			select {
			case <-s.kick:
				time.Sleep(d)
				err = s.Flush()
			case now := <-idle.C:
				err = s.EmptyIdle(now.Add(-age))
			}
			if err != nil {
				report(err)
			}
		}
	}()
}

// Retire gives back a finished file: the other names of its inode are
// removed, then path itself is moved into the pool to cool. A file
// already gone counts as retired. If it cannot be kept it is removed.
func (s *Spares) Retire(path string, others ...string) error {
	for _, o := range others {
		if err := unix.Unlink(o); err != nil && err != unix.ENOENT {
			return &os.PathError{Op: "unlink", Path: o, Err: err}
		}
	}
	s.mu.Lock()
	off := s.off
	s.mu.Unlock()
	for try := 0; !off && try < 3; try++ {
		name := coolPrefix + strconv.FormatUint(s.seq.Add(1), 10)
		err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, filepath.Join(s.dir, name), unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			s.mu.Lock()
			s.cooling = append(s.cooling, name)
			s.dirty[filepath.Dir(path)] = true
			for _, o := range others {
				s.dirty[filepath.Dir(o)] = true
			}
			s.mu.Unlock()
			if s.kick != nil {
				select {
				case s.kick <- struct{}{}:
				default:
				}
			}
			return nil
		case err == unix.ENOENT:
			var st unix.Stat_t
			if unix.Lstat(path, &st) != nil {
				return nil // gone already
			}
			// The pool's directory is missing: remove the file below.
		case err == unix.EEXIST:
			continue
		default:
			s.refuses(err) // no RENAME_NOREPLACE: the pool goes off
		}
		break
	}
	if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// Flush turns the files cooling into spares: it makes the removal of
// their old names durable, then keeps each, emptied if it is bigger than
// KeepBytes. A failure to sync removes them instead; the error says why.
func (s *Spares) Flush() error {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	s.mu.Lock()
	cooling, dirty := s.cooling, s.dirty
	s.cooling, s.dirty = nil, map[string]bool{}
	s.mu.Unlock()
	if len(cooling) == 0 {
		return nil
	}
	var err error
	for d := range dirty {
		if e := atomicfile.SyncDir(d); e != nil && err == nil {
			err = e
		}
	}
	if err == nil && s.known+len(cooling) > MaxSpares {
		// A failed count keeps the old bound, which asks for another.
		if n, e := s.trim(); e != nil {
			err = e
		} else {
			s.known = n
		}
	}
	for _, name := range cooling {
		p := filepath.Join(s.dir, name)
		if err == nil && s.known < MaxSpares && s.reclaim(p, KeepBytes) && s.promote(p) {
			s.known++
			continue
		}
		unix.Unlink(p)
	}
	return err
}

// reclaim readies a cooling file to become a spare. It must be a regular
// file with this one name. First it is closed to everyone outside the
// queue's accounts: no permission for others, and the pool directory's
// group (qmail, which qmail-send and qmail-rspawn need to read messages).
// A descriptor opened with O_PATH, which a .qmail program can make of its
// standard input, holds the inode without counting for the lease, and
// /proc/self/fd would open it again later, when it holds another
// message; the permission check of that open now fails. Then no other
// process may have it open (the write lease proves it) or be opening it
// (an open that passed its permission check before the change of mode
// waits for the lease and marks it broken): either would read the next
// message. Last, it is emptied if it holds more than keep bytes.
func (s *Spares) reclaim(p string, keep int64) bool {
	gid, ok := s.group()
	if !ok {
		return false
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return false
	}
	if int(st.Gid) != gid && unix.Fchown(fd, -1, gid) != nil {
		return false
	}
	if st.Mode&0o7007 != 0 && unix.Fchmod(fd, st.Mode&0o770) != nil {
		return false
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		return false
	}
	kept := st.Size <= keep || unix.Ftruncate(fd, 0) == nil
	if s.whileLeased != nil {
		s.whileLeased(p)
	}
	// An open that passed its permission check before the change of
	// mode but reached the lease after it waits for the lease to go,
	// and breaking it leaves its mark: such a file is not kept.
	if l, err := unix.FcntlInt(uintptr(fd), unix.F_GETLEASE, 0); err != nil || l != unix.F_WRLCK {
		kept = false
	}
	unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
	return kept
}

// refuses reports whether err says the filesystem has no
// RENAME_NOREPLACE, and turns the pool off for good if so.
func (s *Spares) refuses(err error) bool {
	if err != unix.EINVAL && err != unix.ENOSYS && err != unix.EOPNOTSUPP {
		return false
	}
	s.mu.Lock()
	s.off = true
	s.mu.Unlock()
	return true
}

// group returns the group of the pool's directory, which its spares get.
func (s *Spares) group() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gid < 0 {
		var st unix.Stat_t
		if unix.Stat(s.dir, &st) != nil {
			return 0, false
		}
		s.gid = int(st.Gid)
	}
	return s.gid, true
}

// promote renames a reclaimed cooling file to a spare name.
func (s *Spares) promote(p string) bool {
	for range 3 {
		name := sparePrefix + strconv.FormatUint(s.seq.Add(1), 10)
		err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, filepath.Join(s.dir, name), unix.RENAME_NOREPLACE)
		if err != unix.EEXIST {
			return err == nil
		}
	}
	return false
}

// Take renames a spare to target, which must not exist, and returns it
// open for writing at its start, with its inode number. It may still hold
// an old file's bytes: write the new content, then Fit the file to it
// before syncing it. ok is false when there is no spare to take: create
// the file as usual then.
func (s *Spares) Take(target string) (f *os.File, ino uint64, ok bool) {
	for range maxTries {
		name, chunk, more := s.next()
		if !more {
			return nil, 0, false
		}
		spare := filepath.Join(s.dir, name)
		err := unix.Renameat2(unix.AT_FDCWD, spare, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE)
		switch {
		case err == unix.ENOENT:
			var st unix.Stat_t
			if unix.Fstatat(unix.AT_FDCWD, spare, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				return nil, 0, false // the spare is there: target's directory is not
			}
			// Another taker was first. Takers read the pool in the same
			// order, so one that got ahead has likely emptied the rest
			// of this chunk as well: go on to the next chunk, rather
			// than spend every try on names already gone and allocate
			// an inode after all.
			s.dropBatch(chunk)
			continue
		case s.refuses(err):
			return nil, 0, false
		case err != nil:
			return nil, 0, false // target exists, or worse: the caller's create says so
		}
		if f, ino, ok := open(target); ok {
			return f, ino, true
		}
		unix.Unlink(target) // not a spare we can use: drop this name only
	}
	return nil, 0, false
}

// Create makes path, which must not exist, from a spare when there is
// one, else as a new file with mode perm (less the umask). It returns
// the file open for writing at its start, with its inode number; as
// after Take, Fit it to what was written before syncing it. An existing
// path gives an error that matches fs.ErrExist.
func (s *Spares) Create(path string, perm uint32) (*os.File, uint64, error) {
	if f, ino, ok := s.Take(path); ok {
		return f, ino, nil
	}
	f, err := sysfile.CreateExcl(path, perm)
	if err != nil {
		return nil, 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		unix.Unlink(path)
		return nil, 0, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return f, st.Ino, nil
}

// maxTries bounds the spares one Take tries, lost to other takers or
// unusable, before it creates a file instead.
const maxTries = 16

// next returns a spare's name to try. It reads the pool a chunk at a
// time, going on where it stopped, so a big pool costs no more per
// message than a small one, and concurrent takers drift apart.
func (s *Spares) next() (name string, chunk uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off {
		return "", 0, false
	}
	if s.dirfd < 0 {
		fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", 0, false
		}
		s.dirfd, s.buf = fd, make([]byte, 4<<10)
	}
	for wrapped := false; len(s.batch) == 0; {
		n, err := unix.Getdents(s.dirfd, s.buf)
		if err != nil {
			return "", 0, false
		}
		if n == 0 {
			if wrapped {
				return "", 0, false
			}
			if _, err := unix.Seek(s.dirfd, 0, 0); err != nil {
				return "", 0, false
			}
			wrapped = true
			continue
		}
		s.chunk++
		_, _, names := unix.ParseDirent(s.buf[:n], -1, nil)
		for _, name := range names {
			if strings.HasPrefix(name, sparePrefix) {
				s.batch = append(s.batch, name)
			}
		}
	}
	name = s.batch[len(s.batch)-1]
	s.batch = s.batch[:len(s.batch)-1]
	return name, s.chunk, true
}

// dropBatch forgets the names of chunk not yet tried, unless another
// Take of this process has read a newer chunk meanwhile.
func (s *Spares) dropBatch(chunk uint64) {
	s.mu.Lock()
	if s.chunk == chunk {
		s.batch = s.batch[:0]
	}
	s.mu.Unlock()
}

// open opens a taken spare for writing if it is a regular file with no
// other name. Its access and modification times become now: the sweeps
// for files of crashed injections go by them (LastUsed), and must see a
// new file, not the old one the inode was.
func open(path string) (*os.File, uint64, bool) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, false
	}
	now := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 ||
		unix.UtimesNanoAt(unix.AT_FDCWD, path, now, unix.AT_SYMLINK_NOFOLLOW) != nil {
		unix.Close(fd)
		return nil, 0, false
	}
	return os.NewFile(uintptr(fd), path), st.Ino, true
}

// Fit cuts a file made by Take or Create to the n bytes written into it,
// dropping what an old file left past them. Call it before the file's
// fsync.
func Fit(f *os.File, n int64) error { return f.Truncate(n) }

// EmptyIdle empties the spares that have been spares since before then,
// as their change time says (the rename that made each a spare set it;
// the access and modification times are the old file's, which
// qmail-send sets in the future for a delivery's next try). It claims
// each by renaming it out of the spares' names, so that no taker can get
// it meanwhile, empties it and makes it a spare again.
func (s *Spares) EmptyIdle(then time.Time) error {
	// Not while Flush runs: its count must not miss a spare this has
	// renamed out of the spares' names for a moment.
	s.flushing.Lock()
	defer s.flushing.Unlock()
	var idle []string
	_, err := s.scan(func(name string) {
		if !strings.HasPrefix(name, sparePrefix) {
			return
		}
		var st syscall.Stat_t
		if syscall.Lstat(filepath.Join(s.dir, name), &st) == nil && st.Size > 0 &&
			time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(then) {
			idle = append(idle, name)
		}
	})
	for _, name := range idle {
		claimed := filepath.Join(s.dir, coolPrefix+strconv.FormatUint(s.seq.Add(1), 10))
		if unix.Renameat2(unix.AT_FDCWD, filepath.Join(s.dir, name), unix.AT_FDCWD, claimed, unix.RENAME_NOREPLACE) != nil {
			continue // taken meanwhile
		}
		if !s.reclaim(claimed, 0) || !s.promote(claimed) {
			unix.Unlink(claimed)
		}
	}
	return err
}

// LastUsed is when a queue file was last read or written, by which the
// sweeps for leftovers of crashed injections (qmail-clean's of pid/,
// qmail-send's of mess/) judge it. qmail goes by the access time alone;
// here the modification time counts too, because a spare taken from a
// pool is emptied and written, not read, on its way to a new message.
func LastUsed(st *syscall.Stat_t) time.Time {
	last := time.Unix(st.Atim.Sec, st.Atim.Nsec)
	if m := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); m.After(last) {
		return m
	}
	return last
}

// Clear removes files left cooling by a crash: their old names may have
// come back with them. Only the process that retires into the pool may
// call it, at its start.
func (s *Spares) Clear() error {
	_, err := s.scan(func(name string) {
		if strings.HasPrefix(name, coolPrefix) {
			unix.Unlink(filepath.Join(s.dir, name))
		}
	})
	return err
}

// trim counts the spares and, when there are more than lowSpares,
// removes spares down to lowSpares. It returns how many are left; on an
// error, what it has counted and removed so far.
//
// Other processes take spares without telling this one, so after a
// count known can only grow with each promotion until the next count.
// A pool that takers and retirements keep near MaxSpares would be
// counted, all of its thousands of names, at nearly every Flush; one
// cut to lowSpares is counted again only once known has grown by the
// difference. The price is a burst of up to MaxSpares-lowSpares inode
// frees, once, when a pool first fills (after a backlog of some
// thousands of messages), instead of a few at every Flush.
func (s *Spares) trim() (int, error) {
	var spares []string
	_, err := s.scan(func(name string) {
		if strings.HasPrefix(name, sparePrefix) {
			spares = append(spares, name)
		}
	})
	left := len(spares)
	if err != nil || left <= lowSpares {
		return left, err
	}
	for _, name := range spares[:left-lowSpares] {
		p := filepath.Join(s.dir, name)
		switch e := unix.Unlink(p); e {
		case nil, unix.ENOENT:
			// ENOENT: a taker got it first, so it is gone as well.
			left--
		default:
			if err == nil {
				err = &os.PathError{Op: "unlink", Path: p, Err: e}
			}
		}
	}
	return left, err
}

// scan reads the whole pool directory, calls f for each name in it and
// returns the number of spares.
func (s *Spares) scan(f func(name string)) (int, error) {
	d, err := os.Open(s.dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if strings.HasPrefix(name, sparePrefix) {
				n++
			}
			f(name)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
