package cdb

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader. It must never panic or
// hang, and a file that re-encodes to itself (so is well formed) must
// answer every lookup for its own records. Seeds, including a database
// made by tcprules, are in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Add(encode(f, nil))
	f.Add(encode(f, []Record{rec("a", "1"), rec("b", "2"), rec("a", "3")}))
	f.Fuzz(func(t *testing.T, db []byte) {
		r, err := New(bytes.NewReader(db), int64(len(db)))
		if err != nil {
			return
		}
		for _, k := range []string{"", "a", "127.", "10.0.0.1"} {
			r.Get([]byte(k))
			for range r.All([]byte(k)) {
			}
		}
		var recs []Record
		for rc, err := range r.Records() {
			if err != nil {
				return
			}
			recs = append(recs, rc)
		}
		if !bytes.Equal(encode(t, recs), db) {
			return // readable but not canonical; nothing more to promise
		}
		for _, rc := range recs {
			found := false
			for d, err := range r.All(rc.Key) {
				if err != nil {
					t.Fatalf("All(%q) on a well-formed database: %v", rc.Key, err)
				}
				found = found || bytes.Equal(d, rc.Data)
			}
			if !found {
				t.Fatalf("All(%q) on a well-formed database misses data %q", rc.Key, rc.Data)
			}
		}
	})
}

// decodeRecords turns fuzz bytes into records: each record takes a byte
// for the key length (mod 8, so keys repeat), a byte for the data length
// (mod 64), then the key and data bytes, cut short at the end of input.
func decodeRecords(b []byte) []Record {
	var recs []Record
	take := func(n int) []byte {
		n = min(n, len(b))
		p := b[:n:n]
		b = b[n:]
		return p
	}
	for len(b) >= 2 {
		kl, dl := int(b[0]%8), int(b[1]%64)
		b = b[2:]
		recs = append(recs, Record{Key: take(kl), Data: take(dl)})
	}
	return recs
}

// FuzzRoundTrip writes records decoded from the fuzz input and checks
// that reading them back gives the same records and lookups.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("\x01\x01ab\x01\x02ac d\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		recs := decodeRecords(in)
		db := encode(t, recs)
		r := mustNew(t, db)
		if got := records(t, r); !recsEqual(got, recs) {
			t.Fatalf("Records = %q, want %q", got, recs)
		}
		want := map[string][][]byte{}
		for _, rc := range recs {
			want[string(rc.Key)] = append(want[string(rc.Key)], rc.Data)
		}
		for k, vals := range want {
			if got := all(t, r, []byte(k)); !slices.EqualFunc(got, vals, bytes.Equal) {
				t.Fatalf("All(%q) = %q, want %q", k, got, vals)
			}
		}
		// Keys are at most 7 bytes, so this one is never present.
		if d, ok, err := r.Get([]byte("absent key")); ok || err != nil {
			t.Fatalf("Get(absent) = %q, %v, %v", d, ok, err)
		}
	})
}
