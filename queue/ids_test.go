package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestScanIDs: every id in a directory larger than one read of the
// buffer is found once, and names that are not ids are passed over.
func TestScanIDs(t *testing.T) {
	dir := t.TempDir()
	want := map[uint64]bool{}
	for i := range 1500 {
		id := uint64(1000003 + i*7919)
		want[id] = true
		if err := os.WriteFile(filepath.Join(dir, strconv.FormatUint(id, 10)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{"tmp", "12a", "-5", "+7", "123456789012345678901"} {
		os.WriteFile(filepath.Join(dir, junk), nil, 0o600)
	}
	got := map[uint64]int{}
	buf, err := ScanIDs(dir, make([]byte, 4<<10), func(id uint64) { got[id]++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(buf) != 4<<10 {
		t.Errorf("buffer of %d bytes returned, want the one passed in", len(buf))
	}
	for id, n := range got {
		if !want[id] || n != 1 {
			t.Errorf("id %d found %d times, want once and only if named", id, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("found %d ids, want %d", len(got), len(want))
	}
	if _, err := ScanIDs(filepath.Join(dir, "missing"), nil, func(uint64) {}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want a not-exist error", err)
	}
}

// TestListIDs: listIDs gives the ids of a directory sorted, and no
// other names. (Twenty, so that the directory's own order is not
// sorted by chance.)
func TestListIDs(t *testing.T) {
	dir := t.TempDir()
	var want []uint64
	for i := uint64(20); i >= 1; i-- {
		id := i * 37
		want = append([]uint64{id}, want...)
		if err := os.WriteFile(filepath.Join(dir, strconv.FormatUint(id, 10)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{"tmp", "7x"} {
		os.WriteFile(filepath.Join(dir, junk), nil, 0o600)
	}
	ids, err := listIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("listIDs: %v, want %v", ids, want)
	}
}
