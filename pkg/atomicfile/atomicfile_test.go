package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
