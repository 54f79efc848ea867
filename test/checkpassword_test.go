//go:build integration

package test

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/checkpw"
	"github.com/quail-mta/quail/pkg/testutil"
)

const stamp = "<31337.1764000000@mail.example.test>"

// report is the program checkpassword runs on success: it shows what it
// was given.
var report = []string{"sh", "-c", `printf '%s|%s|%s|%s|%s|%s' "$USER" "$HOME" "$SHELL" "$(pwd)" "$(id -u)" "$(id -G)"`}

func digestAPOP(pw string) string {
	s := md5.Sum([]byte(stamp + pw))
	return hex.EncodeToString(s[:])
}

func digestCRAM(pw string) string {
	m := hmac.New(md5.New, []byte(pw))
	io.WriteString(m, stamp)
	return hex.EncodeToString(m.Sum(nil))
}

func TestCheckpassword(t *testing.T) {
	var as = nobody
	if os.Geteuid() != 0 {
		as = nil
	}
	root := buildInstance(t, as)
	home := filepath.Join(root, "domains/example.test/joe")
	wantUID := fmt.Sprint(os.Getuid())
	if as != nil {
		wantUID = fmt.Sprint(as.Uid)
	}
	good := map[string]string{
		"plain":                 "joe@example.test\x00pass word 1\x00" + stamp + "\x00",
		"plain, no timestamp":   "joe@example.test\x00pass word 1\x00",
		"apop":                  "joe@example.test\x00" + digestAPOP("pass word 1") + "\x00" + stamp + "\x00",
		"cram-md5":              "joe@example.test\x00" + digestCRAM("pass word 1") + "\x00" + stamp + "\x00",
		"cram-md5, other order": "joe@example.test\x00" + stamp + "\x00" + digestCRAM("pass word 1") + "\x00",
		"percent login":         "joe%example.test\x00pass word 1\x00\x00",
	}
	for name, in := range good {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := run(t, proc{args: append([]string{"checkpassword"}, report...), env: []string{"QMAILHOME=" + root}, fd3: []byte(in), as: as})
			want := fmt.Sprintf("joe@example.test|%s|%s|%s|%s|", home, checkpw.Shell, home, wantUID)
			if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
				t.Errorf("exit %d, ran with %q (stderr %q); want %q...", r.code, r.stdout, r.stderr, want)
			}
		})
	}
	bad := map[string]struct {
		in   string
		code int
	}{
		"wrong password":        {"joe@example.test\x00pass word 2\x00\x00", 1},
		"apop, wrong":           {"joe@example.test\x00" + digestAPOP("guess") + "\x00" + stamp + "\x00", 1},
		"apop without secret":   {"ann@example.test\x00" + digestAPOP("ann's password") + "\x00" + stamp + "\x00", 1},
		"cram, wrong":           {"joe@example.test\x00" + digestCRAM("guess") + "\x00" + stamp + "\x00", 1},
		"unknown user":          {"bob@example.test\x00pass word 1\x00\x00", 1},
		"NUL-cut login":         {"joe@example.test\x01\x00pass word 1\x00\x00", 1},
		"over 512 bytes":        {"joe@example.test\x00" + strings.Repeat("x", 600) + "\x00\x00", 1},
		"no NUL after password": {"joe@example.test\x00pass word 1", 2},
		"no NUL at all":         {"joe@example.test", 2},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := run(t, proc{args: []string{"checkpassword", "touch", "/tmp/should-not-run"}, env: []string{"QMAILHOME=" + root}, fd3: []byte(tc.in), as: as})
			if r.code != tc.code {
				t.Errorf("exit %d (stderr %q), want %d", r.code, r.stderr, tc.code)
			}
			if tc.code == 1 && time.Since(start) < checkpw.FailDelay {
				t.Errorf("a failed attempt took %v, want at least %v", time.Since(start), checkpw.FailDelay)
			}
		})
	}
}

func TestCheckpasswordMisuseAndTrouble(t *testing.T) {
	root := buildInstance(t, nil)
	env := []string{"QMAILHOME=" + root}
	login := []byte("joe@example.test\x00pass word 1\x00\x00")

	if r := run(t, proc{args: []string{"checkpassword"}, env: env, fd3: login}); r.code != 2 || !strings.Contains(r.stderr, "usage") {
		t.Errorf("no program: exit %d %q, want 2 and a usage line", r.code, r.stderr)
	}
	if r := run(t, proc{args: []string{"checkpassword", "true"}, env: env}); r.code != 2 || !strings.Contains(r.stderr, "fd 3 is not open") {
		t.Errorf("fd 3 closed: exit %d %q, want 2", r.code, r.stderr)
	}
	if r := run(t, proc{args: []string{"checkpassword", "--help"}}); r.code != 0 || !strings.Contains(r.stderr, "usage: checkpassword PROGRAM") {
		t.Errorf("--help: exit %d %q", r.code, r.stderr)
	}
	// Flags after the program belong to the program.
	if r := run(t, proc{args: []string{"checkpassword", "sh", "-c", "exit 0", "--bogus"}, env: env, fd3: login}); r.code != 0 {
		t.Errorf("program's own flags: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, proc{args: []string{"checkpassword", "/nonexistent/program"}, env: env, fd3: login}); r.code != 111 {
		t.Errorf("program missing: exit %d %q, want 111", r.code, r.stderr)
	}
	// A program's own exit status passes through: checkpassword execs it.
	if r := run(t, proc{args: []string{"checkpassword", "sh", "-c", "exit 42"}, env: env, fd3: login}); r.code != 42 {
		t.Errorf("program exit 42 came back as %d", r.code)
	}
	// A damaged database is temporary trouble, never a login or a "bad
	// password" (exit 111, and the log names the file).
	shadow := filepath.Join(root, "domains/example.test/shadow")
	if err := os.WriteFile(shadow, []byte("joe:not-a-hash:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, proc{args: []string{"checkpassword", "true"}, env: env, fd3: login}); r.code != 111 || !strings.Contains(r.stderr, "domains/example.test/shadow:1") {
		t.Errorf("corrupt shadow: exit %d %q, want 111 naming the file", r.code, r.stderr)
	}
}

// As root, checkpassword runs the program as the virtual mailbox owner,
// with no supplementary groups.
func TestCheckpasswordDropsPrivileges(t *testing.T) {
	testutil.NeedRoot(t)
	root := buildInstance(t, nil)
	v, err := user.Lookup("qmailv")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, proc{args: append([]string{"checkpassword"}, report...), env: []string{"QMAILHOME=" + root},
		fd3: []byte("joe@example.test\x00pass word 1\x00\x00")})
	f := strings.Split(r.stdout, "|")
	if r.code != 0 || len(f) != 6 || f[4] != v.Uid || f[5] != v.Gid {
		t.Errorf("ran as %q (exit %d, %s); want uid %s and only group %s", r.stdout, r.code, r.stderr, v.Uid, v.Gid)
	}
}

// Installed setuid root (so qmail-smtpd's qmaild can run it), checkpassword
// must not let its caller point QMAILHOME at a database of the caller's
// making (SPEC §4); run by root, it honours QMAILHOME.
func TestCheckpasswordSetuidIgnoresQMAILHOME(t *testing.T) {
	testutil.NeedRoot(t)
	root := buildInstance(t, nil)
	dir := ownedDir(t, nil)
	bin := filepath.Join(dir, "checkpassword")
	data, err := os.ReadFile(filepath.Join(testutil.Bin(t), "checkpassword"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	login := []byte("joe@example.test\x00pass word 1\x00\x00")
	if _, err := os.Stat("/var/qmail/domains/example.test"); err == nil {
		t.Skip("/var/qmail hosts example.test: this test needs it not to")
	}
	r := runPath(t, bin, proc{args: []string{"checkpassword", "true"}, env: []string{"QMAILHOME=" + root}, fd3: login, as: nobody})
	if r.code != 1 {
		t.Errorf("setuid run by nobody with QMAILHOME set: exit %d (%s), want 1: the database under QMAILHOME must be ignored", r.code, r.stderr)
	}
	r = runPath(t, bin, proc{args: []string{"checkpassword", "true"}, env: []string{"QMAILHOME=" + root}, fd3: login})
	if r.code != 0 {
		t.Errorf("setuid run by root: exit %d (%s), want 0", r.code, r.stderr)
	}
}
