//go:build integration

package test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/testutil"
)

// buildInstance runs what the issue asks for: init, domain add, user add.
func buildInstance(t *testing.T, as *syscall.Credential) string {
	t.Helper()
	root := filepath.Join(ownedDir(t, as), "q")
	steps := []proc{
		{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mail.example.test"}},
		{args: []string{"qmailctl", "domain", "add", "example.test", "--quota", "200M", "--ip", "192.0.2.7", "--root", root}},
		{args: []string{"qmailctl", "user", "add", "joe@example.test", "--password-stdin", "--root", root}, stdin: "pass word 1\n"},
		{args: []string{"qmailctl", "user", "add", "ann@example.test", "--password-stdin", "--no-apop", "--root", root}, stdin: "ann's password\n"},
	}
	for _, p := range steps {
		p.as = as
		if r := run(t, p); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", p.args, r.code, r.stderr)
		}
	}
	return root
}

func checkInstance(t *testing.T, root string, as *syscall.Credential) {
	t.Helper()
	r := run(t, proc{args: []string{"qmailctl", "user", "list", "example.test", "--root", root}, as: as})
	if r.code != 0 || r.stdout != "joe@example.test\nann@example.test\n" {
		t.Errorf("user list = %q, exit %d, %s", r.stdout, r.code, r.stderr)
	}
	r = run(t, proc{args: []string{"qmailctl", "domain", "show", "example.test", "--root", root}, as: as})
	want := "domain: example.test\nquota: 209715200\nips: 192.0.2.7\nusers: 2\nrcpthosts: yes\nvirtualdomains: yes\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("domain show = %q, exit %d, %s; want %q", r.stdout, r.code, r.stderr, want)
	}
	for file, want := range map[string]string{
		"control/me":                  "mail.example.test\n",
		"control/rcpthosts":           "mail.example.test\nexample.test\n",
		"control/virtualdomains":      "example.test:example.test\n",
		"control/quotas":              "example.test:209715200\n",
		"control/contractips":         "example.test:192.0.2.7\n",
		"users/assign":                ".\n",
		"domains/example.test/passwd": "joe:joe\nann:ann\n",
	} {
		got, err := os.ReadFile(filepath.Join(root, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}
	// No clear-text password anywhere but joe's APOP secret in shadow
	// (base64 there); ann, without APOP, has none at all.
	checkNoClearText(t, root, "pass word 1", "ann's password")
	shadow, _ := os.ReadFile(filepath.Join(root, "domains/example.test/shadow"))
	creds, err := contract.ParseShadow("shadow", shadow)
	if err != nil || len(creds) != 2 {
		t.Fatalf("shadow: %v, %d entries", err, len(creds))
	}
	for _, c := range creds {
		if !strings.HasPrefix(c.Hash, "$6$") {
			t.Errorf("%s: hash %q is not SHA-512-crypt", c.Name, c.Hash)
		}
		if c.Name == "joe" && string(c.Secret) != "pass word 1" {
			t.Errorf("joe's APOP secret = %q", c.Secret)
		}
		if c.Name == "ann" && c.Secret != nil {
			t.Errorf("ann has a secret stored though --no-apop")
		}
	}
	st, err := os.Stat(filepath.Join(root, "domains/example.test/shadow"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("shadow mode = %v, %v; want 0600", st.Mode(), err)
	}
}

// checkNoClearText fails if any file under root holds one of the
// passwords as plain bytes.
func checkNoClearText(t *testing.T, root string, passwords ...string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() { // not the queue's trigger FIFO
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return nil
		}
		for _, pw := range passwords {
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s holds the clear-text password %q", p, pw)
			}
		}
		return nil
	})
}

func TestInstanceAsOrdinaryUser(t *testing.T) {
	var as *syscall.Credential
	if os.Geteuid() == 0 {
		as = nobody
	}
	root := buildInstance(t, as)
	checkInstance(t, root, as)
	st, err := os.Stat(filepath.Join(root, "domains/example.test/joe/Maildir/new"))
	if err != nil {
		t.Fatal(err)
	}
	if as != nil && st.Sys().(*syscall.Stat_t).Uid != as.Uid {
		t.Errorf("Maildir owned by uid %d, want the invoking user %d", st.Sys().(*syscall.Stat_t).Uid, as.Uid)
	}
}

func TestInstanceAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	root := buildInstance(t, nil)
	checkInstance(t, root, nil)
	ids := func(name string) (int, int) {
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatalf("system account %s: %v", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uid, gid
	}
	for _, name := range []string{"alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails", "qmailv"} {
		if uid, _ := ids(name); uid == 0 {
			t.Errorf("%s has uid 0", name)
		}
	}
	qmailGroup, err := user.LookupGroup("qmail")
	if err != nil {
		t.Fatal(err)
	}
	qgid, _ := strconv.Atoi(qmailGroup.Gid)
	aliasUID, _ := ids("alias")
	vuid, vgid := ids("qmailv")
	for _, tc := range []struct {
		path     string
		uid, gid int
		mode     fs.FileMode
	}{
		{"alias", aliasUID, qgid, fs.ModeDir | fs.ModeSetgid | 0o755},
		{"control", 0, qgid, fs.ModeDir | 0o755},
		{"domains/example.test/shadow", 0, 0, 0o600},
		{"domains/example.test/passwd", 0, 0, 0o644},
		{"domains/example.test/joe", vuid, vgid, fs.ModeDir | 0o711},
		{"domains/example.test/joe/Maildir/new", vuid, vgid, fs.ModeDir | 0o700},
	} {
		st, err := os.Stat(filepath.Join(root, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != tc.uid || int(sys.Gid) != tc.gid || st.Mode() != tc.mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", tc.path, sys.Uid, sys.Gid, st.Mode(), tc.uid, tc.gid, tc.mode)
		}
	}
	// Another user cannot read the secrets.
	r := run(t, proc{args: []string{"qmailctl", "user", "list", "example.test", "--root", root}, as: nobody})
	if r.code != 0 {
		t.Errorf("nobody cannot list users (passwd is world-readable): %s", r.stderr)
	}
	if _, err := os.ReadFile(filepath.Join(root, "domains/example.test/shadow")); err != nil {
		t.Fatal(err)
	}
	// init is idempotent: again, nothing changes and nothing is created.
	r = run(t, proc{args: []string{"qmailctl", "init", "--root", root}})
	if r.code != 0 || r.stdout != "" {
		t.Errorf("second init: exit %d, said %q, %s; want silence", r.code, r.stdout, r.stderr)
	}
}

// Two admins at once lose nothing: many qmailctl processes add users and
// domains concurrently, and every one is there afterwards, consistent.
func TestQmailctlConcurrent(t *testing.T) {
	root := filepath.Join(ownedDir(t, nil), "q")
	if r := run(t, proc{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mail.example.test"}}); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := run(t, proc{args: []string{"qmailctl", "domain", "add", "example.test", "--root", root}}); r.code != 0 {
		t.Fatal(r.stderr)
	}
	const users, domains = 24, 8
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			r := run(t, proc{args: []string{"qmailctl", "user", "add", fmt.Sprintf("u%d@example.test", i), "--password-stdin", "--root", root}, stdin: fmt.Sprintf("pw%d\n", i)})
			if r.code != 0 {
				t.Errorf("user add u%d: %s", i, r.stderr)
			}
		})
	}
	for i := range domains {
		wg.Go(func() {
			r := run(t, proc{args: []string{"qmailctl", "domain", "add", fmt.Sprintf("d%d.example", i), "--quota", "1M", "--root", root}})
			if r.code != 0 {
				t.Errorf("domain add d%d: %s", i, r.stderr)
			}
		})
	}
	wg.Wait()
	s := contract.New(root)
	names, err := s.Users("example.test")
	if err != nil || len(names) != users {
		t.Fatalf("%d users after %d concurrent adds (%v): %v", len(names), users, err, names)
	}
	for i := range users {
		u, err := s.LookupUser(fmt.Sprintf("u%d@example.test", i))
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := s.Credential(u); err != nil {
			t.Error(err)
		}
	}
	rcpt, _ := os.ReadFile(filepath.Join(root, "control/rcpthosts"))
	quotas, _ := os.ReadFile(filepath.Join(root, "control/quotas"))
	for i := range domains {
		d := fmt.Sprintf("d%d.example", i)
		if !bytes.Contains(rcpt, []byte("\n"+d+"\n")) || !bytes.Contains(quotas, []byte(d+":1048576\n")) {
			t.Errorf("%s missing from rcpthosts or quotas:\n%s\n%s", d, rcpt, quotas)
		}
	}
}

func TestQmailctlErrors(t *testing.T) {
	root := buildInstance(t, nil)
	for _, tc := range []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"qmailctl"}, "", 2, ""},
		{[]string{"qmailctl", "frobnicate"}, "", 2, `qmailctl: unknown command "frobnicate"`},
		{[]string{"qmailctl", "user", "add", "x@example.test"}, "", 2, "give the password with --password-stdin or --password-file F"},
		{[]string{"qmailctl", "user", "add", "x@example.test", "--password", "argv"}, "", 2, "unknown flag: --password"},
		{[]string{"qmailctl", "user", "add", "x@example.test", "--password-stdin"}, "\n", 1, "the password is empty"},
		{[]string{"qmailctl", "user", "add", "joe@example.test", "--password-stdin"}, "x\n", 1, "user joe@example.test: already exists"},
		{[]string{"qmailctl", "user", "add", "x@nowhere.example", "--password-stdin"}, "x\n", 1, "domain nowhere.example: no such domain"},
		{[]string{"qmailctl", "user", "add", "x@example.test", "--password-file", "/nonexistent"}, "", 1, "/nonexistent"},
		{[]string{"qmailctl", "domain", "add"}, "", 2, "qmailctl domain add: want DOMAIN"},
		{[]string{"qmailctl", "domain", "add", "x.example", "--quota", "lots"}, "", 2, `--quota: size "lots"`},
		{[]string{"qmailctl", "domain", "add", "x.example", "--ip", "300.1.1.1"}, "", 2, `--ip "300.1.1.1": not an IP address`},
		{[]string{"qmailctl", "domain", "del", "example.test"}, "", 1, "still has 2 users: delete them first, or pass --force"},
		{[]string{"qmailctl", "domain", "show", "nowhere.example"}, "", 1, "domain nowhere.example: no such domain"},
		{[]string{"qmailctl", "user", "del", "bob@example.test"}, "", 1, "user bob@example.test: no such user"},
	} {
		args := tc.args
		if len(args) > 1 {
			args = append(args, "--root", root)
		}
		r := run(t, proc{args: args, stdin: tc.stdin})
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	root := buildInstance(t, nil)
	pwfile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwfile, []byte("from a file\r\nsecond line ignored\n"), 0o600)
	r := run(t, proc{args: []string{"qmailctl", "user", "passwd", "joe@example.test", "--password-file", pwfile, "--root", root}})
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = run(t, proc{args: []string{"checkpassword", "true"}, env: []string{"QMAILHOME=" + root},
		fd3: []byte("joe@example.test\x00from a file\x00\x00")})
	if r.code != 0 {
		t.Errorf("login with the password from the file: exit %d %s", r.code, r.stderr)
	}
}
