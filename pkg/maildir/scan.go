package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Message is a message file found by Scan.
type Message struct {
	Name  string    // relative to the Maildir: "new/UNIQUE" or "cur/UNIQUE:2,FLAGS"
	UIDL  string    // the base name up to its first ':' (qmail-pop3d's UIDL)
	Size  int64     // bytes on disk, with LF line ends: not the size POP3 sends
	Mtime time.Time // the file's modification time: when it was delivered
}

// IsNew reports whether m is in new/, not yet seen by a reader.
func (m Message) IsNew() bool { return strings.HasPrefix(m.Name, New+"/") }

// Base is m's file name without its directory.
func (m Message) Base() string { return m.Name[strings.IndexByte(m.Name, '/')+1:] }

// Flags are m's version 2 info flags, sorted; "" when it has none.
func (m Message) Flags() string {
	_, info := SplitName(m.Base())
	flags, _ := ParseInfo(info)
	return flags
}

// TmpMaxAge is how old (by access time) a file in tmp/ must be before
// CleanTmp removes it: 36 hours, as in qmail.
const TmpMaxAge = 36 * time.Hour

// Scan lists the messages in dir's new/ and cur/, oldest first. It skips
// names starting with '.' and anything that is not a regular file (after
// following a symbolic link), and a file that vanishes while it is being
// listed. It reads no message: only directory entries and their stat, with
// memory for the list alone.
//
// The order is by modification time at the file system's full resolution,
// then by UIDL, then by Name (so cur/ before new/ for the same UIDL).
// qmail-pop3d orders by mtime in whole seconds and leaves ties unspecified;
// this order is one of those it allows, and the same at every scan.
func Scan(dir string) ([]Message, error) {
	return scan(dir, 0, false)
}

// ScanBefore is Scan restricted, as qmail-pop3d restricts it, to files
// whose mtime in whole seconds is earlier than now's second. A message
// delivered in the current second waits for the next session, so that it
// cannot land between messages a client has already numbered.
func ScanBefore(dir string, now time.Time) ([]Message, error) {
	return scan(dir, now.Unix(), true)
}

func scan(dir string, cutoff int64, useCutoff bool) ([]Message, error) {
	var msgs []Message
	for _, sub := range []string{New, Cur} {
		err := eachFile(filepath.Join(dir, sub), func(fd int, name string) error {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, 0); err != nil {
				if errors.Is(err, unix.ENOENT) {
					return nil // delivered elsewhere or deleted meanwhile
				}
				return fmt.Errorf("stat %s/%s: %w", sub, name, err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				return nil
			}
			if useCutoff && st.Mtim.Sec >= cutoff {
				return nil
			}
			rel := sub + "/" + name
			unique, _ := SplitName(rel[len(sub)+1:])
			msgs = append(msgs, Message{
				Name:  rel,
				UIDL:  unique,
				Size:  st.Size,
				Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
			})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scan maildir %s: %w", dir, err)
		}
	}
	slices.SortFunc(msgs, compareMessages)
	return msgs, nil
}

func compareMessages(a, b Message) int {
	if c := a.Mtime.Compare(b.Mtime); c != 0 {
		return c
	}
	if c := strings.Compare(a.UIDL, b.UIDL); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// eachFile calls fn with the descriptor of dir and each name in it not
// starting with '.', reading the directory in batches.
func eachFile(dir string, fn func(dirfd int, name string) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if name == "" || name[0] == '.' {
				continue
			}
			if err := fn(fd, name); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// CleanTmp removes the files in dir's tmp/ last accessed more than 36
// hours before now, as qmail-pop3d does when a session starts: they are
// left by deliveries that crashed. It returns how many it removed and the
// first error met; it goes on past errors.
func CleanTmp(dir string, now time.Time) (int, error) {
	removed := 0
	var first error
	keep := func(err error) {
		if first == nil {
			first = fmt.Errorf("clean maildir %s: %w", dir, err)
		}
	}
	err := eachFile(filepath.Join(dir, Tmp), func(fd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, 0); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				keep(fmt.Errorf("stat tmp/%s: %w", name, err))
			}
			return nil
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
		if now.Unix() <= st.Atim.Sec+int64(TmpMaxAge/time.Second) {
			return nil
		}
		if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			keep(fmt.Errorf("remove tmp/%s: %w", name, err))
			return nil
		}
		removed++
		return nil
	})
	if err != nil {
		keep(err)
	}
	return removed, first
}

// MoveToCur moves a message from new/ to cur/, as qmail-pop3d does at QUIT
// for every message not deleted: new/UNIQUE becomes cur/UNIQUE:2, (an
// info already in the name is kept). A message already in cur/ is
// returned unchanged, its flags untouched. The rename is not synced: after
// a crash the message is in new/ or in cur/, both readable.
func MoveToCur(dir string, m Message) (Message, error) {
	if !m.IsNew() {
		return m, nil
	}
	base := m.Base()
	if !strings.Contains(base, ":") {
		base += ":2,"
	}
	return rename(dir, m, Cur+"/"+base)
}

// SetFlags gives a message the info "2,FLAGS" (replacing its flags and
// any other info) and moves it to cur/ if it was in new/.
func SetFlags(dir string, m Message, flags string) (Message, error) {
	base, err := WithFlags(m.Base(), flags)
	if err != nil {
		return m, err
	}
	return rename(dir, m, Cur+"/"+base)
}

func rename(dir string, m Message, to string) (Message, error) {
	if to == m.Name {
		return m, nil
	}
	// rename(2) itself, not os.Rename, which first stats the target to
	// refuse a directory there: a system call per message that POP3's
	// QUIT, moving thousands from new/ to cur/, can do without (rename(2)
	// refuses a directory target too).
	from, target := filepath.Join(dir, m.Name), filepath.Join(dir, to)
	if err := unix.Rename(from, target); err != nil {
		return m, fmt.Errorf("maildir %s: %w", dir, &os.LinkError{Op: "rename", Old: from, New: target, Err: err})
	}
	m.Name = to
	return m, nil
}
