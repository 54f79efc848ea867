package passwd

import (
	"os"
	"path/filepath"
	"testing"
)

// use points File and GroupFile at files with the given contents.
func use(t *testing.T, passwd, group string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(p, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	oldP, oldG := File, GroupFile
	File, GroupFile = p, g
	t.Cleanup(func() { File, GroupFile = oldP, oldG })
	return p, g
}

func TestLookup(t *testing.T) {
	p, _ := use(t, "# comment\n"+
		"+nisuser::1:1::/nis:/bin/sh\n"+
		"short:x:5\n"+
		"alias:x:7791:2108:qmail alias:/var/qmail/alias:/bin/true\n"+
		"joe:x:1001:1001:Joe,,,:/home/joe:/bin/bash\n"+
		"joe:x:1002:1002::/home/joe2:/bin/sh\n"+
		"odd:x:1x:1::/home/odd:/bin/sh\n"+
		"odd:x:1003:1003::/home/odd:/bin/sh\n"+
		"gid:x:1006:1y::/home/gid:/bin/sh\n"+
		"  spaced:x:1004:1004::/home/spaced:/bin/sh  \n"+
		"six:x:1005:1005::/home/six\n"+
		"-minus:x:1007:1007::/home/minus:/bin/sh\n"+
		"  +spacedplus:x:1008:1008::/home/sp:/bin/sh\n"+
		"crlf:x:1009:1009::/home/crlf:/bin/sh\r\n"+
		"last:x:1010:1010::/home/last:/bin/sh", "")
	for _, tc := range []struct {
		name string
		want User
		ok   bool
	}{
		{"joe", User{Name: "joe", UID: 1001, GID: 1001, Home: "/home/joe"}, true},
		{"alias", User{Name: "alias", UID: 7791, GID: 2108, Home: "/var/qmail/alias"}, true},
		{"nisuser", User{}, false},
		{"+nisuser", User{}, false},
		{"short", User{}, false},
		{"nobody-here", User{}, false},
		{"", User{}, false},
		{"odd", User{Name: "odd", UID: 1003, GID: 1003, Home: "/home/odd"}, true},
		{"gid", User{}, false},
		{"spaced", User{Name: "spaced", UID: 1004, GID: 1004, Home: "/home/spaced"}, true},
		{"six", User{}, false},
		{"-minus", User{}, false},
		{"minus", User{}, false},
		{"+spacedplus", User{}, false},
		{"spacedplus", User{}, false},
		{"crlf", User{Name: "crlf", UID: 1009, GID: 1009, Home: "/home/crlf"}, true},
		{"last", User{Name: "last", UID: 1010, GID: 1010, Home: "/home/last"}, true},
	} {
		u, ok, err := Lookup(tc.name)
		if u != tc.want || ok != tc.ok || err != nil {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want %+v, %v, no error", tc.name, u, ok, err, tc.want, tc.ok)
		}
	}
	os.Remove(p)
	if _, _, err := Lookup("joe"); err == nil {
		t.Error("no passwd file: no error")
	}
}

func TestLookupGroup(t *testing.T) {
	_, g := use(t, "", "# comment\n"+
		"+nis::7:\n"+
		"short:x\n"+
		"qmail:x:2107:\n"+
		"odd:x:z:\n"+
		"odd:x:2110:a,b\n"+
		"  nofiles:x:2108:  \n"+
		"three:x:2111\n")
	for _, tc := range []struct {
		name string
		gid  int
		ok   bool
	}{
		{"qmail", 2107, true},
		{"odd", 2110, true},
		{"nofiles", 2108, true},
		{"nis", 0, false},
		{"+nis", 0, false},
		{"short", 0, false},
		{"three", 0, false},
		{"", 0, false},
		{"qmailv", 0, false},
	} {
		gid, ok, err := LookupGroup(tc.name)
		if gid != tc.gid || ok != tc.ok || err != nil {
			t.Errorf("LookupGroup(%q) = %d, %v, %v; want %d, %v, no error", tc.name, gid, ok, err, tc.gid, tc.ok)
		}
	}
	os.Remove(g)
	if _, _, err := LookupGroup("qmail"); err == nil {
		t.Error("no group file: no error")
	}
}
