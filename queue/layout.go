package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"syscall"
)

// Owner names who owns a path in a root install.
type Owner int

// The owners of queue paths (reference §2.1).
const (
	OwnerQueue  Owner = iota // qmailq: qmail-queue, qmail-clean
	OwnerSend                // qmails: qmail-send
	OwnerRemote              // qmailr: qmail-remote
)

type node struct {
	path  string
	perm  fs.FileMode
	owner Owner
	split bool
	kind  byte // 'd' directory, 'f' file, 'p' FIFO, 't' tcpto table
}

// layout is qmail 1.03's queue, parents first.
var layout = []node{
	{"", 0o750, OwnerQueue, false, 'd'},
	{"pid", 0o700, OwnerQueue, false, 'd'},
	{"mess", 0o750, OwnerQueue, true, 'd'},
	{"intd", 0o700, OwnerQueue, false, 'd'},
	{"todo", 0o750, OwnerQueue, false, 'd'},
	{"info", 0o700, OwnerSend, true, 'd'},
	{"local", 0o700, OwnerSend, true, 'd'},
	{"remote", 0o700, OwnerSend, true, 'd'},
	{"bounce", 0o700, OwnerSend, false, 'd'},
	{"lock", 0o750, OwnerQueue, false, 'd'},
	{"lock/sendmutex", 0o600, OwnerSend, false, 'f'},
	{"lock/tcpto", 0o644, OwnerRemote, false, 't'},
	{"lock/trigger", 0o622, OwnerSend, false, 'p'},
}

// TCPToSize is the size of lock/tcpto: 64 records of 16 bytes.
const TCPToSize = 1024

// IDs gives the uid and gid an owner has; nil means no chown (a queue run
// by an ordinary user).
type IDs func(Owner) (uid, gid int, err error)

// MakeLayout creates what is missing of the queue, with qmail's modes,
// and in a root install qmail's owners. Existing paths keep their content.
func (q Queue) MakeLayout(ids IDs) error {
	for _, n := range layout {
		paths := []string{filepath.Join(q.Dir, n.path)}
		if n.split {
			for i := range Split {
				paths = append(paths, filepath.Join(q.Dir, n.path, strconv.Itoa(i)))
			}
		}
		for _, p := range paths {
			if err := create(p, n); err != nil {
				return fmt.Errorf("queue layout: %w", err)
			}
			if ids == nil {
				continue
			}
			uid, gid, err := ids(n.owner)
			if err != nil {
				return err
			}
			if err := os.Lchown(p, uid, gid); err != nil {
				return fmt.Errorf("queue layout: %w", err)
			}
			if err := os.Chmod(p, n.perm); err != nil { // chown may clear bits
				return fmt.Errorf("queue layout: %w", err)
			}
		}
	}
	return nil
}

func create(p string, n node) error {
	var err error
	switch n.kind {
	case 'd':
		err = os.Mkdir(p, n.perm)
	case 'f', 't':
		var f *os.File
		f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, n.perm)
		if err == nil && n.kind == 't' {
			_, err = f.Write(make([]byte, TCPToSize))
		}
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	case 'p':
		err = syscall.Mkfifo(p, uint32(n.perm))
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Chmod(p, n.perm) // beyond the umask
}
