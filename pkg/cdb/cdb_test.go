package cdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// memFile is an in-memory io.WriteSeeker for building databases in tests.
type memFile struct {
	b   []byte
	off int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := int(m.off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[m.off:], p)
	m.off += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.off
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	m.off = off
	return off, nil
}

// encode builds a database from recs in memory.
func encode(t testing.TB, recs []Record) []byte {
	t.Helper()
	var m memFile
	w := NewWriter(&m)
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			t.Fatalf("Add(%q): %v", r.Key, err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return m.b
}

func mustNew(t testing.TB, db []byte) *Reader {
	t.Helper()
	r, err := New(bytes.NewReader(db), int64(len(db)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func all(t testing.TB, r *Reader, key []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for d, err := range r.All(key) {
		if err != nil {
			t.Fatalf("All(%q): %v", key, err)
		}
		out = append(out, d)
	}
	return out
}

func records(t testing.TB, r *Reader) []Record {
	t.Helper()
	var out []Record
	for rec, err := range r.Records() {
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		out = append(out, rec)
	}
	return out
}

func recsEqual(a, b []Record) bool {
	return slices.EqualFunc(a, b, func(x, y Record) bool {
		return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Data, y.Data)
	})
}

func rec(k, d string) Record { return Record{[]byte(k), []byte(d)} }

// le32 appends little-endian uint32s, for spelling out expected bytes.
func le32(b []byte, vs ...uint32) []byte {
	for _, v := range vs {
		b = le.AppendUint32(b, v)
	}
	return b
}

func TestHash(t *testing.T) {
	// Values worked out by hand: 5381*33 = 177573 = 0x2b5a5.
	for _, tc := range []struct {
		key  string
		want uint32
	}{
		{"", 5381},
		{"a", 0x2b5a5 ^ 'a'},
		{"ab", (0x2b5c4*33 ^ 'b') & math.MaxUint32},
		// Long enough to wrap uint32 several times.
		{"the quick brown fox", func() uint32 {
			h := uint64(5381)
			for _, c := range []byte("the quick brown fox") {
				h = (h*33 ^ uint64(c)) % (1 << 32)
			}
			return uint32(h)
		}()},
	} {
		if got := hashKey([]byte(tc.key)); got != tc.want {
			t.Errorf("hashKey(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
}

func TestEmpty(t *testing.T) {
	db := encode(t, nil)
	var want []byte
	for range 256 {
		want = le32(want, headerSize, 0)
	}
	if !bytes.Equal(db, want) {
		t.Fatalf("empty database: got %d bytes, want 2048 bytes of (2048, 0) pairs:\n%x", len(db), db)
	}
	r := mustNew(t, db)
	if d, ok, err := r.Get(nil); ok || err != nil || d != nil {
		t.Errorf("Get(empty key) = %q, %v, %v; want nothing", d, ok, err)
	}
	if got := records(t, r); len(got) != 0 {
		t.Errorf("Records = %q, want none", got)
	}
}

func TestSingleRecord(t *testing.T) {
	key, data := "one", "uno!"
	db := encode(t, []Record{rec(key, data)})

	// Spell out the whole file: header, record, one 2-slot table.
	h := hashKey([]byte(key))
	b := int(h & 255)
	tables := uint32(headerSize + 8 + len(key) + len(data))
	var want []byte
	for i := range 256 {
		switch {
		case i < b:
			want = le32(want, tables, 0)
		case i == b:
			want = le32(want, tables, 2)
		default:
			want = le32(want, tables+16, 0)
		}
	}
	want = le32(want, uint32(len(key)), uint32(len(data)))
	want = append(want, key+data...)
	slots := make([]byte, 16)
	le32(slots[8*((h>>8)%2):][:0], h, headerSize)
	want = append(want, slots...)
	if !bytes.Equal(db, want) {
		t.Fatalf("single record database:\n got %x\nwant %x", db, want)
	}

	r := mustNew(t, db)
	d, ok, err := r.Get([]byte(key))
	if !ok || err != nil || string(d) != data {
		t.Errorf("Get(%q) = %q, %v, %v; want %q", key, d, ok, err, data)
	}
	if got := records(t, r); !recsEqual(got, []Record{rec(key, data)}) {
		t.Errorf("Records = %q", got)
	}
}

func TestLookups(t *testing.T) {
	recs := []Record{
		rec("a", "1"), rec("b", "x"), rec("a", "2"), rec("", "empty key"),
		rec("c", ""), rec("a", "3"), rec("", "second empty"),
	}
	r := mustNew(t, encode(t, recs))
	for _, tc := range []struct {
		key  string
		want []string // nil: not found
	}{
		{"a", []string{"1", "2", "3"}},
		{"b", []string{"x"}},
		{"c", []string{""}},
		{"", []string{"empty key", "second empty"}},
		{"d", nil},
		{"aa", nil},
		{"A", nil},
	} {
		t.Run(fmt.Sprintf("%q", tc.key), func(t *testing.T) {
			var got []string
			for _, d := range all(t, r, []byte(tc.key)) {
				got = append(got, string(d))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("All = %q, want %q", got, tc.want)
			}
			d, ok, err := r.Get([]byte(tc.key))
			if err != nil || ok != (tc.want != nil) || (ok && string(d) != tc.want[0]) {
				t.Errorf("Get = %q, %v, %v; want first of %q", d, ok, err, tc.want)
			}
		})
	}
	// Stopping early must stop the probe, not just the output.
	n := 0
	for range r.All([]byte("a")) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break after first value: iterated %d times", n)
	}
	if got := records(t, r); !recsEqual(got, recs) {
		t.Errorf("Records = %q, want %q", got, recs)
	}
}

// TestWrapAround forces three keys into one table, all starting at its
// last slot, so the second and third must wrap to slots 0 and 1.
func TestWrapAround(t *testing.T) {
	var keys []string
	var bucket uint32
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("key%d", i)
		h := hashKey([]byte(k))
		if (h>>8)%6 != 5 || (len(keys) > 0 && h&255 != bucket) {
			continue
		}
		bucket = h & 255
		keys = append(keys, k)
	}
	var recs []Record
	for _, k := range keys {
		recs = append(recs, rec(k, "v-"+k))
	}
	db := encode(t, recs)
	tpos, tlen := le.Uint32(db[bucket*8:]), le.Uint32(db[bucket*8+4:])
	if tlen != 6 {
		t.Fatalf("table %d has %d slots, want 6", bucket, tlen)
	}
	pos := uint32(headerSize)
	for i, s := range []uint32{5, 0, 1} { // start at 5, then wrap
		h := hashKey(recs[i].Key)
		slot := db[tpos+8*s:]
		if gh, gp := le.Uint32(slot), le.Uint32(slot[4:]); gh != h || gp != pos {
			t.Errorf("slot %d = (%#x, %d), want (%#x, %d) for %q", s, gh, gp, h, pos, recs[i].Key)
		}
		pos += 8 + uint32(len(recs[i].Key)+len(recs[i].Data))
	}
	for _, s := range []uint32{2, 3, 4} {
		if p := le.Uint32(db[tpos+8*s+4:]); p != 0 {
			t.Errorf("slot %d should be empty, has position %d", s, p)
		}
	}
	r := mustNew(t, db)
	for _, rc := range recs {
		if d, ok, err := r.Get(rc.Key); !ok || err != nil || !bytes.Equal(d, rc.Data) {
			t.Errorf("Get(%q) = %q, %v, %v", rc.Key, d, ok, err)
		}
	}
}

// TestFullHashCollision stores two different keys with the same 32-bit
// hash: lookups must compare keys and keep probing past the other one.
func TestFullHashCollision(t *testing.T) {
	seen := map[uint32]string{}
	var k1, k2 string
	for i := 0; k2 == ""; i++ {
		k := fmt.Sprintf("%x", i)
		h := hashKey([]byte(k))
		if prev, ok := seen[h]; ok {
			k1, k2 = prev, k
		}
		seen[h] = k
	}
	recs := []Record{rec(k1, "first"), rec(k2, "second"), rec(k1, "third")}
	r := mustNew(t, encode(t, recs))
	for _, tc := range []struct {
		key  string
		want []string
	}{{k1, []string{"first", "third"}}, {k2, []string{"second"}}} {
		var got []string
		for _, d := range all(t, r, []byte(tc.key)) {
			got = append(got, string(d))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("All(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// randRecords makes n records with short keys from a small alphabet, so
// duplicates and empty keys and data occur.
func randRecords(rng *rand.Rand, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		k := make([]byte, rng.IntN(6))
		for j := range k {
			k[j] = "ab\x00\n:-"[rng.IntN(6)]
		}
		if rng.IntN(4) == 0 { // mostly unique keys
			k = fmt.Appendf(k, "%d", rng.Uint64())
		}
		d := make([]byte, rng.IntN(40))
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		recs[i] = Record{k, d}
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := randRecords(rng, 10000)
	path := filepath.Join(t.TempDir(), "rt.cdb")
	w, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][][]byte{}
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			t.Fatal(err)
		}
		want[string(r.Key)] = append(want[string(r.Key)], r.Data)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(want) == len(recs) || len(want) < len(recs)/10 {
		t.Fatalf("test data has %d distinct keys in %d records; want some duplicates", len(want), len(recs))
	}
	for k, vals := range want {
		got := all(t, r, []byte(k))
		if !slices.EqualFunc(got, vals, bytes.Equal) {
			t.Fatalf("All(%q) = %q, want %q", k, got, vals)
		}
	}
	for i := range 1000 {
		k := fmt.Sprintf("missing-%d", i)
		if d, ok, err := r.Get([]byte(k)); ok || err != nil {
			t.Fatalf("Get(%q) = %q, %v, %v; want not found", k, d, ok, err)
		}
	}
	if got := records(t, r); !recsEqual(got, recs) {
		t.Fatal("Records differ from the records added")
	}
}

func TestCorrupt(t *testing.T) {
	recs := []Record{rec("alpha", "1"), rec("beta", "22"), rec("gamma", "333"), rec("alpha", "4")}
	good := encode(t, recs)
	mutate := func(f func(db []byte)) []byte {
		db := bytes.Clone(good)
		f(db)
		return db
	}
	putHeader := func(db []byte, i, pos, slots uint32) {
		le.PutUint32(db[i*8:], pos)
		le.PutUint32(db[i*8+4:], slots)
	}

	t.Run("short", func(t *testing.T) {
		for _, n := range []int{0, 1, 8, headerSize - 1} {
			if _, err := New(bytes.NewReader(good[:n]), int64(n)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("New on %d bytes: err = %v, want ErrCorrupt", n, err)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		// The last table or an empty table's position reaches EOF, so any
		// truncation leaves some table pointing past the end.
		for n := headerSize; n < len(good); n++ {
			if _, err := New(bytes.NewReader(good[:n]), int64(n)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("New on %d of %d bytes: err = %v, want ErrCorrupt", n, len(good), err)
			}
		}
	})
	t.Run("size lies", func(t *testing.T) {
		// The caller claims the full size but the data is cut short: every
		// access must fail cleanly on the short read.
		for n := headerSize; n < len(good); n++ {
			r, err := New(bytes.NewReader(good[:n]), int64(len(good)))
			if err != nil {
				t.Fatal(err)
			}
			for _, rc := range recs {
				r.Get(rc.Key) // may succeed or fail; must not panic
			}
			var err2 error
			for _, e := range r.Records() {
				err2 = e
			}
			if n < int(le.Uint32(good)) && !errors.Is(err2, ErrCorrupt) {
				t.Fatalf("Records on %d bytes: err = %v, want ErrCorrupt", n, err2)
			}
		}
	})
	for _, tc := range []struct {
		name string
		db   []byte
	}{
		{"table past EOF", mutate(func(db []byte) { putHeader(db, 7, math.MaxUint32-4, 0) })},
		{"table end past EOF", mutate(func(db []byte) { putHeader(db, 255, uint32(len(db)-8), 2) })},
		{"huge slot count", mutate(func(db []byte) { putHeader(db, 9, headerSize, math.MaxUint32) })},
		{"table in header", mutate(func(db []byte) { putHeader(db, 0, 16, 0) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(bytes.NewReader(tc.db), int64(len(tc.db))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("New: err = %v, want ErrCorrupt", err)
			}
		})
	}

	// Damage the record or slot that a lookup of "alpha" reaches first.
	h := hashKey([]byte("alpha"))
	tpos, tlen := le.Uint32(good[(h&255)*8:]), le.Uint32(good[(h&255)*8+4:])
	slot := tpos + 8*((h>>8)%tlen)
	if le.Uint32(good[slot+4:]) != headerSize {
		t.Fatal("test assumes alpha's first slot points at the first record")
	}
	for _, tc := range []struct {
		name    string
		db      []byte
		records bool // Records fails too
	}{
		{"huge key length", mutate(func(db []byte) { le.PutUint32(db[headerSize:], math.MaxUint32-7) }), true},
		{"huge data length", mutate(func(db []byte) { le.PutUint32(db[headerSize+4:], math.MaxUint32-7) }), true},
		{"record into tables", mutate(func(db []byte) { le.PutUint32(db[headerSize+4:], 200) }), true},
		{"slot into header", mutate(func(db []byte) { le.PutUint32(db[slot+4:], 100) }), false},
		{"slot past records", mutate(func(db []byte) { le.PutUint32(db[slot+4:], tpos) }), false},
		{"slot past EOF", mutate(func(db []byte) { le.PutUint32(db[slot+4:], math.MaxUint32) }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, tc.db)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := r.Get([]byte("alpha"))
			var rerr error
			for _, e := range r.Records() {
				rerr = e
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Get: err = %v, want ErrCorrupt", err)
			}
			if tc.records && !errors.Is(rerr, ErrCorrupt) {
				t.Errorf("Records: err = %v, want ErrCorrupt", rerr)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("allocated %d bytes reading a %d-byte file", n, len(tc.db))
			}
		})
	}

	t.Run("entry past empty slot", func(t *testing.T) {
		// Lookups stop at the first empty slot, as cdb_findnext does: an
		// entry moved past one is unreachable. A single record has a
		// two-slot table: its own slot and an empty one after it.
		db := encode(t, []Record{rec("k", "v")})
		h := hashKey([]byte("k"))
		tpos := le.Uint32(db[(h&255)*8:])
		own, next := tpos+8*((h>>8)%2), tpos+8*((h>>8+1)%2)
		copy(db[next:next+8], db[own:own+8])
		clear(db[own : own+8])
		r := mustNew(t, db)
		if d, ok, err := r.Get([]byte("k")); ok || err != nil {
			t.Errorf("Get = %q, %v, %v; want not found", d, ok, err)
		}
	})
	t.Run("full table", func(t *testing.T) {
		// A table with no empty slot whose every slot matches the hash but
		// not the key: the probe must stop after one pass.
		db := mutate(func(db []byte) {
			for s := range tlen {
				le.PutUint32(db[tpos+8*s:], h)
				le.PutUint32(db[tpos+8*s+4:], headerSize+8+5+1) // "beta"
			}
		})
		r := mustNew(t, db)
		if d, ok, err := r.Get([]byte("alpha")); ok || err != nil {
			t.Errorf("Get = %q, %v, %v; want not found", d, ok, err)
		}
	})
}

func TestTooLarge(t *testing.T) {
	w := NewWriter(&memFile{})
	// Pretend 4 GiB minus a little has been written already.
	w.size = math.MaxUint32 - 100
	// A record of 8+len bytes plus its 16 bytes of table must fit exactly.
	fits := make([]byte, 100-8-16)
	if err := w.Add(nil, append(fits, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Add one byte over the limit: err = %v, want ErrTooLarge", err)
	}
	if err := w.Add(nil, fits); err != nil {
		t.Fatalf("Add exactly up to the limit: %v", err)
	}
	if err := w.Add(nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Add past a full database: err = %v, want ErrTooLarge", err)
	}
}

func TestWriterMisuse(t *testing.T) {
	w := NewWriter(&memFile{})
	if err := w.Commit(); err == nil {
		t.Error("Commit on a NewWriter Writer succeeded")
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err == nil {
		t.Error("second Finish succeeded")
	}
	if err := w.Add([]byte("k"), nil); err == nil {
		t.Error("Add after Finish succeeded")
	}
	w = NewWriter(&memFile{})
	w.Abort()
	if err := w.Add([]byte("k"), nil); err == nil {
		t.Error("Add after Abort succeeded")
	}

	// A database need not start at offset 0 of the WriteSeeker.
	m := &memFile{b: []byte("prefix"), off: 6}
	w = NewWriter(m)
	w.Add([]byte("k"), []byte("v"))
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if want := encode(t, []Record{rec("k", "v")}); string(m.b) != "prefix"+string(want) {
		t.Errorf("database written at offset 6 differs from one at offset 0")
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func writeDB(t *testing.T, path string, perm fs.FileMode, recs ...Record) {
	t.Helper()
	w, err := Create(path, perm)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.cdb")

	w, err := Create(path, 0o664) // group-writable: a umask of 022 must not apply
	if err != nil {
		t.Fatal(err)
	}
	w.Add([]byte("k"), []byte("old"))
	// The data goes to a temporary file next to the target.
	if names := dirNames(t, dir); len(names) != 1 || !strings.HasPrefix(names[0], "rules.cdb.tmp") {
		t.Fatalf("while writing, directory holds %q; want one rules.cdb.tmp* file", names)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"rules.cdb"}) {
		t.Fatalf("after Commit, directory holds %q", names)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o664 {
		t.Errorf("mode = %v, want -rw-rw-r--", fi.Mode())
	}
	if err := w.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Abort after Commit removed the database: %v", err)
	}
	oldBytes, _ := os.ReadFile(path)

	// A Reader on the old file keeps seeing it after a replacement.
	old, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	writeDB(t, path, 0o600, rec("k", "new"))
	if d, _, err := old.Get([]byte("k")); err != nil || string(d) != "old" {
		t.Errorf("old reader: Get = %q, %v; want old", d, err)
	}
	cur, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if d, _, err := cur.Get([]byte("k")); err != nil || string(d) != "new" {
		t.Errorf("new reader: Get = %q, %v; want new", d, err)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("replaced database mode = %v, want -rw-------", fi.Mode())
	}

	// Abort leaves the existing database alone and removes the temp file.
	newBytes, _ := os.ReadFile(path)
	if bytes.Equal(oldBytes, newBytes) {
		t.Fatal("replacement did not change the file")
	}
	w, err = Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.Add([]byte("k"), []byte("aborted"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"rules.cdb"}) {
		t.Errorf("after Abort, directory holds %q", names)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, newBytes) {
		t.Error("Abort changed the existing database")
	}

	// Two writers for one path use different temporary files.
	w1, err1 := Create(path, 0o644)
	w2, err2 := Create(path, 0o644)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	w1.Add([]byte("k"), []byte("w1"))
	w2.Add([]byte("k"), []byte("w2"))
	if err := w1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d, _, _ := r.Get([]byte("k")); string(d) != "w2" {
		t.Errorf("after two commits, Get = %q, want w2 (last commit wins)", d)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"rules.cdb"}) {
		t.Errorf("after two writers, directory holds %q", names)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.cdb")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing): err = %v, want ErrNotExist", err)
	}
	short := filepath.Join(dir, "short.cdb")
	os.WriteFile(short, []byte("not a cdb"), 0o644)
	if _, err := Open(short); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), short) {
		t.Errorf("Open(short file): err = %v, want ErrCorrupt naming the file", err)
	}
	if _, err := Create(filepath.Join(dir, "no", "such", "dir.cdb"), 0o644); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
}

func BenchmarkGet(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.cdb")
	w, err := Create(path, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "192.168.%d.%d", i/256, i%256)
		if err := w.Add(keys[i], []byte("+RELAYCLIENT=\x00")); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := r.Get(keys[i%n]); !ok || err != nil {
			b.Fatalf("Get(%q): %v, %v", keys[i%n], ok, err)
		}
		i += 7919 // a prime stride, so lookups jump around the file
	}
}
