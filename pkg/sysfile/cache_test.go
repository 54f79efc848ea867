package sysfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// noSettle keeps every file read, however fresh, for the length of a
// test: the tests check that a change is seen even so. Each change waits
// for a later clock tick (tick), which is what settle guarantees.
func noSettle(t *testing.T) {
	old := settle
	settle = -time.Hour
	t.Cleanup(func() { settle = old })
}

func hits() int {
	cache.Lock()
	defer cache.Unlock()
	return cache.hits
}

func readCached(t *testing.T, path, want string) {
	t.Helper()
	data, err := ReadFileCached(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Fatalf("read %q, want %q", data, want)
	}
}

func TestReadFileCachedHit(t *testing.T) {
	noSettle(t)
	path := filepath.Join(t.TempDir(), "me")
	os.WriteFile(path, []byte("mail.example.com\n"), 0o644)
	readCached(t, path, "mail.example.com\n")
	before := hits()
	data, _ := ReadFileCached(path)
	if hits() != before+1 {
		t.Errorf("second read of an unchanged file was not a hit")
	}
	data[0] = 'X' // the caller's copy: the cache keeps its own
	readCached(t, path, "mail.example.com\n")
}

func TestReadFileCachedSeesChanges(t *testing.T) {
	noSettle(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rcpthosts")
	os.WriteFile(path, []byte("a.example\n"), 0o644)
	readCached(t, path, "a.example\n")

	// Rewritten in place, longer.
	tick()
	os.WriteFile(path, []byte("a.example\nb.example\n"), 0o644)
	readCached(t, path, "a.example\nb.example\n")

	// Replaced by rename, same length.
	tmp := filepath.Join(dir, "tmp")
	os.WriteFile(tmp, []byte("c.example\nd.example\n"), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	readCached(t, path, "c.example\nd.example\n")

	// Rewritten in place, same length, with its times put back: the
	// change time still moves.
	st, _ := os.Stat(path)
	tick()
	os.WriteFile(path, []byte("e.example\nf.example\n"), 0o644)
	os.Chtimes(path, st.ModTime(), st.ModTime())
	readCached(t, path, "e.example\nf.example\n")

	// Removed.
	os.Remove(path)
	if _, err := ReadFileCached(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a removed file: %v, want not exist", err)
	}
	os.WriteFile(path, []byte("g.example\n"), 0o644)
	readCached(t, path, "g.example\n")
}

// TestReadFileCachedFreshNotKept: a file changed within settle is read
// afresh each time, since a second write in the same clock tick could
// leave its stamps as they were.
func TestReadFileCachedFreshNotKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locals")
	os.WriteFile(path, []byte("x\n"), 0o644)
	readCached(t, path, "x\n")
	before := hits()
	readCached(t, path, "x\n")
	if hits() != before {
		t.Errorf("a file written just now was served from the cache")
	}
}

// tick waits out the kernel's timestamp granularity (a jiffy, at most
// 10 ms).
func tick() { time.Sleep(20 * time.Millisecond) }

func TestSettled(t *testing.T) {
	now := time.Now()
	var st = statAt(now.Add(-3*time.Second), now.Add(-3*time.Second))
	if !settled(&st, now) {
		t.Errorf("a file changed 3 s ago is not settled")
	}
	st = statAt(now.Add(-3*time.Second), now.Add(-time.Second))
	if settled(&st, now) {
		t.Errorf("a file whose change time is 1 s old is settled")
	}
	st = statAt(now.Add(-time.Second), now.Add(-3*time.Second))
	if settled(&st, now) {
		t.Errorf("a file modified 1 s ago is settled")
	}
}

func statAt(mtime, ctime time.Time) (st unix.Stat_t) {
	st.Mtim.Sec, st.Mtim.Nsec = mtime.Unix(), int64(mtime.Nanosecond())
	st.Ctim.Sec, st.Ctim.Nsec = ctime.Unix(), int64(ctime.Nanosecond())
	return st
}
