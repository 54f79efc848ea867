package pop3d

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
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
	deleted bool
}

// maildrop is the Maildir as numbered at the start of the session.
type maildrop struct {
	dir  string
	msgs []message
	buf  []byte // read buffer for counting and sending
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
	for i, m := range list {
		md.msgs[i] = message{name: m.Name, uidl: m.UIDL, size: -1}
		if _, w := maildir.NameSizes(m.UIDL); w >= 0 {
			md.msgs[i].size = pop3.SentSize(w, false)
		}
	}
	return md, nil
}

// open opens message i. When it has left new/ since the scan (another
// session's QUIT moved it), it is looked for where that QUIT puts it.
func (md *maildrop) open(i int) (*rawFile, error) {
	m := &md.msgs[i]
	f, err := openRaw(filepath.Join(md.dir, m.name))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(m.name, maildir.New+"/") {
		return f, err
	}
	moved := curName(m.name)
	f, err2 := openRaw(filepath.Join(md.dir, moved))
	if err2 != nil {
		return nil, err
	}
	m.name = moved
	return f, nil
}

// rawFile reads a message with plain system calls. os.Open would also
// try (and fail) to put the regular file in Go's poller: five system
// calls more per message, a quarter of RETR's cost.
type rawFile struct{ fd int }

func openRaw(path string) (*rawFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &rawFile{fd}, nil
	}
}

func (f *rawFile) Read(p []byte) (int, error) {
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
			path := filepath.Join(md.dir, m.name)
			st, err := os.Lstat(path)
			if errors.Is(err, fs.ErrNotExist) && isNew {
				path = filepath.Join(md.dir, curName(m.name))
				isNew = false
				st, err = os.Lstat(path)
			}
			if err == nil {
				err = os.Remove(path)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				failed++
				continue
			}
			if err == nil {
				freedBytes += st.Size()
				freedMessages++
			}
			touched[btoi(!isNew)] = true
			continue
		}
		if isNew {
			// As qmail: if the rename fails (another session moved it),
			// the message is where that session put it.
			if _, err := maildir.MoveToCur(md.dir, maildir.Message{Name: m.name}); err == nil {
				touched[0], touched[1] = true, true
			}
		}
	}
	for j, sub := range []string{maildir.New, maildir.Cur} {
		if touched[j] {
			atomicfile.SyncDir(filepath.Join(md.dir, sub))
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
