//go:build integration

// Package test holds quail's integration tests: they build the programs
// under cmd/ and run them as processes, over real directories and, as
// later issues land, real sockets and third-party clients and servers.
// Run them with scripts/test, or: go test -tags integration ./test/...
package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBin()
	os.Exit(code)
}

// proc describes one run of a program.
type proc struct {
	args  []string
	env   []string // added to a minimal environment
	stdin string
	as    *syscall.Credential // nil: as ourselves
	fd3   []byte              // when non-nil, written to a pipe on fd 3
	dir   string
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a quail program from testutil.Bin.
func run(t *testing.T, p proc) result {
	t.Helper()
	return runPath(t, filepath.Join(testutil.Bin(t), p.args[0]), p)
}

// runPath runs the program at path with p's arguments.
func runPath(t *testing.T, path string, p proc) result {
	t.Helper()
	cmd := exec.Command(path, p.args[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, p.env...)
	cmd.Stdin = bytes.NewBufferString(p.stdin)
	cmd.Dir = p.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if p.as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.as}
	}
	if p.fd3 != nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{r}
		go func() {
			w.Write(p.fd3)
			w.Close()
		}()
		defer r.Close()
	}
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		t.Fatalf("%v: %v", p.args, err)
	}
	return res
}

// nobody is an ordinary user's identity for tests that run as root.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}

// ownedDir makes a fresh directory that cred's user may write, inside
// directories it may traverse.
func ownedDir(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
