package pop3d

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/pop3"

	"golang.org/x/sys/unix"
)

// message is what a session keeps per message: its name and a size.
// Nothing of the content stays in memory.
type message struct {
	name    string // relative to the Maildir: new/UNIQUE or cur/UNIQUE:2,FLAGS
	uidl    string // UNIQUE, a substring of name
	size    int64  // octets RETR sends (pop3.SentSize); -1 until counted
	disk    int64  // bytes in the file, as the scan found them
	deleted bool
}

// maildrop is the Maildir as numbered at the start of the session.
type maildrop struct {
	dir string
	sub [2]int // new/ and cur/, open: each message is opened, renamed or removed relative to them, without a path walk from the working directory
	// atime: O_NOATIME was refused (messages not ours); not asked again.
	atime bool
	msgs  []message
	buf   []byte // read buffer for counting and sending
}

// openMaildrop does what qmail-pop3d does before its greeting: remove
// old files from tmp/, then list new/ and cur/ as of now (a message
// delivered in the current second waits for the next session). Sizes come
// from W= in the names where a deliverer put one there.
func openMaildrop(dir string, now time.Time) (*maildrop, error) {
	maildir.CleanTmp(dir, now) // housekeeping: a failure must not block the mailbox
	list, err := maildir.ScanBefore(dir, now)
	if err != nil {
		return nil, err
	}
	md := &maildrop{dir: dir, msgs: make([]message, len(list)), buf: make([]byte, 32<<10)}
	for j, sub := range []string{maildir.New, maildir.Cur} {
		fd, err := unix.Open(filepath.Join(dir, sub), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			md.close()
			return nil, fmt.Errorf("open %s/%s: %w", dir, sub, err)
		}
		md.sub[j] = fd
	}
	for i, m := range list {
		md.msgs[i] = message{name: m.Name, uidl: m.UIDL, size: -1, disk: m.Size}
		if _, w := maildir.NameSizes(m.UIDL); w >= 0 {
			md.msgs[i].size = pop3.SentSize(w, false)
		}
	}
	return md, nil
}

// close closes the directories.
func (md *maildrop) close() {
	for _, fd := range md.sub {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}

// at is the directory descriptor and the base name for name, a path
// relative to the Maildir (new/BASE or cur/BASE).
func (md *maildrop) at(name string) (int, string) {
	sub, base, _ := strings.Cut(name, "/")
	if sub == maildir.New {
		return md.sub[0], base
	}
	return md.sub[1], base
}

// open opens message i. When it has left new/ since the scan (another
// session's QUIT moved it), it is looked for where that QUIT puts it.
func (md *maildrop) open(i int) (*rawFile, error) {
	m := &md.msgs[i]
	f, err := md.openRaw(m.name, m.disk)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(m.name, maildir.New+"/") {
		return f, err
	}
	moved := curName(m.name)
	f, err2 := md.openRaw(moved, m.disk)
	if err2 != nil {
		return nil, err
	}
	m.name = moved
	return f, nil
}

// rawFile reads a message with plain system calls. os.Open would also
// try (and fail) to put the regular file in Go's poller: five system
// calls more per message, a quarter of RETR's cost.
type rawFile struct {
	fd   int
	left int64 // bytes to its end as the scan sized it; -1 when unknown
}

// openRaw opens the message name (new/BASE or cur/BASE), whose size the
// scan found to be size (-1: unknown). A delivered Maildir message never
// changes, so once that many bytes are read the end is reached without
// asking the kernel for it: one read(2) fewer per message. Reading does
// not update the file's access time (O_NOATIME, which the mailbox's
// owner may ask for): no inode to write back per message read.
func (md *maildrop) openRaw(name string, size int64) (*rawFile, error) {
	dirfd, base := md.at(name)
	for {
		flags := unix.O_RDONLY | unix.O_CLOEXEC
		if !md.atime {
			flags |= unix.O_NOATIME
		}
		fd, err := unix.Openat(dirfd, base, flags, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && !md.atime:
			md.atime = true // not the files' owner: read them as they are
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(md.dir, name), Err: err}
		}
		return &rawFile{fd: fd, left: size}, nil
	}
}

func (f *rawFile) Read(p []byte) (int, error) {
	if f.left == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	if f.left > 0 && int64(len(p)) > f.left {
		p = p[:f.left] // the message as the listing sized it
	}
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		if f.left > 0 {
			f.left = max(f.left-int64(n), 0)
		}
		return n, nil
	}
}

// Size is the file's size on disk.
func (f *rawFile) Size() (int64, error) {
	var st unix.Stat_t
	err := unix.Fstat(f.fd, &st)
	return st.Size, err
}

func (f *rawFile) Close() error { return unix.Close(f.fd) }

// curName is where maildir.MoveToCur, like qmail-pop3d's QUIT, puts the
// message new/BASE.
func curName(name string) string {
	base := name[strings.IndexByte(name, '/')+1:]
	if !strings.Contains(base, ":") {
		base += ":2,"
	}
	return maildir.Cur + "/" + base
}

// size returns the size of message i, counting it (once per session)
// when its name does not say. A message that cannot be read counts its
// size on disk, as in qmail-pop3d; if it is gone, 0.
func (md *maildrop) size(i int) int64 {
	m := &md.msgs[i]
	if m.size >= 0 {
		return m.size
	}
	m.size = 0
	f, err := md.open(i)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, err := pop3.MessageSize(f, md.buf)
	if err != nil {
		n, _ = f.Size()
	}
	m.size = n
	return n
}

// commit is qmail-pop3d's UPDATE state at QUIT: remove the deleted
// messages and move the others from new/ to cur/ with an empty info
// (flags of messages already in cur/ are kept). It returns how many
// deletions failed, and the bytes (on disk) and messages removed. The directories changed are synced, so that the
// client, told +OK, does not get deleted mail again after a crash.
func (md *maildrop) commit() (failed int, freedBytes, freedMessages int64) {
	var touched [2]bool // new/, cur/
	for i := range md.msgs {
		m := &md.msgs[i]
		isNew := strings.HasPrefix(m.name, maildir.New+"/")
		if m.deleted {
			name := m.name
			dirfd, base := md.at(name)
			var st unix.Stat_t
			err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
			if err == unix.ENOENT && isNew {
				name, isNew = curName(m.name), false
				dirfd, base = md.at(name)
				err = unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
			}
			if err == nil {
				err = unix.Unlinkat(dirfd, base, 0)
			}
			if err != nil && err != unix.ENOENT {
				failed++
				continue
			}
			if err == nil {
				freedBytes += st.Size
				freedMessages++
			}
			touched[btoi(!isNew)] = true
			continue
		}
		if isNew {
			// As qmail: if the rename fails (another session moved it),
			// the message is where that session put it.
			_, base := md.at(m.name)
			_, to := md.at(curName(m.name))
			if unix.Renameat(md.sub[0], base, md.sub[1], to) == nil {
				touched[0], touched[1] = true, true
			}
		}
	}
	for j := range md.sub {
		if touched[j] {
			unix.Fsync(md.sub[j])
		}
	}
	return failed, freedBytes, freedMessages
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
