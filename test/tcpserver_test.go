//go:build integration

package test

// qmail-tcpserver next to ucspi-tcp's tcpserver: the same command lines,
// the same rules databases (compiled by the real tcprules), and what a
// client, the program and the log see must agree.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
	"github.com/quail-mta/quail/pkg/timerslack"
)

// tsImpl is a tcpserver implementation under test.
type tsImpl struct{ name, path string }

func tsQuail(t testing.TB) tsImpl {
	return tsImpl{"qmail-tcpserver", filepath.Join(testutil.Bin(t), "qmail-tcpserver")}
}

func tsUcspi(t testing.TB) tsImpl {
	return tsImpl{"tcpserver", testutil.NeedTool(t, "tcpserver", "ucspi-tcp")}
}

// tsBoth is ucspi-tcp's tcpserver, then ours.
func tsBoth(t *testing.T) []tsImpl { return []tsImpl{tsUcspi(t), tsQuail(t)} }

// tsRunning is a started server.
type tsRunning struct {
	cmd  *exec.Cmd
	port int
	log  *testutil.SyncBuffer
	done chan error
}

type tsStart struct {
	env  []string            // the server's whole environment
	cred *syscall.Credential // nil: as ourselves
	dir  string
}

// tsServe starts impl with -1 and args, and reads the port it bound. It
// stops the server (SIGTERM) when the test ends.
func tsServe(t testing.TB, impl tsImpl, st tsStart, args ...string) *tsRunning {
	t.Helper()
	cmd := exec.Command(impl.path, append([]string{"-1"}, args...)...)
	cmd.Env = st.env
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
	}
	cmd.Dir = st.dir
	if st.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: st.cred}
	}
	r := &tsRunning{cmd: cmd, log: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	// Pipes of our own: exec.Cmd's would make Wait wait for the
	// programs, which keep the server's stderr.
	out, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, logW
	err = cmd.Start()
	outW.Close()
	logW.Close()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(r.log, logR)
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		out.Close()
		logR.Close()
	})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("%s %q: no port printed: %v\n%s", impl.name, args, err, r.log.String())
	}
	r.port, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("%s: port line %q", impl.name, line)
	}
	return r
}

func (r *tsRunning) addr(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(r.port))
}

// waitLog waits for re in the log, and returns the log.
func (r *tsRunning) waitLog(t testing.TB, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := r.log.String()
		if rx.MatchString(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("log never matched %s:\n%s", re, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tsRules compiles rules text with the real tcprules.
func tsRules(t *testing.T, dir, text string) string {
	t.Helper()
	bin := testutil.NeedTool(t, "tcprules", "ucspi-tcp")
	path := filepath.Join(dir, "rules.cdb")
	cmd := exec.Command(bin, path, filepath.Join(dir, "rules.tmp"))
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcprules: %v\n%s", err, out)
	}
	return path
}

// TestTCPServerEnvironmentLikeUcspi: for each command line, the program
// sees the same variables under both servers (ports aside).
func TestTCPServerEnvironmentLikeUcspi(t *testing.T) {
	dir := t.TempDir()
	rules := tsRules(t, dir, `127.0.0.1:allow,RELAYCLIENT="",QMAILQUEUE="/var/qmail/bin/qmail-scan"
10.:deny
:allow
`)
	// Variables the servers must replace or remove whatever they inherit.
	env := []string{"PATH=/usr/bin:/bin", "TCPREMOTEHOST=stale", "TCPREMOTEINFO=stale", "TCPLOCALHOST=stale", "PROTO=UDP", "KEEP=me"}
	for _, args := range [][]string{
		{"-R", "-H", "-l", "0", "-x", rules},
		{"-RHl", "mx.example.org", "-x", rules},
		{"-H", "-l", "0"}, // -r: no identd answers on this host
		{"-R", "-H", "-l", "0", "-X", "-x", filepath.Join(dir, "missing.cdb")},
		{"-R", "-H", "-l", "0", "-B", "220 hi\r\n", "-x", rules},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			seen := map[string]map[string]string{}
			for _, impl := range tsBoth(t) {
				srv := tsServe(t, impl, tsStart{env: env}, append(args, "127.0.0.1", "0", "/usr/bin/env")...)
				out := testutil.Talk(t, srv.addr("127.0.0.1"), "")
				if b, ok := strings.CutPrefix(out, "220 hi\r\n"); ok {
					out = b
				} else if strings.Contains(strings.Join(args, " "), "-B") {
					t.Errorf("%s: no banner first: %q", impl.name, out)
				}
				e := testutil.ParseEnv(out)
				if e["TCPLOCALPORT"] != strconv.Itoa(srv.port) {
					t.Errorf("%s: TCPLOCALPORT=%q, bound %d", impl.name, e["TCPLOCALPORT"], srv.port)
				}
				if p, err := strconv.Atoi(e["TCPREMOTEPORT"]); err != nil || p <= 0 {
					t.Errorf("%s: TCPREMOTEPORT=%q", impl.name, e["TCPREMOTEPORT"])
				}
				delete(e, "TCPLOCALPORT")
				delete(e, "TCPREMOTEPORT")
				seen[impl.name] = e
			}
			u, q := seen["tcpserver"], seen["qmail-tcpserver"]
			if fmt.Sprint(u) != fmt.Sprint(q) {
				t.Errorf("environments differ:\n tcpserver:       %v\n qmail-tcpserver: %v", u, q)
			}
			if strings.Contains(strings.Join(args, " "), rules) {
				if v, ok := q["RELAYCLIENT"]; !ok || v != "" || q["QMAILQUEUE"] != "/var/qmail/bin/qmail-scan" {
					t.Errorf("the 127.0.0.1 rule's variables: RELAYCLIENT=%q (set %v) QMAILQUEUE=%q", v, ok, q["QMAILQUEUE"])
				}
			}
			if q["KEEP"] != "me" || q["PROTO"] != "TCP" {
				t.Errorf("KEEP=%q PROTO=%q", q["KEEP"], q["PROTO"])
			}
		})
	}
}

// tsNormalize makes two servers' -v logs comparable: process ids and
// port numbers become P.
func tsNormalize(log string) string {
	for _, re := range []struct{ rx, to string }{
		{`(pid|ok|deny|end) \d+`, "$1 P"},
		{`:\d+ `, ":P "},
		{`:\d+\n`, ":P\n"},
	} {
		log = regexp.MustCompile(re.rx).ReplaceAllString(log, re.to)
	}
	return log
}

// TestTCPServerLogLikeUcspi: an allowed, a denied and a dropped
// connection give the same -v log lines.
func TestTCPServerLogLikeUcspi(t *testing.T) {
	logs := map[string]string{}
	for _, impl := range tsBoth(t) {
		dir := t.TempDir()
		rules := filepath.Join(dir, "rules.cdb")
		allow := tsRules(t, t.TempDir(), "127.0.0.1:allow,A=\"1\"\n")
		deny := tsRules(t, t.TempDir(), "127.0.0.1:deny\n")
		os.Rename(allow, rules)
		srv := tsServe(t, impl, tsStart{}, "-v", "-R", "-H", "-l", "me.example", "-x", rules, "127.0.0.1", "0", "sh", "-c", "echo $A; exit 3")
		if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != "1\n" {
			t.Errorf("%s: allowed connection got %q", impl.name, out)
		}
		srv.waitLog(t, `(?s)end.*status: 0/40\n$`)
		os.Rename(deny, rules)
		if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != "" {
			t.Errorf("%s: denied connection got %q", impl.name, out)
		}
		srv.waitLog(t, `(?s)end.*end.*status: 0/40\n$`)
		os.Remove(rules)
		if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != "" {
			t.Errorf("%s: dropped connection got %q", impl.name, out)
		}
		logs[impl.name] = tsNormalize(srv.waitLog(t, `(?s)end.*end.*end.*status: 0/40\n$`))
	}
	want := `tcpserver: status: 0/40
tcpserver: status: 1/40
tcpserver: pid P from 127.0.0.1
tcpserver: ok P me.example:127.0.0.1:P :127.0.0.1::P
tcpserver: end P status 768
tcpserver: status: 0/40
tcpserver: status: 1/40
tcpserver: pid P from 127.0.0.1
tcpserver: deny P me.example:127.0.0.1:P :127.0.0.1::P
tcpserver: end P status 25600
tcpserver: status: 0/40
tcpserver: status: 1/40
tcpserver: pid P from 127.0.0.1
tcpserver: warning: dropping connection, unable to read RULES: file does not exist
tcpserver: end P status 28416
tcpserver: status: 0/40
`
	for name, l := range logs {
		l = regexp.MustCompile(`unable to read \S+:`).ReplaceAllString(l, "unable to read RULES:")
		if l != want {
			t.Errorf("%s -v log:\n%s\nwant:\n%s", name, l, want)
		}
	}
}

// TestTCPServerLimitLikeUcspi: with -c 1 a second connection waits until
// the first program exits.
func TestTCPServerLimitLikeUcspi(t *testing.T) {
	for _, impl := range tsBoth(t) {
		t.Run(impl.name, func(t *testing.T) {
			srv := tsServe(t, impl, tsStart{}, "-v", "-c", "1", "-RHl0", "127.0.0.1", "0", "sh", "-c", `read x; echo "done $x"`)
			first, err := net.Dial("tcp", srv.addr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			srv.waitLog(t, `ok \d+`)
			second, err := net.Dial("tcp", srv.addr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			io.WriteString(second, "b\n")
			second.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := second.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("second connection served while the first runs: %d bytes, %v", n, err)
			}
			io.WriteString(first, "a\n")
			first.SetReadDeadline(time.Now().Add(5 * time.Second))
			if out, _ := io.ReadAll(first); string(out) != "done a\n" {
				t.Errorf("first: %q", out)
			}
			second.SetReadDeadline(time.Now().Add(5 * time.Second))
			if out, _ := io.ReadAll(second); string(out) != "done b\n" {
				t.Errorf("second, after the first ended: %q", out)
			}
			l := srv.waitLog(t, `(?s)end.*end.*status: 0/1\n$`)
			if strings.Contains(l, "status: 2/1") {
				t.Errorf("past the limit:\n%s", l)
			}
			if z := tsZombies(t, srv.cmd.Process.Pid); len(z) > 0 {
				t.Errorf("unreaped children: %v", z)
			}
		})
	}
}

// tsZombies lists the dead, unreaped children of pid.
func tsZombies(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var z []string
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			z = append(z, s)
		}
	}
	return z
}

// TestTCPServerSocketLikeUcspi: the program gets a blocking socket on fd
// 0 and 1, with Nagle on unless -D.
func TestTCPServerSocketLikeUcspi(t *testing.T) {
	py := testutil.NeedTool(t, "python3", "python3")
	probe := `import os, socket
s = socket.fromfd(0, socket.AF_INET, socket.SOCK_STREAM)
print(os.get_blocking(0), os.get_blocking(1), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, os.path.samestat(os.fstat(0), os.fstat(1)))`
	for _, tc := range []struct{ flag, want string }{
		{"-d", "True True False True\n"},
		{"-D", "True True True True\n"},
	} {
		for _, impl := range tsBoth(t) {
			srv := tsServe(t, impl, tsStart{}, tc.flag, "-RHl0", "127.0.0.1", "0", py, "-c", probe)
			if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != tc.want {
				t.Errorf("%s %s: blocking fd0 fd1, nodelay, same socket = %q, want %q", impl.name, tc.flag, out, tc.want)
			}
		}
	}
}

// The programs qmail-tcpserver runs get quail's session timer slack
// (pkg/timerslack), even when the server itself was started without it:
// one per connection, and the first of a -k worker's connections.
func TestTCPServerTimerSlack(t *testing.T) {
	for _, mode := range [][]string{nil, {"-k", "5"}} {
		args := append(append(mode, "-RHl0"), "127.0.0.1", "0", "cat", "/proc/self/timerslack_ns")
		srv := tsServe(t, tsQuail(t), tsStart{}, args...)
		out := testutil.Talk(t, srv.addr("127.0.0.1"), "")
		if n, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || n < timerslack.SessionSlack {
			t.Errorf("%v: the program's timer slack: %q ns, want at least %d", mode, out, timerslack.SessionSlack)
		}
	}
}

func TestTCPServerIPv6(t *testing.T) {
	q := tsQuail(t)
	srv := tsServe(t, q, tsStart{}, "-RHl0", "::1", "0", "/usr/bin/env")
	e := testutil.ParseEnv(testutil.Talk(t, srv.addr("::1"), ""))
	if e["TCPREMOTEIP"] != "::1" || e["TCPLOCALIP"] != "::1" || e["PROTO"] != "TCP" {
		t.Errorf("on [::1]: %v", e)
	}
	dual := tsServe(t, q, tsStart{}, "-v", "-RHl0", "::", "0", "/usr/bin/env")
	e = testutil.ParseEnv(testutil.Talk(t, dual.addr("127.0.0.1"), ""))
	if e["TCPREMOTEIP"] != "127.0.0.1" || e["TCPLOCALIP"] != "127.0.0.1" {
		t.Errorf("IPv4 client of [::]: %v", e)
	}
	e = testutil.ParseEnv(testutil.Talk(t, dual.addr("::1"), ""))
	if e["TCPREMOTEIP"] != "::1" {
		t.Errorf("IPv6 client of [::]: %v", e)
	}
	// The log keeps tcpserver's colon-separated fields: colons in an
	// address become "?", as tcpserver's safe-printing does.
	dual.waitLog(t, `tcpserver: pid \d+ from ::1\ntcpserver: ok \d+ 0:\?\?1:\d+ :\?\?1::\d+\n`)
}

// TestTCPServerIDsAsRoot: -u and -g (and -U) switch the server, and so
// its programs, to those ids and only that group, as tcpserver does.
func TestTCPServerIDsAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	for _, impl := range tsBoth(t) {
		for _, args := range [][]string{{"-u", "65534", "-g", "65534"}, {"-U"}} {
			env := []string{"PATH=/usr/bin:/bin", "UID=65534", "GID=65534"}
			srv := tsServe(t, impl, tsStart{env: env}, append(args, "-v", "-RHl0", "127.0.0.1", "0", "sh", "-c", "id -u; id -g; id -G")...)
			if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != "65534\n65534\n65534\n" {
				t.Errorf("%s %v: program's uid, gid, groups: %q", impl.name, args, out)
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534\n", "Gid:\t65534\t65534\t65534\t65534\n", "Groups:\t65534 \n"} {
				if !strings.Contains(string(status), want) {
					t.Errorf("%s %v: the server itself lacks %q:\n%s", impl.name, args, want, status)
				}
			}
		}
	}
}

// TestTCPServerUnprivileged: run by an ordinary user (nobody, when the
// tests run as root), the programs run as that user, and -u to anyone
// else fails at start as tcpserver fails.
func TestTCPServerUnprivileged(t *testing.T) {
	var cred *syscall.Credential
	uid := os.Getuid()
	if uid == 0 {
		cred, uid = nobody, int(nobody.Uid)
	}
	dir := ownedDir(t, cred)
	q := tsQuail(t)
	srv := tsServe(t, q, tsStart{cred: cred, dir: dir}, "-RHl0", "127.0.0.1", "0", "id", "-u")
	if out := testutil.Talk(t, srv.addr("127.0.0.1"), ""); out != strconv.Itoa(uid)+"\n" {
		t.Errorf("program ran as %q, want %d", out, uid)
	}
	other := strconv.Itoa(uid + 1)
	texts := map[string]string{}
	impls := []tsImpl{q}
	if _, err := exec.LookPath("tcpserver"); err == nil || testutil.CI() {
		impls = append(impls, tsUcspi(t))
	}
	for _, impl := range impls {
		cmd := exec.Command(impl.path, "-u", other, "-g", other, "127.0.0.1", "0", "true")
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 111 {
			t.Errorf("%s -u %s as uid %d: %v, want exit 111", impl.name, other, uid, err)
		}
		texts[impl.name] = string(out)
	}
	if got, want := texts["qmail-tcpserver"], "tcpserver: fatal: unable to set gid: permission denied\n"; got != want {
		t.Errorf("qmail-tcpserver: %q, want %q", got, want)
	}
	if u, ok := texts["tcpserver"]; ok && u != texts["qmail-tcpserver"] {
		t.Errorf("tcpserver said %q, qmail-tcpserver %q", u, texts["qmail-tcpserver"])
	}
}

// TestTCPServerTermLikeUcspi: SIGTERM stops the server at once; programs
// already running go on.
func TestTCPServerTermLikeUcspi(t *testing.T) {
	for _, impl := range tsBoth(t) {
		t.Run(impl.name, func(t *testing.T) {
			srv := tsServe(t, impl, tsStart{}, "-v", "-RHl0", "127.0.0.1", "0", "sh", "-c", `read x; echo "bye $x"`)
			c, err := net.Dial("tcp", srv.addr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			srv.waitLog(t, `ok \d+`)
			srv.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-srv.done:
				if err != nil {
					t.Errorf("exit after SIGTERM: %v, want 0", err)
				}
				srv.done <- err
			case <-time.After(5 * time.Second):
				t.Fatal("still running 5s after SIGTERM")
			}
			if c2, err := net.DialTimeout("tcp", srv.addr("127.0.0.1"), time.Second); err == nil {
				c2.Close()
				t.Error("accepting after SIGTERM")
			}
			io.WriteString(c, "x\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if out, _ := io.ReadAll(c); string(out) != "bye x\n" {
				t.Errorf("the running program after SIGTERM: %q", out)
			}
		})
	}
}

// TestTCPServerBacklogLikeUcspi: -b is the listen backlog, which ss shows
// as the listening socket's Send-Q.
func TestTCPServerBacklogLikeUcspi(t *testing.T) {
	ss := testutil.NeedTool(t, "ss", "iproute2")
	for _, tc := range []struct {
		args []string
		want string
	}{{[]string{"-b", "7"}, "7"}, {nil, "20"}} {
		for _, impl := range tsBoth(t) {
			srv := tsServe(t, impl, tsStart{}, append(tc.args, "127.0.0.1", "0", "true")...)
			out, err := exec.Command(ss, "-Hltn", fmt.Sprintf("sport = :%d", srv.port)).Output()
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(out))
			if len(f) < 3 || f[2] != tc.want {
				t.Errorf("%s %v: ss says %q, want backlog %s", impl.name, tc.args, out, tc.want)
			}
		}
	}
}

// TestTCPServerStartErrorsLikeUcspi: bad ports and addresses fail with
// tcpserver's words and exit code.
func TestTCPServerStartErrorsLikeUcspi(t *testing.T) {
	for _, args := range [][]string{
		{"0", "no-such-service", "true"},
		{"192.0.2.1", "25", "true"},
	} {
		said := map[string]string{}
		for _, impl := range tsBoth(t) {
			cmd := exec.Command(impl.path, args...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 111 {
				t.Errorf("%s %q: %v, want exit 111", impl.name, args, err)
			}
			said[impl.name] = string(out)
		}
		if said["tcpserver"] != said["qmail-tcpserver"] || !strings.HasPrefix(said["tcpserver"], "tcpserver: fatal: ") {
			t.Errorf("%q: tcpserver said %q, qmail-tcpserver %q", args, said["tcpserver"], said["qmail-tcpserver"])
		}
	}
}

func TestTCPServerUsage(t *testing.T) {
	bin := filepath.Join(testutil.Bin(t), "qmail-tcpserver")
	res := runPath(t, bin, proc{args: []string{"qmail-tcpserver", "--help"}})
	if res.code != 0 || !strings.Contains(res.stderr, "usage: qmail-tcpserver") || !strings.Contains(res.stderr, "-x CDB") {
		t.Errorf("--help: %d %q", res.code, res.stderr)
	}
	for _, args := range [][]string{{}, {"0", "25"}, {"-z", "0", "25", "true"}, {"-c", "0", "0", "25", "true"}} {
		res := runPath(t, bin, proc{args: append([]string{"qmail-tcpserver"}, args...)})
		lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
		if res.code != 100 || len(lines) != 2 || !strings.HasPrefix(lines[0], "qmail-tcpserver: ") || !strings.HasPrefix(lines[1], "usage: ") {
			t.Errorf("%q: exit %d, stderr %q; want 100, one error line and the usage line", args, res.code, res.stderr)
		}
	}
}

// BenchmarkTCPServer is connections per second through qmail-tcpserver
// and ucspi-tcp's tcpserver, measured alternately in the same run. Both
// run the static hello program with the flags of a typical qmail-smtpd
// service (-v -R -l, a rules database); the client connects, reads the
// greeting and the close. "quail/ucspi" is the ratio of the time per
// connection (below 1: qmail-tcpserver is faster). The parallel variant
// opens 8 connections at a time. procs/conn counts every clone on the
// machine, the Go program's threads included, over both servers.
func BenchmarkTCPServer(b *testing.B) {
	hello := buildHello(b)
	dir := b.TempDir()
	rules := filepath.Join(dir, "rules.cdb")
	cmd := exec.Command(testutil.NeedTool(b, "tcprules", "ucspi-tcp"), rules, rules+".tmp")
	cmd.Stdin = strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("tcprules: %v %s", err, out)
	}
	args := []string{"-v", "-R", "-l", "mx.example.org", "-x", rules, "-c", "40", "127.0.0.1", "0", hello}
	servers := map[string]*tsRunning{}
	for _, impl := range []tsImpl{tsUcspi(b), tsQuail(b)} {
		// -H too: reverse DNS would measure the resolver, not the launcher.
		servers[impl.name] = tsServe(b, impl, tsStart{}, append([]string{"-H"}, args...)...)
	}
	one := func(addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		out, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(out) != "hello, world\n" {
			b.Fatalf("%q, %v", out, err)
		}
	}
	order := []string{"tcpserver", "qmail-tcpserver"}
	measure := func(b *testing.B, width int) {
		var spent [2]time.Duration
		conns := 0
		before := forks(b)
		for b.Loop() {
			for i, name := range order {
				addr := servers[name].addr("127.0.0.1")
				start := time.Now()
				var wg sync.WaitGroup
				for range width {
					wg.Add(1)
					go func() { defer wg.Done(); one(addr) }()
				}
				wg.Wait()
				spent[i] += time.Since(start)
			}
			conns += width
		}
		b.ReportMetric(float64(forks(b)-before)/float64(2*conns), "procs/conn")
		b.ReportMetric(float64(conns)/spent[0].Seconds(), "ucspi-conn/s")
		b.ReportMetric(float64(conns)/spent[1].Seconds(), "quail-conn/s")
		b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "quail/ucspi")
	}
	b.Run("serial", func(b *testing.B) { measure(b, 1) })
	b.Run("parallel8", func(b *testing.B) { measure(b, 8) })
}

// TestTCPServerReuseSMTPD: qmail-smtpd under qmail-tcpserver -k 5, for a
// root install (sessions as qmaild) and as an ordinary user. Sessions in
// turn, alternately from a client the rules let relay and from one they
// do not, each deliver a message: five go to one process, the next two
// to a second, and no session inherits the previous one's RELAYCLIENT or
// addresses.
func TestTCPServerReuseSMTPD(t *testing.T) {
	t.Run("root install", func(t *testing.T) {
		testutil.NeedRoot(t)
		testTCPServerReuseSMTPD(t, nil, false)
	})
	t.Run("ordinary user", func(t *testing.T) {
		var cred *syscall.Credential
		if os.Geteuid() == 0 {
			cred = nobody
		}
		testTCPServerReuseSMTPD(t, cred, false)
	})
	// A wrapper that execs qmail-smtpd (as rblsmtpd does) must run for
	// every connection: qmail-smtpd then takes no part in reuse.
	t.Run("behind a wrapper", func(t *testing.T) {
		var cred *syscall.Credential
		if os.Geteuid() == 0 {
			cred = nobody
		}
		testTCPServerReuseSMTPD(t, cred, true)
	})
}

func testTCPServerReuseSMTPD(t *testing.T, cred *syscall.Credential, wrapped bool) {
	py := testutil.NeedTool(t, "python3", "python3")
	root := smtpInstance(t, cred)
	u := startUnit(t, root, "", cred)
	defer u.term(t)
	dir := ownedDir(t, cred)
	rules := tsRules(t, dir, "127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n")
	args := []string{"-v", "-k", "5", "-R", "-H", "-l", "mx.example.com", "-x", rules}
	if cred == nil && os.Geteuid() == 0 {
		d := lookupIDs(t, "qmaild")
		args = append(args, "-u", strconv.Itoa(d[0]), "-g", strconv.Itoa(d[1]))
	}
	args = append(args, "127.0.0.1", "0")
	if wrapped {
		args = append(args, "/usr/bin/env")
	}
	args = append(args, filepath.Join(root, "bin", "qmail-smtpd"))
	srv := tsServe(t, tsImpl{"qmail-tcpserver", filepath.Join(root, "bin", "qmail-tcpserver")},
		tsStart{env: []string{"QMAILHOME=" + root, "PATH=/usr/bin:/bin"}, cred: cred, dir: dir}, args...)

	script := `
import smtplib, sys
port, src, n = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(src, 0))
s.ehlo("client.example.org")
s.mail("alice@example.org")
print("relay", s.rcpt("someone@elsewhere.example")[0])
s.rset()
s.sendmail("alice@example.org", ["joe@example.test"], "Subject: reuse %s from %s\r\n\r\nhello\r\n" % (n, src))
print("sent")
s.quit()
`
	const sessions = 7
	for i := range sessions {
		src := []string{"127.0.0.1", "127.0.0.2"}[i%2]
		out, err := exec.Command(py, "-c", script, strconv.Itoa(srv.port), src, strconv.Itoa(i)).CombinedOutput()
		relay := map[string]string{"127.0.0.1": "250", "127.0.0.2": "553"}[src]
		if err != nil || string(out) != "relay "+relay+"\nsent\n" {
			t.Fatalf("session %d from %s: %v\n%s\nwant relay %s; log:\n%s", i, src, err, out, relay, srv.log)
		}
		// The process is reused only once it has reported the session
		// over, which its end line shows.
		srv.waitLog(t, fmt.Sprintf(`^(?s:(.*?tcpserver: end \d+ status \d+\n){%d})`, i+1))
	}
	l := srv.log.String()
	var pids []string
	for _, m := range regexp.MustCompile(`tcpserver: ok (\d+) `).FindAllStringSubmatch(l, -1) {
		pids = append(pids, m[1])
	}
	ends := regexp.MustCompile(`tcpserver: end (\d+) status (\d+)\n`).FindAllStringSubmatch(l, -1)
	if len(pids) != sessions || len(ends) != sessions {
		t.Fatalf("%d ok and %d end lines for %d sessions:\n%s", len(pids), len(ends), sessions, l)
	}
	for i, e := range ends {
		if e[1] != pids[i] || e[2] != "0" {
			t.Errorf("session %d: ok %s, then %q", i, pids[i], e[0])
		}
	}
	a, b := pids[0], pids[5]
	distinct := map[string]bool{}
	for _, p := range pids {
		distinct[p] = true
	}
	switch want := []string{a, a, a, a, a, b, b}; {
	case wrapped && len(distinct) != sessions:
		t.Errorf("behind a wrapper, sessions served by %v, want a process each", pids)
	case !wrapped && (a == b || fmt.Sprint(pids) != fmt.Sprint(want)):
		t.Errorf("sessions served by %v, want five by one process and two by another (-k 5)", pids)
	}

	files := waitMaildir(t, filepath.Join(root, "domains", "example.test", "joe", "Maildir"), sessions, u)
	got := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(b)
		m := regexp.MustCompile(`Subject: reuse (\d) from (\S+)\n`).FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("unexpected message:\n%s", msg)
			continue
		}
		got[m[1]] = true
		if !strings.Contains(msg, "(HELO client.example.org) ("+m[2]+")\n") {
			t.Errorf("message %s from %s: Received line of another client:\n%s", m[1], m[2], msg)
		}
	}
	if len(got) != sessions || len(files) != sessions {
		t.Errorf("%d messages delivered, %d distinct, want %d: %v", len(files), len(got), sessions, got)
	}
}
