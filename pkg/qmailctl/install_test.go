package qmailctl

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Every program under cmd/ has its owner and mode for a root install:
// one missing from the table would silently not be installed.
func TestProgramsCoverCmd(t *testing.T) {
	entries, err := os.ReadDir("../../cmd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join("../../cmd", e.Name(), "main.go")); err != nil {
			continue // someone's program not written yet
		}
		if _, ok := programs[e.Name()]; !ok {
			t.Errorf("cmd/%s is not in programs (install.go): give it an owner and mode", e.Name())
		}
	}
}

func TestProgramModes(t *testing.T) {
	// qmail's own (reference §11.3) and quail's setuid programs.
	for name, want := range map[string]uint32{
		"qmail-queue": 0o4711, "checkpassword": 0o4711, "qmail-start": 0o700, "qmail-lspawn": 0o700,
		"qmail-send": 0o711, "qmail-popup": 0o711, "qmail-smtpd": 0o755, "qmail-tcpserver": 0o755, "qmailctl": 0o755,
	} {
		if got := unixPerm(programs[name].perm); got != want {
			t.Errorf("%s: mode %04o, want %04o", name, got, want)
		}
	}
	if programs["qmail-queue"].owner != "qmailq" || programs["checkpassword"].owner != "" {
		t.Errorf("setuid owners: qmail-queue %q, checkpassword %q", programs["qmail-queue"].owner, programs["checkpassword"].owner)
	}
	for name, m := range programs {
		if m.perm&fs.ModeSetuid != 0 && m.perm.Perm()&0o022 != 0 {
			t.Errorf("%s: setuid and writable by group or others", name)
		}
	}
}

func TestInstallFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "new"), filepath.Join(dir, "bin", "prog")
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(src, []byte("new program"), 0o644)
	os.WriteFile(dst, []byte("old program"), 0o755)
	old, _ := os.Open(dst) // a running program keeps its file
	defer old.Close()
	if err := installFile(src, dst, -1, -1, 0o711); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	st, _ := os.Stat(dst)
	if string(got) != "new program" || st.Mode() != 0o711 {
		t.Errorf("installed %q mode %v", got, st.Mode())
	}
	kept := make([]byte, 20)
	n, _ := old.Read(kept)
	if string(kept[:n]) != "old program" {
		t.Errorf("the old file was overwritten in place: %q", kept[:n])
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "bin"))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// Installing a file onto itself only sets the mode.
	if err := installFile(dst, dst, -1, -1, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "new program" {
		t.Errorf("self-install changed the content: %q", got)
	}
}
