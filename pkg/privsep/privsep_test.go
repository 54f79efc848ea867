package privsep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/passwd"
)

// TestLookup: for root, accounts and groups come from the host's files
// (here, files of the test's own), and a missing or uid-0 account is an
// error that says what to do. Whoever runs the test, this is checked
// through lookup and lookupGroup, root's answers.
func TestLookup(t *testing.T) {
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\nqmailv:x:7795:2109::/q:/bin/true\n"), 0o644)
	os.WriteFile(g, []byte("qmail:x:2107:\n"), 0o644)
	oldP, oldG := passwd.File, passwd.GroupFile
	passwd.File, passwd.GroupFile = p, g
	defer func() { passwd.File, passwd.GroupFile = oldP, oldG }()

	if ids, err := lookup(Virtual); ids != (IDs{7795, 2109}) || err != nil {
		t.Errorf("lookup(qmailv) = %v, %v", ids, err)
	}
	if _, err := lookup(Queue); err == nil || !strings.Contains(err.Error(), "missing: run qmailctl init") {
		t.Errorf("lookup of a missing account: %v", err)
	}
	if _, err := lookup("root"); err == nil || !strings.Contains(err.Error(), "uid 0") {
		t.Errorf("lookup of a uid-0 account: %v", err)
	}
	if gid, err := lookupGroup(GroupQmail); gid != 2107 || err != nil {
		t.Errorf("lookupGroup(qmail) = %d, %v", gid, err)
	}
	if _, err := lookupGroup(GroupVirtual); err == nil || !strings.Contains(err.Error(), "missing: run qmailctl init") {
		t.Errorf("lookupGroup of a missing group: %v", err)
	}
	if Root() {
		if ids, err := Lookup(Virtual); ids != (IDs{7795, 2109}) || err != nil {
			t.Errorf("Lookup(qmailv) as root = %v, %v; want lookup's answer", ids, err)
		}
	} else {
		if ids, err := Lookup(Virtual); ids != Self() || err != nil {
			t.Errorf("Lookup(qmailv) = %v, %v; want the caller's ids %v", ids, err, Self())
		}
		if gid, err := LookupGroup(GroupQmail); gid != os.Getgid() || err != nil {
			t.Errorf("LookupGroup = %d, %v; want the caller's gid", gid, err)
		}
	}
	os.Remove(p)
	if _, err := lookup(Virtual); err == nil || !strings.Contains(err.Error(), "look up system account qmailv") {
		t.Errorf("lookup without a passwd file: %v", err)
	}
}
