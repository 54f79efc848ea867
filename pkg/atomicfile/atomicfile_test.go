package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestSyncDirShared: every call returns after an fsync that started
// after the call, and calls made while one runs share the next.
func TestSyncDirShared(t *testing.T) {
	var (
		mu      sync.Mutex
		changes int   // changes made so far
		synced  int   // changes covered by the last fsync to end
		syncs   int   // fsyncs run
		running int32 // fsyncs running at once
	)
	release := make(chan struct{})
	d := dirSyncs{syncDir: func(string) error {
		if atomic.AddInt32(&running, 1) > 1 {
			t.Error("two fsyncs of one directory at once")
		}
		mu.Lock()
		covered := changes // what this fsync sees, as it starts
		syncs++
		first := syncs == 1
		mu.Unlock()
		if first {
			<-release // hold the first while the others arrive
		}
		mu.Lock()
		synced = covered
		mu.Unlock()
		atomic.AddInt32(&running, -1)
		return nil
	}}
	const callers = 20
	var wg sync.WaitGroup
	call := func() {
		defer wg.Done()
		mu.Lock()
		changes++
		mine := changes
		mu.Unlock()
		if err := d.sync("new"); err != nil {
			t.Error(err)
		}
		mu.Lock()
		if synced < mine {
			t.Errorf("change %d returned after an fsync that covered only %d", mine, synced)
		}
		mu.Unlock()
	}
	wg.Add(1)
	go call()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := syncs
		mu.Unlock()
		if n == 1 {
			break // the first fsync is running
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the first call ran no fsync")
		}
	}
	wg.Add(callers - 1)
	for range callers - 1 {
		go call()
	}
	time.Sleep(50 * time.Millisecond) // let them all wait behind the first
	close(release)
	wg.Wait()
	if syncs != 2 {
		t.Errorf("%d calls, %d of them during the first fsync, took %d fsyncs, want 2", callers, callers-1, syncs)
	}
	if len(d.dirs) != 0 {
		t.Errorf("%d directories still tracked after every call returned", len(d.dirs))
	}
}

// TestSyncDirSharedFailure: a failed fsync fails the call it was to
// cover; a call after it runs an fsync of its own.
func TestSyncDirSharedFailure(t *testing.T) {
	fail := errors.New("EIO")
	var calls int
	d := dirSyncs{syncDir: func(string) error {
		calls++
		if calls == 1 {
			return fail
		}
		return nil
	}}
	if err := d.sync("new"); !errors.Is(err, fail) {
		t.Errorf("first call: %v, want the fsync's error", err)
	}
	if err := d.sync("new"); err != nil {
		t.Errorf("a call after the failure: %v", err)
	}
	if err := SyncDirShared(t.TempDir()); err != nil {
		t.Errorf("SyncDirShared of a real directory: %v", err)
	}
	if err := SyncDirShared(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDirShared of a missing directory succeeded")
	}
}
