package cdb

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/quail-mta/quail/pkg/sysfile"
)

// Reader looks up keys in a cdb. It is safe for concurrent use as long
// as the underlying io.ReaderAt is (an *os.File is).
//
// Every offset and length read from the file is checked against the
// file size before it is used, so a corrupt or hostile file yields an
// error wrapping [ErrCorrupt], never a panic or an allocation larger
// than the file.
type Reader struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer // the file opened by Open; nil for New
	// hdr is the header as read, decoded by table: one allocation per
	// Reader, for programs that open a cdb for every lookup as qmail's do.
	hdr [headerSize]byte
}

type table struct {
	pos, slots uint32
}

// Record is one key/data pair, as stored in the file.
type Record struct {
	Key, Data []byte
}

// Open opens the cdb file at path. The caller must Close the Reader.
func Open(path string) (*Reader, error) {
	f, err := sysfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cdb: %w", err)
	}
	r, err := New(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	r.closer = f
	return r, nil
}

// New returns a Reader for the size-byte database in r. It reads and
// validates the header; r must stay valid while the Reader is used.
func New(r io.ReaderAt, size int64) (*Reader, error) {
	if size < headerSize {
		return nil, fmt.Errorf("%w: size %d is smaller than the %d-byte header", ErrCorrupt, size, headerSize)
	}
	rd := &Reader{r: r, size: size}
	if err := readFull(r, rd.hdr[:], 0); err != nil {
		return nil, err
	}
	for i := range 256 {
		t := rd.table(i)
		// Checked here once so lookups can trust the table bounds.
		if t.pos < headerSize || int64(t.pos)+8*int64(t.slots) > size {
			return nil, fmt.Errorf("%w: hash table %d (position %d, %d slots) outside file of size %d",
				ErrCorrupt, i, t.pos, t.slots, size)
		}
	}
	return rd, nil
}

// table returns hash table i's header entry.
func (r *Reader) table(i int) table {
	return table{le.Uint32(r.hdr[i*8:]), le.Uint32(r.hdr[i*8+4:])}
}

// Close closes the file opened by [Open]. For a Reader made by [New] it
// does nothing; the caller owns the io.ReaderAt.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

// Get returns the data of the first record with the given key.
// ok is false if there is none.
func (r *Reader) Get(key []byte) (data []byte, ok bool, err error) {
	err = r.find(key, func(d []byte) bool {
		data, ok = d, true
		return false
	})
	if err != nil {
		return nil, false, err
	}
	return data, ok, nil
}

// All returns the data of every record with the given key, in insertion
// order (the order of cdb_findnext). On error it yields (nil, err) once
// and stops.
func (r *Reader) All(key []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if err := r.find(key, func(d []byte) bool { return yield(d, nil) }); err != nil {
			yield(nil, err)
		}
	}
}

// find probes the key's hash table and calls yield with the data of each
// matching record until yield returns false or the probe sequence ends.
func (r *Reader) find(key []byte, yield func([]byte) bool) error {
	h := hashKey(key)
	t := r.table(int(h & 255))
	if t.slots == 0 {
		return nil
	}
	// One scratch buffer per lookup: 8 bytes for the slot, then the
	// record header and stored key. It is not kept in the Reader, which
	// holds no mutable state so that it is safe for concurrent use.
	buf := make([]byte, 16+len(key))
	slot := (h >> 8) % t.slots
	for range t.slots {
		if err := readFull(r.r, buf[:8], int64(t.pos)+8*int64(slot)); err != nil {
			return err
		}
		pos := le.Uint32(buf[4:])
		if pos == 0 {
			return nil // an empty slot ends the probe sequence
		}
		if le.Uint32(buf) == h {
			data, match, err := r.record(pos, key, buf[8:])
			if err != nil {
				return err
			}
			if match && !yield(data) {
				return nil
			}
		}
		if slot++; slot == t.slots {
			slot = 0
		}
	}
	return nil
}

// record reads the record at pos and, if its key equals key, returns its
// data. A hash match with a different key is normal, not an error.
//
// scratch has room for the record header and a key of len(key) bytes;
// both are fetched with one read, since a matching record must hold
// exactly that many key bytes. The data is read only once the key has
// matched, so a mismatch never costs a data-sized read or allocation.
func (r *Reader) record(pos uint32, key, scratch []byte) (data []byte, match bool, err error) {
	if pos < headerSize {
		return nil, false, fmt.Errorf("%w: record position %d inside the header", ErrCorrupt, pos)
	}
	if err := r.checkRecord(int64(pos), 0, 0); err != nil {
		return nil, false, err
	}
	// Clip the read to the records region: a record near its end may be
	// shorter than the key we look for.
	buf := scratch[:min(int64(len(scratch)), int64(r.table(0).pos)-int64(pos))]
	if err := readFull(r.r, buf, int64(pos)); err != nil {
		return nil, false, err
	}
	klen, dlen := le.Uint32(buf), le.Uint32(buf[4:])
	if err := r.checkRecord(int64(pos), klen, dlen); err != nil {
		return nil, false, err
	}
	// Past checkRecord, a record with len(key) key bytes fits entirely,
	// so buf was not clipped.
	if int64(klen) != int64(len(key)) || !bytes.Equal(buf[8:], key) {
		return nil, false, nil
	}
	data = make([]byte, dlen)
	if err := readFull(r.r, data, int64(pos)+8+int64(klen)); err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// checkRecord returns an error unless a record at pos with the given
// lengths fits in the records region, which ends where table 0 begins.
// This check is what bounds every allocation by the file size.
func (r *Reader) checkRecord(pos int64, klen, dlen uint32) error {
	end := int64(r.table(0).pos)
	n := int64(klen) + int64(dlen)
	if pos+8+n > end || n > math.MaxInt { // MaxInt matters only on 32-bit systems
		return fmt.Errorf("%w: record at %d (key length %d, data length %d) runs past the records region ending at %d",
			ErrCorrupt, pos, klen, dlen, end)
	}
	return nil
}

// Records returns every record in file order, which is insertion order.
// Adding them to a new [Writer] in this order reproduces the file
// exactly. On error it yields (Record{}, err) once and stops.
func (r *Reader) Records() iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		end := int64(r.table(0).pos)
		// Sequential scan: a buffered reader turns it into large reads.
		br := bufio.NewReaderSize(io.NewSectionReader(r.r, headerSize, end-headerSize), 64<<10)
		var hdr [8]byte
		for pos := int64(headerSize); pos < end; {
			if err := r.checkRecord(pos, 0, 0); err != nil {
				yield(Record{}, err)
				return
			}
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				yield(Record{}, readErr(err, pos))
				return
			}
			klen, dlen := le.Uint32(hdr[:]), le.Uint32(hdr[4:])
			if err := r.checkRecord(pos, klen, dlen); err != nil {
				yield(Record{}, err)
				return
			}
			buf := make([]byte, int(klen)+int(dlen))
			if _, err := io.ReadFull(br, buf); err != nil {
				yield(Record{}, readErr(err, pos+8))
				return
			}
			if !yield(Record{Key: buf[:klen:klen], Data: buf[klen:]}, nil) {
				return
			}
			pos += 8 + int64(klen) + int64(dlen)
		}
	}
}

// readFull reads exactly len(p) bytes at off. ReaderAt may report io.EOF
// together with a full read; only a short read is an error.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return readErr(err, off)
}

func readErr(err error, off int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// Every read is bounds-checked against the size given to New, so
		// running out of bytes means the size was wrong or the file shrank.
		return fmt.Errorf("%w: unexpected end of file reading at offset %d", ErrCorrupt, off)
	}
	return fmt.Errorf("cdb: read at offset %d: %w", off, err)
}
