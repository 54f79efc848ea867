package users

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/cdb"
	"github.com/quail-mta/quail/pkg/passwd"
)

const assignText = `=joe:joe:1001:100:/home/joe:::
=Sales:joe:1001:100:/home/joe:-:sales:
+list-:lists:1002:100:/home/lists:-::
+list-x-:lists:1002:100:/home/lists:-:x-:
+:alias:7790:2108:/var/qmail/alias:-::
.
`

func TestParseAssign(t *testing.T) {
	got, err := ParseAssign([]byte(assignText))
	if err != nil {
		t.Fatal(err)
	}
	want := []Assign{
		{false, "joe", [6]string{"joe", "1001", "100", "/home/joe", "", ""}},
		{false, "Sales", [6]string{"joe", "1001", "100", "/home/joe", "-", "sales"}},
		{true, "list-", [6]string{"lists", "1002", "100", "/home/lists", "-", ""}},
		{true, "list-x-", [6]string{"lists", "1002", "100", "/home/lists", "-", "x-"}},
		{true, "", [6]string{"alias", "7790", "2108", "/var/qmail/alias", "-", ""}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseAssign =\n%v\nwant\n%v", got, want)
	}
}

func TestParseAssignErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "users/assign:1: missing the final line"},
		{"=a:u:1:2:/h:::\n", "users/assign:2: missing the final line"},
		{"=a:u:1:2:/h:::", "users/assign:1: missing the final line"},
		{"=a:u:1:2:/h::\n.\n", "users/assign:1: want six fields"},
		{"=a\n.\n", "users/assign:1: no ':'"},
		{"joe:u:1:2:/h:::\n.\n", "users/assign:1: want =local"},
		{"\n.\n", "users/assign:1: want =local"},
		{"=a:u\x00:1:2:/h:::\n.\n", "users/assign:1: NUL byte"},
	} {
		_, err := ParseAssign([]byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseAssign(%q) error = %v, want %q...", tc.in, err, tc.want)
		}
	}
	// Anything after the '.' line is ignored, as qmail-newu ignores it.
	if a, err := ParseAssign([]byte(".\ngarbage")); err != nil || len(a) != 0 {
		t.Errorf("ParseAssign(. then garbage) = %v, %v", a, err)
	}
}

func newInstance(t *testing.T, assign string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "users", "assign"), []byte(assign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Newu(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// The records qmail-newu writes: key "!" + lower(local) with a NUL for '='
// lines, without for '+' lines; data the six fields joined by NULs; and
// last the empty key holding the wildcard characters.
func TestNewuRecords(t *testing.T) {
	root := newInstance(t, assignText)
	db, err := cdb.Open(filepath.Join(root, "users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []string
	for r, err := range db.Records() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(r.Key)+"=>"+string(r.Data))
	}
	want := []string{
		"!joe\x00=>joe\x001001\x00100\x00/home/joe\x00\x00",
		"!sales\x00=>joe\x001001\x00100\x00/home/joe\x00-\x00sales",
		"!list-=>lists\x001002\x00100\x00/home/lists\x00-\x00",
		"!list-x-=>lists\x001002\x00100\x00/home/lists\x00-\x00x-",
		"!=>alias\x007790\x002108\x00/var/qmail/alias\x00-\x00",
		"=>-",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records =\n%q\nwant\n%q", got, want)
	}
}

func TestLookup(t *testing.T) {
	root := newInstance(t, assignText)
	for _, tc := range []struct {
		local string
		want  Entry
		ok    bool
	}{
		{"joe", Entry{"joe", 1001, 100, "/home/joe", "", ""}, true},
		{"JOE", Entry{"joe", 1001, 100, "/home/joe", "", ""}, true},
		{"sales", Entry{"joe", 1001, 100, "/home/joe", "-", "sales"}, true},
		{"list-foo", Entry{"lists", 1002, 100, "/home/lists", "-", "foo"}, true},
		{"list-x-foo", Entry{"lists", 1002, 100, "/home/lists", "-", "x-foo"}, true},
		{"List-X-Foo", Entry{"lists", 1002, 100, "/home/lists", "-", "x-Foo"}, true},
		// "joe-ext" is no exact key, and 'e' is no wildcard character, so
		// only the bare '!' wildcard (the alias line) matches.
		{"joe-ext", Entry{"alias", 7790, 2108, "/var/qmail/alias", "-", "joe-ext"}, true},
	} {
		got, ok, err := Lookup(root, tc.local)
		if err != nil || ok != tc.ok || got != tc.want {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want %+v, %v", tc.local, got, ok, err, tc.want, tc.ok)
		}
	}
	noWild := newInstance(t, "=joe:joe:1:2:/h:::\n.\n")
	if _, ok, err := Lookup(noWild, "bob"); ok || err != nil {
		t.Errorf("Lookup(unknown) = %v, %v; want not found", ok, err)
	}
	if _, ok, err := Lookup(t.TempDir(), "joe"); ok || err != nil {
		t.Errorf("Lookup without users/cdb = %v, %v; want not found, no error", ok, err)
	}
	broken := t.TempDir()
	os.Mkdir(filepath.Join(broken, "users"), 0o755)
	os.WriteFile(filepath.Join(broken, "users", "cdb"), []byte("short"), 0o644)
	if _, _, err := Lookup(broken, "joe"); !errors.Is(err, ErrCDB) {
		t.Errorf("Lookup with a corrupt users/cdb: err = %v, want ErrCDB", err)
	}
}

type fakePasswd map[string]Entry

func (f fakePasswd) Lookup(name string) (Entry, bool, error) {
	e, ok := f[name]
	return e, ok, nil
}

func TestGetpw(t *testing.T) {
	uid := os.Getuid()
	home := t.TempDir() // owned by us
	if uid == 0 {
		// qmail-getpw never delivers as root: give the home to another uid.
		uid = 54321
		if err := os.Chown(home, uid, 0); err != nil {
			t.Fatal(err)
		}
	}
	pw := fakePasswd{
		"joe":       {User: "joe", UID: uid, GID: 1, Home: home},
		"joe-smith": {User: "joe-smith", UID: uid, GID: 1, Home: home},
		"nohome":    {User: "nohome", UID: uid, GID: 1, Home: filepath.Join(home, "missing")},
		"root":      {User: "root", UID: 0, GID: 0, Home: home},
		"alias":     {User: "alias", UID: 7790, GID: 2108, Home: "/var/qmail/alias"},
		"other":     {User: "other", UID: uid + 1, GID: 1, Home: home}, // home not its own
	}
	for _, tc := range []struct {
		local, user, dash, ext string
	}{
		{"joe", "joe", "", ""},
		{"Joe", "joe", "", ""},
		{"joe-list", "joe", "-", "list"},
		{"joe-smith-x", "joe-smith", "-", "x"},
		{"joe-smith", "joe-smith", "", ""},
		{"root", "alias", "-", "root"},
		{"nohome", "alias", "-", "nohome"},
		{"other-x", "alias", "-", "other-x"},
		{"joe.smith", "alias", "-", "joe.smith"},
		{"", "alias", "-", ""},
		{strings.Repeat("j", 32), "alias", "-", strings.Repeat("j", 32)},
	} {
		e, err := Getpw(pw, tc.local, "alias")
		if err != nil || e.User != tc.user || e.Dash != tc.dash || e.Ext != tc.ext {
			t.Errorf("Getpw(%q) = %+v, %v; want user %s dash %q ext %q", tc.local, e, err, tc.user, tc.dash, tc.ext)
		}
	}
	if _, err := Getpw(fakePasswd{}, "x", "alias"); !errors.Is(err, ErrNoAlias) {
		t.Errorf("Getpw without alias user: err = %v, want ErrNoAlias", err)
	}
}

func TestEntryFormat(t *testing.T) {
	e := Entry{"joe", 1001, 100, "/home/joe", "-", "list"}
	if got := string(e.Format()); got != "joe\x001001\x00100\x00/home/joe\x00-\x00list\x00" {
		t.Errorf("Format = %q", got)
	}
}

func FuzzParseAssign(f *testing.F) {
	f.Add([]byte(assignText))
	f.Add([]byte("+:a:1:2:/:-::\n.\n"))
	f.Add([]byte("=::::::::\n.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		assign, err := ParseAssign(data)
		if err != nil {
			return
		}
		// Whatever parses compiles, and every exact entry is found again.
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "users"), 0o755)
		if err := WriteCDB(root, assign); err != nil {
			t.Fatal(err)
		}
		for _, a := range assign {
			if a.Wildcard || strings.ContainsRune(a.Local, 0) {
				continue
			}
			if _, ok, err := Lookup(root, a.Local); !ok && err == nil {
				t.Fatalf("exact entry %q not found", a.Local)
			}
		}
	})
}

// TestGetpwOutsider: a caller that may not search the way to a home
// (qmail-smtpd as qmaild) takes the account to exist, as delivery would;
// Getpw, as qmail-getpw, passes over it. As root nothing is out of reach,
// so the test runs itself again as nobody.
func TestGetpwOutsider(t *testing.T) {
	if os.Geteuid() == 0 {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		// The test binary's own directory is root's alone: run a copy.
		dir, err := os.MkdirTemp("", "getpw-bin")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, "users.test")
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestGetpwOutsider$", "-test.count=1")
		cmd.Env = append(os.Environ(), "QUAIL_TEST_OUTSIDER=1")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	dir, err := os.MkdirTemp("", "getpw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "locked", "joe")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "locked"), 0o600) // no search: stat of home is EACCES
	defer os.Chmod(filepath.Join(dir, "locked"), 0o755)
	pw := fakePasswd{
		"joe":   {User: "joe", UID: os.Getuid(), GID: 1, Home: home},
		"alias": {User: "alias", UID: 7790, GID: 2108, Home: "/var/qmail/alias"},
	}
	if e, err := GetpwOutsider(pw, "joe-list", "alias"); err != nil || e.User != "joe" || e.Dash != "-" || e.Ext != "list" {
		t.Errorf("GetpwOutsider = %+v, %v; want joe with extension list", e, err)
	}
	if e, err := Getpw(pw, "joe", "alias"); err != nil || e.User != "alias" {
		t.Errorf("Getpw = %+v, %v; want the alias user, as qmail-getpw", e, err)
	}
}

// TestSystemLookup: System answers from package passwd's file (whose
// parsing rules passwd's tests cover) with every field qmail-getpw uses.
func TestSystemLookup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(p, []byte("joe:x:1001:1002:Joe,,,:/home/joe:/bin/bash\n"), 0o644)
	old := passwd.File
	passwd.File = p
	defer func() { passwd.File = old }()
	if e, ok, err := (System{}).Lookup("joe"); e != (Entry{User: "joe", UID: 1001, GID: 1002, Home: "/home/joe"}) || !ok || err != nil {
		t.Errorf("Lookup(joe) = %+v, %v, %v", e, ok, err)
	}
	if e, ok, err := (System{}).Lookup("jane"); e != (Entry{}) || ok || err != nil {
		t.Errorf("Lookup(jane) = %+v, %v, %v; want not found", e, ok, err)
	}
	os.Remove(p)
	if _, _, err := (System{}).Lookup("joe"); err == nil {
		t.Error("no passwd file: no error")
	}
}
