package quota

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/maildir"
)

const domain = "example.test"

// Environment of the helper processes the tests start from this binary.
const (
	helperEnv = "QUAIL_QUOTA_HELPER" // "add" or "over"
	rootEnv   = "QUAIL_QUOTA_ROOT"
	countEnv  = "QUAIL_QUOTA_COUNT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "add":
		// Many Adds of 7 bytes, one message each, as one process.
		n, _ := strconv.Atoi(os.Getenv(countEnv))
		for range n {
			if err := Add(os.Getenv(rootEnv), domain, 7, 1); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	case "over":
		// qmail-smtpd's question, answered as "over error".
		over, err := Over(os.Getenv(rootEnv), domain, 1)
		fmt.Printf("%v %v", over, err)
		os.Exit(0)
	}
	os.Exit(2)
}

// helper runs this test binary as a helper process: as cred's user when
// cred is not nil, from a copy that user may execute.
func helper(t *testing.T, cred *syscall.Credential, env ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		dir := t.TempDir()
		openUp(t, dir)
		data, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		exe = filepath.Join(dir, "quota.test")
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %v: %v\n%s", env, err, stderr.String())
	}
	return out.String()
}

// openUp lets other users traverse dir and the directory above it, as
// in a real instance (t.TempDir makes them 0700).
func openUp(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// newDomain makes an instance holding example.test with the given
// mailboxes (NAME:NAME in passwd, each with an empty Maildir) and
// control/quotas holding quotas.
func newDomain(t testing.TB, quotas string, users ...string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "control", "quotas"), quotas)
	dd := filepath.Join(root, "domains", domain)
	if err := os.MkdirAll(dd, 0o755); err != nil {
		t.Fatal(err)
	}
	var passwd strings.Builder
	for _, u := range users {
		addMaildir(t, root, u)
		fmt.Fprintf(&passwd, "%s:%s\n", u, u)
	}
	writeFile(t, filepath.Join(dd, "passwd"), passwd.String())
	return root
}

// addMaildir makes domains/example.test/NAME/Maildir.
func addMaildir(t testing.TB, root, name string) string {
	t.Helper()
	home := filepath.Join(root, "domains", domain, name)
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(home, "Maildir")
	if err := maildir.Make(md, 0o700); err != nil {
		t.Fatal(err)
	}
	return md
}

func maildirOf(root, user string) string {
	return filepath.Join(root, "domains", domain, user, "Maildir")
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	// Replaced, never rewritten in place, as atomicfile does: passwd's
	// stamp is its inode.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// deliver delivers a message of n body bytes to user's Maildir, as
// qmail-local does, and returns its size on disk. It does not call Add.
func deliver(t testing.TB, root, user string, n int) int64 {
	t.Helper()
	d, err := maildir.Deliver(maildirOf(root, user), bytes.NewReader(bytes.Repeat([]byte("x\n"), n/2)), []byte("Delivered-To: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	return d.Size
}

// reality counts the Maildirs of users with stat, ignoring names.
func reality(t testing.TB, root string, users ...string) Usage {
	t.Helper()
	var u Usage
	for _, user := range users {
		for _, sub := range []string{"new", "cur"} {
			ents, err := os.ReadDir(filepath.Join(maildirOf(root, user), sub))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				info, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				if e.Name()[0] != '.' && info.Mode().IsRegular() {
					u.Bytes += info.Size()
					u.Messages++
				}
			}
		}
	}
	return u
}

// readRecord reads the record as it stands, without recounting.
func readRecord(t testing.TB, root string) (record, bool) {
	t.Helper()
	b, err := newBook(root, domain)
	if err != nil {
		t.Fatal(err)
	}
	rec, found, err := b.read()
	if err != nil {
		t.Fatal(err)
	}
	return rec, found
}

func mustCurrent(t testing.TB, root string) Usage {
	t.Helper()
	u, err := Current(root, domain)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
