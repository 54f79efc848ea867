// Package testutil holds helpers shared by quail's tests: finding
// third-party tools, and building quail's own programs to run as
// processes.
package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// CI reports whether the tests run in CI, where a missing tool is a
// failure (scripts/test installs them all) rather than a reason to skip.
func CI() bool { return os.Getenv("CI") == "true" }

// NeedTool returns the path of a third-party program the test needs. When
// it is missing the test fails in CI and is skipped elsewhere, saying
// which Debian package brings it.
func NeedTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if CI() {
		tb.Fatalf("%s is missing: scripts/test should have installed it (apt-get install %s)", name, debianPackage)
	}
	tb.Skipf("%s is missing: apt-get install %s, or run scripts/test, which installs it", name, debianPackage)
	return ""
}

// NeedRoot skips a test of the root install when not running as root. CI
// runs as root, so there these tests always run.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		if CI() {
			tb.Fatal("CI must run as root: this test checks privilege separation")
		}
		tb.Skip("needs root: tests the privilege separation of a root install")
	}
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildOut  []byte
)

// Bin builds every program under cmd/ once per test binary and returns
// the directory holding them. The directory is world-readable, so tests
// can run the programs as other users. $QUAIL_TEST_BIN names a directory
// of programs built already (scripts/build DIR) to use instead, so that a
// profiler finds their symbols after the test.
func Bin(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv("QUAIL_TEST_BIN"); dir != "" {
		return dir
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "quail-bin-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(binDir, 0o755); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = ModuleRoot(tb)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as scripts/build makes them
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		tb.Fatalf("building quail's programs: %v\n%s", buildErr, buildOut)
	}
	return binDir
}

// RemoveBin deletes what Bin built; call it from TestMain after m.Run.
func RemoveBin() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// SyncBuffer is a buffer a test may read while another goroutine (a
// child process's output copier) writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
