package maildir

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/sysfile"
)

// Delivery is a message written into a Maildir.
type Delivery struct {
	Name string // relative to the Maildir: "new/" followed by the unique name
	Size int64  // bytes written, prefix included: the file's size
}

// Writer delivers messages into Maildirs. The zero value is ready to use;
// one Writer may deliver from many goroutines at once.
type Writer struct {
	// Hostname is the last part of every new name. Empty means the
	// machine's host name. Characters that would break the name or a
	// POP3 UIDL line are escaped (see docs/maildir.md).
	Hostname string
	// Perm is the permission of new files, less the umask. Zero means
	// 0600: only the mailbox owner reads its mail. (qmail-local creates
	// 0644, less the umask.)
	Perm os.FileMode

	// Test seams; nil means the real thing.
	now      func() time.Time
	syncFile func(*os.File) error
	link     func(oldname, newname string) error
	syncDir  func(dir string) error
}

// Deliver writes prefix followed by msg into dir's new/ with a default
// Writer. See Writer.Deliver.
func Deliver(dir string, msg io.Reader, prefix []byte) (Delivery, error) {
	var w Writer
	return w.Deliver(dir, msg, prefix)
}

// Deliver writes prefix (for instance qmail-local's Return-Path and
// Delivered-To lines) followed by msg into the Maildir dir, in qmail-local's
// order, with a directory sync added:
//
//  1. create tmp/NAME with O_EXCL under a unique NAME;
//  2. write prefix, then copy msg through a fixed buffer (never holding it
//     whole), counting its size and its size with CRLF line ends;
//  3. fsync and close the file;
//  4. link it to new/NAME,S=SIZE,W=CRLFSIZE (Dovecot's convention, so a
//     POP3 server lists sizes without reading messages; see NameSizes; a
//     fresh NAME if that exists; rename where the file system has no hard
//     links), then remove tmp/NAME;
//  5. fsync new/, so the new name survives a power loss; deliveries into
//     one Maildir at once in this process share their fsyncs
//     (atomicfile.SyncDirShared).
//
// The message is in new/ and durable once Deliver returns nil, and never
// visible in new/ before it is complete. On failure the error is an *Error
// and tmp/NAME is removed.
func (w *Writer) Deliver(dir string, msg io.Reader, prefix []byte) (Delivery, error) {
	newDir := filepath.Join(dir, New)
	st, err := os.Stat(newDir)
	if err == nil && !st.IsDir() {
		err = &fs.PathError{Op: "stat", Path: newDir, Err: syscall.ENOTDIR}
	}
	if err != nil {
		return Delivery{}, fail(dir, "stat", err)
	}

	host := escapeHost(w.Hostname)
	if w.Hostname == "" {
		host = defaultHost()
	}
	perm := w.Perm
	if perm == 0 {
		perm = 0o600
	}
	var f *os.File
	var name, tmpPath string
	for try := 0; ; try++ {
		name = uniqueName(w.clock(), host)
		tmpPath = filepath.Join(dir, Tmp, name)
		f, err = sysfile.CreateExcl(tmpPath, uint32(perm.Perm()))
		if err == nil {
			break
		}
		// Another writer holds the name (same pid in another pid
		// namespace, say): the counter gives a new one at once.
		if !errors.Is(err, fs.ErrExist) || try == 2 {
			return Delivery{}, fail(dir, "create", err)
		}
	}
	open, linked := true, false
	defer func() {
		if open {
			f.Close()
		}
		if !linked {
			os.Remove(tmpPath)
		}
	}()

	out := fileWriter{f: f}
	if _, err := out.Write(prefix); err != nil {
		return Delivery{}, &Error{Kind: KindWrite, Dir: dir, Op: "write", Err: err}
	}
	bp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(&out, msg, *bp)
	copyBufs.Put(bp)
	if err != nil {
		if out.err != nil {
			return Delivery{}, &Error{Kind: KindWrite, Dir: dir, Op: "write", Err: err}
		}
		return Delivery{}, &Error{Kind: KindRead, Dir: dir, Op: "read", Err: err}
	}
	if err := w.fsync(f); err != nil {
		return Delivery{}, &Error{Kind: KindWrite, Dir: dir, Op: "fsync", Err: err}
	}
	open = false
	if err := f.Close(); err != nil {
		return Delivery{}, &Error{Kind: KindWrite, Dir: dir, Op: "close", Err: err}
	}

	suffix := sizeSuffix(&out.count)
	newName := name + suffix
	for try := 0; ; try++ {
		err = w.linkNew(tmpPath, filepath.Join(newDir, newName))
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrExist) && try < 2 {
			// link never replaces: a file of that name arrived in new/
			// by another route. Take another name.
			newName = uniqueName(w.clock(), host) + suffix
			continue
		}
		return Delivery{}, fail(dir, "link", err)
	}
	linked = true
	os.Remove(tmpPath) // gone already after the rename fallback
	syncDir := atomicfile.SyncDirShared
	if w.syncDir != nil {
		syncDir = w.syncDir
	}
	if err := syncDir(newDir); err != nil {
		return Delivery{Name: New + "/" + newName, Size: out.n}, &Error{Kind: KindWrite, Dir: dir, Op: "sync", Err: err}
	}
	return Delivery{Name: New + "/" + newName, Size: out.n}, nil
}

func (w *Writer) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

func (w *Writer) fsync(f *os.File) error {
	if w.syncFile != nil {
		return w.syncFile(f)
	}
	return f.Sync()
}

// linkNew links tmp to dst. On a file system without hard links it renames
// instead, after checking dst is free: the names are unique, so nothing
// else can take dst between the check and the rename.
func (w *Writer) linkNew(tmp, dst string) error {
	link := os.Link
	if w.link != nil {
		link = w.link
	}
	err := link(tmp, dst)
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.ENOSYS) {
		return err
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return &fs.PathError{Op: "link", Path: dst, Err: syscall.EEXIST}
	}
	return os.Rename(tmp, dst)
}

// fail classifies a failure to find or create a name in the Maildir.
func fail(dir, op string, err error) *Error {
	kind := KindWrite
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		kind = KindMissing
		if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
			err = &notMaildir{err}
		}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		kind = KindUnwritable
	}
	return &Error{Kind: kind, Dir: dir, Op: op, Err: err}
}

// notMaildir says an existing directory lacks tmp/ or new/.
type notMaildir struct{ err error }

func (e *notMaildir) Error() string {
	return ErrNotMaildir.Error() + " (needs cur/, new/ and tmp/): " + e.err.Error()
}
func (e *notMaildir) Unwrap() []error { return []error{ErrNotMaildir, e.err} }

// fileWriter counts what reaches the file and remembers a write error, so
// that a failed copy can be told apart: the message's reader or the disk.
type fileWriter struct {
	f     *os.File
	n     int64
	count Counter
	err   error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	w.count.Write(p[:n])
	if err != nil {
		w.err = err
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// counter numbers the names this process makes. It is process-wide on
// purpose, like the pid in the name: two Writers in one process must not
// make the same name in the same microsecond.
var counter atomic.Uint64

// uniqueName returns SECONDS.MMICROSP<pid>Q<counter>.HOST, with the
// microseconds zero-padded to six digits.
func uniqueName(now time.Time, host string) string {
	b := make([]byte, 0, 48+len(host))
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	usec := now.Nanosecond() / 1000
	for d := 100000; d > 1; d /= 10 {
		if usec < d {
			b = append(b, '0')
		}
	}
	b = strconv.AppendInt(b, int64(usec), 10)
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, counter.Add(1), 10)
	b = append(b, '.')
	b = append(b, host...)
	return string(b)
}

var defaultHost = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return escapeHost(h)
})

// escapeHost makes a host name safe in a Maildir name: the Maildir
// specification writes '/' as \057 and ':' as \072; quail also writes '\',
// ',' (which starts the ",S=" size fields) and every byte outside
// printable ASCII in the same octal form, so that the name (and the UIDL
// made from it) is one printable word. An empty host becomes "localhost".
func escapeHost(h string) string {
	if h == "" {
		return "localhost"
	}
	clean := true
	for i := 0; i < len(h); i++ {
		if needsEscape(h[i]) {
			clean = false
			break
		}
	}
	if clean {
		return h
	}
	b := make([]byte, 0, len(h)+12)
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !needsEscape(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '\\', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
	}
	return string(b)
}

func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '\\' || c == ','
}
