package queue

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/sysfile"
)

// Channel is where a recipient is delivered.
type Channel int

// The channels. A recipient of a message still in todo/ has none yet:
// qmail-send sorts recipients into local/ and remote/ when it
// preprocesses the message.
const (
	Unsorted Channel = iota
	Local
	Remote
)

func (c Channel) String() string {
	switch c {
	case Local:
		return "local"
	case Remote:
		return "remote"
	}
	return "unsorted"
}

// Recipient is one recipient of a queued message.
type Recipient struct {
	Addr    string
	Channel Channel
	Done    bool // delivered, or given up on ("D" in local/ or remote/)
}

// Message is what the queue holds about one message, as the inspection
// tools show it.
type Message struct {
	ID uint64
	// Birth is the mtime of info/S/N, which qmail-send's schedule counts
	// from. For a message still only in todo/ it is the mtime of todo/N,
	// the time it was queued.
	Birth time.Time
	// Sender is the "F" record of info/S/N, or of todo/N for a message
	// still only in todo/.
	Sender string
	Size   int64 // of mess/S/N
	// Todo says todo/N exists: the message is not yet preprocessed.
	// Without Info, Recipients are the todo/N ones, all Unsorted.
	Todo bool
	// Info says info/S/N was read: the message is preprocessed, and
	// Recipients come from local/S/N and remote/S/N, local first. When
	// Todo is set too, qmail-send stopped while preprocessing and will
	// do it again, so the lists may be incomplete.
	Info       bool
	Bouncing   bool // bounce/N exists: failures wait to be bounced
	Recipients []Recipient
	// Err, when not nil, is why the message could not be read: only ID
	// is meaningful.
	Err error
	// RecipientsErr, when not nil, is why Recipients may be incomplete
	// (a local/ or remote/ file that cannot be read, or is malformed).
	RecipientsErr error
}

// Scan calls visit for each message in the queue: first those with an
// info/S/N file, walking info/0 to info/22 in turn (as qmail-qread does)
// and in id order within each; then, in id order, those only in todo/.
//
// The queue may change under Scan (a running qmail-send), and Scan copes:
// a message that finishes meanwhile (its files vanish between the
// directory read and the open) is skipped; one that is preprocessed
// meanwhile is shown from its info/ file. Any other trouble with one
// message goes into its Err or RecipientsErr, and the scan goes on. Scan
// fails only when a directory cannot be listed, or when visit returns
// an error, which Scan then returns.
func (q Queue) Scan(visit func(*Message) error) error {
	todo, err := q.listTodo()
	if err != nil {
		return err
	}
	for s := range Split {
		dir := filepath.Join(q.Dir, "info", strconv.Itoa(s))
		ids, err := listIDs(dir)
		if err != nil {
			return fmt.Errorf("read queue: %w", err)
		}
		for _, id := range ids {
			_, inTodo := todo[id]
			delete(todo, id)
			m, ok := q.readInfo(id, inTodo)
			if !ok {
				continue
			}
			if err := visit(m); err != nil {
				return err
			}
		}
	}
	rest := make([]uint64, 0, len(todo))
	for id := range todo {
		rest = append(rest, id)
	}
	slices.Sort(rest)
	for _, id := range rest {
		m, ok := q.readTodo(id)
		if !ok {
			// Preprocessed after info/ was listed.
			m, ok = q.readInfo(id, false)
		}
		if !ok {
			continue
		}
		if err := visit(m); err != nil {
			return err
		}
	}
	return nil
}

// List returns every message Scan visits.
func (q Queue) List() ([]*Message, error) {
	var out []*Message
	err := q.Scan(func(m *Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

func (q Queue) listTodo() (map[uint64]struct{}, error) {
	ids, err := listIDs(filepath.Join(q.Dir, "todo"))
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	m := make(map[uint64]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m, nil
}

// listIDs returns the ids named in dir, sorted; other names are ignored,
// as qmail-send ignores them.
func listIDs(dir string) ([]uint64, error) {
	var ids []uint64
	if _, err := ScanIDs(dir, nil, func(id uint64) { ids = append(ids, id) }); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// ScanIDs calls f with the id of each message named in the queue
// directory dir (todo/, intd/, one of mess/'s), in the directory's
// order; other names are passed over, as qmail-send passes them over.
// buf is where the names are read, nil for a new one; it is returned
// for the next call, so that a caller that scans often (qmail-send
// reads todo/ for every trigger) allocates nothing per name. Unlike
// os.ReadDir, this neither sorts the names nor makes an entry of each,
// which was half the cost of a scan.
func ScanIDs(dir string, buf []byte, f func(id uint64)) ([]byte, error) {
	d, err := sysfile.Open(dir)
	if err != nil {
		return buf, err
	}
	defer d.Close()
	fd := int(d.Fd()) // not in the poller: Fd changes nothing
	if buf == nil {
		buf = make([]byte, 16<<10)
	}
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR { // on FUSE or NFS even a directory read can be
			continue
		}
		if err != nil {
			return buf, &fs.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			if id, ok := ParseID(name); ok {
				f(id)
			}
		}
	}
}

// readInfo reads a preprocessed message. ok is false when it is gone.
func (q Queue) readInfo(id uint64, inTodo bool) (m *Message, ok bool) {
	m = &Message{ID: id, Todo: inTodo}
	data, st, err := readFile(q.Info(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false // finished since info/ was listed
	}
	if err != nil {
		m.Err = err
		return m, true
	}
	m.Info = true
	m.Birth = st.ModTime()
	recs, err := ParseRecords(data)
	if len(recs) == 0 || recs[0].Type != 'F' {
		if err == nil {
			err = errors.New("no F record")
		}
		m.Err = fmt.Errorf("%s: %w", q.Info(id), err)
		return m, true
	}
	m.Sender = recs[0].Data
	if !q.stat(m) {
		return nil, false
	}
	for _, ch := range []Channel{Local, Remote} {
		path := q.Local(id)
		if ch == Remote {
			path = q.Remote(id)
		}
		data, _, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no recipients left on this channel
		}
		if err == nil {
			var recs []Record
			recs, err = ParseRecords(data)
			for _, r := range recs {
				if r.Type == 'T' || r.Type == 'D' {
					m.Recipients = append(m.Recipients, Recipient{Addr: r.Data, Channel: ch, Done: r.Type == 'D'})
				}
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", path, err)
			}
		}
		if err != nil && m.RecipientsErr == nil {
			m.RecipientsErr = err
		}
	}
	return m, true
}

// readTodo reads a message not yet preprocessed. ok is false when todo/N
// is gone.
func (q Queue) readTodo(id uint64) (m *Message, ok bool) {
	m = &Message{ID: id, Todo: true}
	data, st, err := readFile(q.Todo(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		m.Err = err
		return m, true
	}
	m.Birth = st.ModTime()
	recs, err := ParseRecords(data)
	if err != nil {
		m.Err = fmt.Errorf("%s: %w", q.Todo(id), err)
		return m, true
	}
	for _, r := range recs {
		switch r.Type {
		case 'F':
			m.Sender = r.Data
		case 'T':
			m.Recipients = append(m.Recipients, Recipient{Addr: r.Data})
		}
	}
	if !q.stat(m) {
		return nil, false
	}
	return m, true
}

// stat fills in the size of m's message file and whether it is bouncing.
// It returns false when the message has finished meanwhile: qmail-send
// removes info/S/N (or todo/N) before mess/S/N.
func (q Queue) stat(m *Message) bool {
	st, err := os.Stat(q.Mess(m.ID))
	switch {
	case err == nil:
		m.Size = st.Size()
	case errors.Is(err, fs.ErrNotExist) && !exists(q.Info(m.ID)) && !exists(q.Todo(m.ID)):
		return false
	default:
		m.Err = err
		return true
	}
	_, err = os.Lstat(q.Bounce(m.ID))
	m.Bouncing = err == nil
	return true
}

// readFile reads a small queue file with the status of the open file, so
// the mtime and the content belong together.
func readFile(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, err
	}
	return data, st, nil
}

// Counts are the numbers qmail-qstat prints.
type Counts struct {
	Messages int // files under mess/: every message, preprocessed or not
	Todo     int // files under todo/: messages not yet preprocessed
}

// Count counts the queue as qmail-qstat does: the files under mess/ and
// under todo/ (subdirectories included, as find(1) counts them). A file
// that vanishes while counted is not counted.
func (q Queue) Count() (Counts, error) {
	var c Counts
	var err error
	if c.Messages, err = countFiles(filepath.Join(q.Dir, "mess")); err != nil {
		return c, err
	}
	c.Todo, err = countFiles(filepath.Join(q.Dir, "todo"))
	return c, err
}

func countFiles(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil // vanished while we looked
			}
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("count queue: %w", err)
	}
	return n, nil
}
