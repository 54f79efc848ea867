package privsep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/passwd"
)

// TestLookup: as root, accounts and groups come from the host's files
// (here, files of the test's own) and a missing or uid-0 account is an
// error that says what to do; as anyone else, every name is the caller.
func TestLookup(t *testing.T) {
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\nqmailv:x:7795:2109::/q:/bin/true\n"), 0o644)
	os.WriteFile(g, []byte("qmail:x:2107:\n"), 0o644)
	oldP, oldG := passwd.File, passwd.GroupFile
	passwd.File, passwd.GroupFile = p, g
	defer func() { passwd.File, passwd.GroupFile = oldP, oldG }()

	if !Root() {
		for _, name := range []string{Virtual, "root", "nobody-here"} {
			if ids, err := Lookup(name); ids != Self() || err != nil {
				t.Errorf("Lookup(%s) = %v, %v; want the caller's ids %v", name, ids, err, Self())
			}
		}
		if gid, err := LookupGroup("nobody-here"); gid != os.Getgid() || err != nil {
			t.Errorf("LookupGroup = %d, %v; want the caller's gid", gid, err)
		}
		return
	}
	if ids, err := Lookup(Virtual); ids != (IDs{7795, 2109}) || err != nil {
		t.Errorf("Lookup(qmailv) = %v, %v", ids, err)
	}
	if _, err := Lookup(Queue); err == nil || !strings.Contains(err.Error(), "missing: run qmailctl init") {
		t.Errorf("Lookup of a missing account: %v", err)
	}
	if _, err := Lookup("root"); err == nil || !strings.Contains(err.Error(), "uid 0") {
		t.Errorf("Lookup of a uid-0 account: %v", err)
	}
	if gid, err := LookupGroup(GroupQmail); gid != 2107 || err != nil {
		t.Errorf("LookupGroup(qmail) = %d, %v", gid, err)
	}
	if _, err := LookupGroup(GroupVirtual); err == nil || !strings.Contains(err.Error(), "missing: run qmailctl init") {
		t.Errorf("LookupGroup of a missing group: %v", err)
	}
	os.Remove(p)
	if _, err := Lookup(Virtual); err == nil || !strings.Contains(err.Error(), "look up system account qmailv") {
		t.Errorf("Lookup without a passwd file: %v", err)
	}
}
