package reuse

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/pollfd"
)

// childArg makes the test binary report what FromEnv made of its fd 3.
const childArg = "--reuse-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == childArg {
		os.Stdout.WriteString(childReport())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childReport is "usable" or "refused", then whether $QUAIL_REUSE_FD is
// still set and what became of fd 3.
func childReport() string {
	w := FromEnv()
	r := "refused"
	if w != nil {
		r = "usable"
	}
	if _, ok := os.LookupEnv(EnvFD); ok {
		r += " env-left"
	}
	if _, ok := os.LookupEnv(EnvProgram); ok {
		r += " program-left"
	}
	flags, err := fcntl(3, syscall.F_GETFD)
	switch {
	case err == syscall.EBADF:
		r += " fd3-closed"
	case err != nil:
		r += " fd3-" + err.Error()
	case flags&syscall.FD_CLOEXEC != 0:
		r += " fd3-cloexec"
	default:
		r += " fd3-inherited"
	}
	return r
}

func fcntl(fd, cmd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func pair(t *testing.T, typ int) (a, b int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// TestFromEnvChild: only a SOCK_SEQPACKET socket made by the parent is
// taken; either way the variable is removed, and the descriptor is kept
// from the program's children or closed.
func TestFromEnvChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		typ  int
		argv []string
		want string
		prog string // the program the launcher says it ran; "" for argv[0]
	}{
		{"seqpacket from the parent", syscall.SOCK_SEQPACKET, []string{exe, childArg}, "usable fd3-cloexec", ""},
		{"stream from the parent", syscall.SOCK_STREAM, []string{exe, childArg}, "refused fd3-closed", ""},
		{"datagram from the parent", syscall.SOCK_DGRAM, []string{exe, childArg}, "refused fd3-closed", ""},
		// A wrapper that forks: the program's parent is the shell.
		{"through a forking wrapper", syscall.SOCK_SEQPACKET, []string{sh, "-c", `"$0" "$1"; exit $?`, exe, childArg}, "refused fd3-closed", ""},
		// One that execs: the program run was the shell.
		{"through an exec wrapper", syscall.SOCK_SEQPACKET, []string{sh, "-c", `exec "$0" "$1"`, exe, childArg}, "refused fd3-closed", ""},
		// A relative name, as the launcher ran it from the same directory.
		{"relative name", syscall.SOCK_SEQPACKET, []string{exe, childArg}, "usable fd3-cloexec", "./" + filepath.Base(exe)},
		// The launcher says it ran another program.
		{"another program named", syscall.SOCK_SEQPACKET, []string{exe, childArg}, "refused fd3-closed", sh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t, tc.typ)
			defer syscall.Close(a)
			theirs := os.NewFile(uintptr(b), "theirs")
			defer theirs.Close()
			prog := tc.prog
			if prog == "" {
				prog = tc.argv[0]
			}
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			cmd.Dir = filepath.Dir(exe)
			// GORACE: no one-second pause at exit in a -race child.
			cmd.Env = []string{EnvFD + "=3", EnvProgram + "=" + prog, "PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0"}
			cmd.ExtraFiles = []*os.File{theirs}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %v", tc.argv, err)
			}
			if string(out) != tc.want {
				t.Errorf("child says %q, want %q", out, tc.want)
			}
		})
	}
}

// TestFromEnvRefuses: no variable, a bad value, a socket of our own.
func TestFromEnvRefuses(t *testing.T) {
	for _, v := range []string{"", "x", "-1", "0", "2", "3x", "99999"} {
		t.Setenv(EnvFD, v)
		if w := FromEnv(); w != nil {
			t.Errorf("%s=%q: got a channel", EnvFD, v)
		}
		if _, ok := os.LookupEnv(EnvFD); ok {
			t.Errorf("%s=%q: variable left", EnvFD, v)
		}
	}
	os.Unsetenv(EnvFD)
	if w := FromEnv(); w != nil {
		t.Error("no variable: got a channel")
	}
	// Made by this process, not by its parent.
	a, b := pair(t, syscall.SOCK_SEQPACKET)
	defer syscall.Close(b)
	t.Setenv(EnvFD, strconv.Itoa(a))
	if w := FromEnv(); w != nil {
		w.Close()
		t.Error("a socket made by ourselves was taken")
	}
	if _, err := fcntl(a, syscall.F_GETFD); err != syscall.EBADF {
		syscall.Close(a)
		t.Errorf("refused descriptor left open: %v", err)
	}
}

func TestEnvRoundTrip(t *testing.T) {
	for _, env := range [][]string{
		nil,
		{"A=1"},
		{"PATH=/usr/bin:/bin", "RELAYCLIENT=", "X=a=b", "Y=line\nbreak", "Z=\xff"},
	} {
		b := EncodeEnv(env)
		if len(env) > 0 && b[len(b)-1] != 0 {
			t.Errorf("%q: not NUL-terminated: %q", env, b)
		}
		if got := splitEnv(b); !reflect.DeepEqual(got, env) {
			t.Errorf("round trip of %q: %q", env, got)
		}
	}
	// Empty entries are skipped; a last entry may lack its NUL.
	if got, want := splitEnv([]byte("\x00A=1\x00\x00B=2")), []string{"A=1", "B=2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("splitEnv: %q, want %q", got, want)
	}
}

func FuzzSplitEnv(f *testing.F) {
	f.Add([]byte("A=1\x00B=\x00"))
	f.Add([]byte("\x00\x00x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env := splitEnv(b)
		for _, kv := range env {
			if kv == "" || strings.IndexByte(kv, 0) >= 0 {
				t.Fatalf("entry %q from %q", kv, b)
			}
		}
		if again := splitEnv(EncodeEnv(env)); !reflect.DeepEqual(again, env) {
			t.Fatalf("%q: %q then %q", b, env, again)
		}
	})
}

func channel(t *testing.T, fd int) *pollfd.Channel {
	t.Helper()
	ch, err := pollfd.NewChannel(fd)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// launcher reads the worker's "done" from fd, then runs then.
func launcher(fd int, then func()) chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == nil && string(buf[:n]) != Done {
			err = errors.New("first packet " + string(buf[:n]))
		}
		if err == nil {
			then()
		}
		done <- err
	}()
	return done
}

func TestNextStop(t *testing.T) {
	a, b := pair(t, syscall.SOCK_SEQPACKET)
	w := &Worker{ch: channel(t, a)}
	defer w.Close()
	l := launcher(b, func() { syscall.Close(b) })
	env, conn, err := w.Next()
	if err != ErrStop || env != nil || conn != -1 {
		t.Errorf("Next after the launcher closed: %q %d %v, want ErrStop", env, conn, err)
	}
	if err := <-l; err != nil {
		t.Fatal(err)
	}
}

func TestNextHandoff(t *testing.T) {
	a, b := pair(t, syscall.SOCK_SEQPACKET)
	defer syscall.Close(b)
	w := &Worker{ch: channel(t, a)}
	defer w.Close()
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sent := []string{"TCPREMOTEIP=192.0.2.7", "RELAYCLIENT="}
	l := launcher(b, func() {
		// A second descriptor for b: the Channel owns (and closes) it.
		hb, err := syscall.Dup(b)
		if err != nil {
			t.Error(err)
			return
		}
		hc := channel(t, hb)
		defer hc.Close()
		if err := Handoff(hc, sent, int(pw.Fd())); err != nil {
			t.Errorf("Handoff: %v", err)
		}
		pw.Close() // the handed copy is the worker's now
	})
	env, conn, err := w.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := <-l; err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env, sent) {
		t.Errorf("env %q, want %q", env, sent)
	}
	if flags, err := fcntl(conn, syscall.F_GETFD); err != nil || flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor: flags %d, %v; want close-on-exec", flags, err)
	}
	syscall.Write(conn, []byte("through"))
	syscall.Close(conn)
	if got, _ := io.ReadAll(r); string(got) != "through" {
		t.Errorf("the descriptor is not the one sent: read %q", got)
	}
	big, theirs, err := pollfd.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	defer theirs.Close()
	if err := Handoff(big, []string{"X=" + strings.Repeat("x", MaxEnv)}, 0); err == nil {
		t.Error("Handoff sent an environment over MaxEnv")
	}
}

func TestNextMalformed(t *testing.T) {
	a, b := pair(t, syscall.SOCK_SEQPACKET)
	defer syscall.Close(b)
	w := &Worker{ch: channel(t, a)}
	defer w.Close()
	l := launcher(b, func() { syscall.Sendmsg(b, []byte("A=1\x00"), nil, nil, 0) })
	if _, _, err := w.Next(); err == nil || err == ErrStop {
		t.Errorf("a handoff without a descriptor: %v, want an error", err)
	}
	if err := <-l; err != nil {
		t.Fatal(err)
	}
}
