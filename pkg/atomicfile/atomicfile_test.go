package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rcpthosts")
	if err := WriteFile(p, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hold the old file open: a reader keeps seeing the old content.
	old, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := WriteFile(p, []byte("b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "b\n" {
		t.Fatalf("content = %q, %v", got, err)
	}
	buf := make([]byte, 10)
	n, _ := old.Read(buf)
	if string(buf[:n]) != "a\n" {
		t.Errorf("open reader saw %q, want the old content", buf[:n])
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", st.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the target (no temp files left)", len(entries))
	}
}

func TestWriteFileFailureLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Renaming a file over a non-empty directory fails after the temp file
	// was written: the temp file must go and the directory stay.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(sub, []byte("new"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "replace "+sub) {
		t.Fatalf("WriteFile over a directory: err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
	if got, _ := os.ReadFile(p); string(got) != "keep" {
		t.Errorf("unrelated file changed: %q", got)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

// TestWriteFromOwned: the owner is set before the mode, so a setuid bit
// survives the chown, and both are in place when the name appears.
func TestWriteFromOwned(t *testing.T) {
	owner := Owner{UID: os.Getuid(), GID: os.Getgid()}
	if owner.UID == 0 {
		owner = Owner{UID: 65534, GID: 65534}
	}
	p := filepath.Join(t.TempDir(), "prog")
	if err := WriteFrom(p, strings.NewReader("#!/bin/true\n"), 0o711|os.ModeSetuid, &owner); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != owner.UID || int(sys.Gid) != owner.GID || st.Mode()&os.ModeSetuid == 0 || st.Mode().Perm() != 0o711 {
		t.Errorf("got %d:%d %v, want %d:%d setuid 0711", sys.Uid, sys.Gid, st.Mode(), owner.UID, owner.GID)
	}
}

// waitUsers waits until n calls are in d.sync for dir.
func waitUsers(t *testing.T, d *dirSyncs, dir string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		d.mu.Lock()
		users := 0
		if s := d.dirs[dir]; s != nil {
			users = s.users
		}
		d.mu.Unlock()
		if users == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls waiting, want %d", users, n)
		}
	}
}

// gatedSync is an fsync the test lets end, with the result it chooses.
type gatedSync struct {
	started chan int      // the number of each fsync, as it starts
	results [8]chan error // what fsync number i returns
	running atomic.Int32  // fsyncs running at once
	count   atomic.Int32  // fsyncs started
	t       *testing.T
}

func newGatedSync(t *testing.T) *gatedSync {
	g := &gatedSync{started: make(chan int, 8), t: t}
	for i := range g.results {
		g.results[i] = make(chan error, 1)
	}
	return g
}

func (g *gatedSync) syncDir(string) error {
	if g.running.Add(1) > 1 {
		g.t.Error("two fsyncs of one directory at once")
	}
	defer g.running.Add(-1)
	n := int(g.count.Add(1)) - 1
	g.started <- n
	return <-g.results[n]
}

// next waits for the next fsync to start and returns its number.
func (g *gatedSync) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no fsync started")
		return -1
	}
}

// TestSyncDirShared: calls made while an fsync runs wait for the next,
// and share it: twenty calls, nineteen of them during the first fsync,
// take two.
func TestSyncDirShared(t *testing.T) {
	g := newGatedSync(t)
	d := &dirSyncs{syncDir: g.syncDir}
	errs := make(chan error, 20)
	go func() { errs <- d.sync("new") }()
	first := g.next(t)
	for range 19 {
		go func() { errs <- d.sync("new") }()
	}
	waitUsers(t, d, "new", 20)
	g.results[first] <- nil
	second := g.next(t)
	select {
	case err := <-errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first call did not return when its fsync ended")
	}
	select {
	case <-errs:
		t.Fatal("a call made during the first fsync returned before the second ended")
	case <-time.After(20 * time.Millisecond):
	}
	g.results[second] <- nil
	for range 19 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := g.count.Load(); n != 2 {
		t.Errorf("%d fsyncs, want 2", n)
	}
	if len(d.dirs) != 0 {
		t.Errorf("%d directories still tracked after every call returned", len(d.dirs))
	}
}

// TestSyncDirSharedFailure: a failed fsync fails exactly the calls it
// was to cover: not the one before, whose fsync succeeded, nor one that
// came while it ran and waited for the next.
func TestSyncDirSharedFailure(t *testing.T) {
	g := newGatedSync(t)
	d := &dirSyncs{syncDir: g.syncDir}
	eio := errors.New("EIO")
	call := func() chan error {
		ch := make(chan error, 1)
		go func() { ch <- d.sync("new") }()
		return ch
	}
	a := call()
	first := g.next(t)
	var bs []chan error
	for range 3 {
		bs = append(bs, call())
	}
	waitUsers(t, d, "new", 4)
	g.results[first] <- nil
	second := g.next(t)
	c := call()
	waitUsers(t, d, "new", 4) // a has returned; the bs and c wait
	g.results[second] <- eio
	third := g.next(t)
	g.results[third] <- nil
	if err := <-a; err != nil {
		t.Errorf("the call covered by the first fsync: %v", err)
	}
	for i, b := range bs {
		if err := <-b; !errors.Is(err, eio) {
			t.Errorf("call %d, covered by the failed fsync: %v, want its error", i, err)
		}
	}
	if err := <-c; err != nil {
		t.Errorf("the call that came during the failed fsync: %v, want the next one's success", err)
	}
	if err := SyncDirShared(t.TempDir()); err != nil {
		t.Errorf("SyncDirShared of a real directory: %v", err)
	}
	if err := SyncDirShared(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDirShared of a missing directory succeeded")
	}
}
