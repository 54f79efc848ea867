package cdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/quail-mta/quail/pkg/atomicfile"
)

// Writer builds a cdb. Records are streamed to the output as they are
// added; only 8 bytes per record (hash and position) stay in memory
// until the hash tables are written, and Finish briefly needs as much
// again to group them by table.
//
// A Writer from [NewWriter] is completed with [Writer.Finish]; one from
// [Create] with [Writer.Commit]. Either kind can be dropped with
// [Writer.Abort]. A Writer is not safe for concurrent use.
type Writer struct {
	ws      io.WriteSeeker
	bw      *bufio.Writer
	size    uint64  // bytes written so far, i.e. the next record's position
	entries []entry // one per record, in insertion order
	count   [256]uint32
	err     error // sticky: set by a failed write, Finish, Commit or Abort

	finished bool // Finish succeeded

	// Set by Create; f is nil again once committed or aborted.
	f    *os.File
	path string
	perm os.FileMode
}

// entry is a record's hash and position: both a hash-table slot and the
// bookkeeping needed to build it.
type entry struct {
	hash, pos uint32
}

var errClosed = errors.New("cdb: writer already finished or aborted")

// NewWriter returns a Writer that writes a database to w, starting at
// w's current offset.
//
// An io.WriteSeeker is required because the header, which comes first,
// holds the hash-table positions, and those are known only after the
// last record. With a seeker the writer reserves the header, streams
// the records and tables, and seeks back to fill the header in; a plain
// io.Writer would force holding every record in memory instead.
//
// Output is buffered; nothing is guaranteed to reach w until Finish.
func NewWriter(w io.WriteSeeker) *Writer {
	wr := &Writer{ws: w, bw: bufio.NewWriterSize(w, 64<<10)}
	var placeholder [headerSize]byte
	wr.write(placeholder[:])
	return wr
}

// Create starts a database that [Writer.Commit] will atomically install
// at path with permissions perm. Until then it is written to a uniquely
// named temporary file in the same directory (same directory, so the
// final rename stays within one file system), which [Writer.Abort]
// removes.
func Create(path string, perm os.FileMode) (*Writer, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("cdb: create %s: %w", path, err)
	}
	w := NewWriter(f)
	w.f, w.path, w.perm = f, path, perm
	return w, nil
}

// write appends p to the output, recording the first error.
func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(p); err != nil {
		w.err = fmt.Errorf("cdb: write: %w", err)
	}
	w.size += uint64(len(p))
}

// Add appends a record. Keys need not be unique. It fails with an error
// wrapping [ErrTooLarge], leaving the Writer usable, if the record would
// push the finished database past 4 GiB.
func (w *Writer) Add(key, data []byte) error {
	if w.err != nil {
		return w.err
	}
	// Count the record's two table slots too, so that once every Add has
	// succeeded Finish cannot overflow.
	end := w.size + 8 + uint64(len(key)) + uint64(len(data))
	if end+16*uint64(len(w.entries)+1) > math.MaxUint32 {
		return fmt.Errorf("%w: adding record %d (key length %d, data length %d) at offset %d",
			ErrTooLarge, len(w.entries), len(key), len(data), w.size)
	}
	h := hashKey(key)
	w.entries = append(w.entries, entry{h, uint32(w.size)})
	w.count[h&255]++
	var hdr [8]byte
	le.PutUint32(hdr[:], uint32(len(key)))
	le.PutUint32(hdr[4:], uint32(len(data)))
	w.write(hdr[:])
	w.write(key)
	w.write(data)
	return w.err
}

// Finish writes the hash tables and the header, completing the database.
// The Writer cannot be used afterwards. For a Writer from [Create], call
// [Writer.Commit] instead, which calls Finish itself.
func (w *Writer) Finish() error {
	if w.err != nil {
		return w.err
	}
	// Group the entries by table, keeping insertion order within each
	// (a counting sort): the probe order depends on it, and matching it
	// is what makes the output identical to cdbmake's.
	var start [257]int
	maxCount := 0
	for i, n := range w.count {
		start[i+1] = start[i] + int(n)
		maxCount = max(maxCount, int(n))
	}
	next := start
	sorted := make([]entry, len(w.entries))
	for _, e := range w.entries {
		b := e.hash & 255
		sorted[next[b]] = e
		next[b]++
	}
	w.entries = nil

	var header [headerSize]byte
	slots := make([]entry, 2*maxCount)
	buf := make([]byte, 8*len(slots))
	for i := range 256 {
		n := uint32(2 * w.count[i])
		le.PutUint32(header[i*8:], uint32(w.size))
		le.PutUint32(header[i*8+4:], n)
		if n == 0 {
			continue
		}
		tab := slots[:n]
		clear(tab)
		for _, e := range sorted[start[i]:start[i+1]] {
			j := (e.hash >> 8) % n
			for tab[j].pos != 0 { // positions are >= 2048, so 0 means free
				if j++; j == n {
					j = 0
				}
			}
			tab[j] = e
		}
		for j, e := range tab {
			le.PutUint32(buf[j*8:], e.hash)
			le.PutUint32(buf[j*8+4:], e.pos)
		}
		w.write(buf[:8*n])
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("cdb: write: %w", err)
		}
	}
	if w.err == nil {
		// Back to the start of the database to fill in the header. The
		// relative seek keeps NewWriter's promise to start at any offset.
		if _, err := w.ws.Seek(-int64(w.size), io.SeekCurrent); err != nil {
			w.err = fmt.Errorf("cdb: seek to header: %w", err)
		} else if _, err := w.ws.Write(header[:]); err != nil {
			w.err = fmt.Errorf("cdb: write header: %w", err)
		}
	}
	if w.err != nil {
		return w.err
	}
	w.err, w.finished = errClosed, true
	return nil
}

// Commit finishes a database started by [Create] and installs it at its
// path durably: it writes the tables and header, sets the permissions,
// fsyncs and closes the temporary file, renames it over the path and
// fsyncs the directory so the rename itself survives a crash.
//
// The permissions are set before the fsync so they are made durable with
// the data. If any step before the rename fails, the temporary file is
// removed and the path is untouched. If only the directory fsync fails,
// the new database is in place but may not survive a crash; the error
// says so.
func (w *Writer) Commit() error {
	if w.path == "" {
		return errors.New("cdb: Commit needs a Writer from Create; use Finish")
	}
	if w.f == nil {
		return errClosed // already committed or aborted
	}
	if !w.finished {
		if err := w.Finish(); err != nil {
			w.Abort()
			return err
		}
	}
	f, tmp := w.f, w.f.Name()
	w.f = nil // from here on, Abort has nothing left to do
	fail := func(step string, err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("cdb: commit %s: %s: %w", w.path, step, err)
	}
	if err := f.Chmod(w.perm); err != nil {
		return fail("chmod", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		return fail("close", err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cdb: commit %s: rename: %w", w.path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(w.path)); err != nil {
		return fmt.Errorf("cdb: commit %s: installed but not durable: fsync directory: %w", w.path, err)
	}
	return nil
}

// Abort abandons the database. For a Writer from [Create] it closes and
// removes the temporary file, leaving the path untouched; for one from
// [NewWriter] it only makes the Writer unusable. Abort after a
// successful Commit does nothing, so it can be deferred unconditionally.
func (w *Writer) Abort() error {
	if w.err == nil {
		w.err = errClosed
	}
	w.entries = nil
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("cdb: abort: %w", err)
	}
	return nil
}
