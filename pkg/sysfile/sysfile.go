// Package sysfile opens and reads regular files with the fewest system
// calls. os.Open sets every descriptor non-blocking, tries to add it to
// the network poller (which refuses regular files) and sets it blocking
// again: four fcntl calls and an epoll_ctl around each open. The
// programs run per connection and per message read a dozen control and
// user files each time; on a VM where a system call costs microseconds
// that overhead was about a twentieth of qmail-smtpd's CPU.
package sysfile

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path read-only. The *os.File it returns is not in the
// poller: reads block, as they always do on regular files.
func Open(path string) (*os.File, error) {
	fd, err := open(path)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadFile reads the whole file at path, as os.ReadFile does. A missing
// file gives an error that matches fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	data, _, err := readFile(path)
	return data, err
}

// readFile is ReadFile that also returns the file's fstat.
func readFile(path string) ([]byte, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := open(path)
	if err != nil {
		return nil, st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, st, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	size := 512
	if st.Size > 0 && st.Size < 1<<30 {
		size = int(st.Size) + 1 // one more, to see the end in the same loop
	}
	data := make([]byte, 0, size)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):cap(data)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, st, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return data, st, nil
		}
		data = data[:len(data)+n]
	}
}

// Append opens path, which must exist, for appending.
func Append(path string) (*os.File, error) {
	fd, err := openFlags(path, unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// CreateExcl creates path, which must not exist, write-only with mode
// perm (less the umask), as os.OpenFile with O_CREATE|O_EXCL|O_WRONLY
// does. An existing file gives an error that matches fs.ErrExist.
func CreateExcl(path string, perm uint32) (*os.File, error) {
	fd, err := openFlags(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

func open(path string) (int, error) { return openFlags(path, unix.O_RDONLY, 0) }

// openFlags is open(2) with close-on-exec, retried on EINTR.
func openFlags(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
