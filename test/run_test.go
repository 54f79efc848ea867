//go:build integration

package test

// qmailctl install, cert and run on a whole instance with the real
// programs: the parts log tagged lines, a second run refuses, TERM stops
// everything and leaves no process behind, a part that dies stops the
// rest. As root the instance is a root install (setuid programs,
// qmail-smtpd as qmaild); as an ordinary user nothing is setuid or
// chowned.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
	"github.com/quail-mta/quail/pkg/timerslack"
)

const qrPassword = "e2e pass word"

// qrAs is whom the ordinary-user variants run as: nobody when the tests
// run as root, else ourselves.
func qrAs() *syscall.Credential {
	if os.Geteuid() == 0 {
		return nobody
	}
	return nil
}

// qrInstance makes a complete instance as cred (nil: as ourselves, a
// root install when we are root): init, install from the freshly built
// programs, example.test with joe, and a self-signed certificate.
func qrInstance(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	root := filepath.Join(ownedDir(t, cred), "q")
	for _, p := range []proc{
		{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mail.example.test"}},
		{args: []string{"qmailctl", "install", "--root", root, "--from", testutil.Bin(t)}},
		{args: []string{"qmailctl", "domain", "add", "example.test", "--root", root}},
		{args: []string{"qmailctl", "user", "add", "joe@example.test", "--password-stdin", "--root", root}, stdin: qrPassword + "\n"},
		{args: []string{"qmailctl", "cert", "--self-signed", "--root", root}},
	} {
		p.as = cred
		if r := run(t, p); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", p.args, r.code, r.stderr)
		}
	}
	return root
}

// qrFreeAddr is a local address nobody listens on (for the moment).
func qrFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// qrRunning is a `qmailctl run`.
type qrRunning struct {
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	stderr *testutil.SyncBuffer
	done   chan struct{}
	code   int
	root   string
	addr   map[string]string // service → address
}

// qrStart starts ROOT/bin/qmailctl run as cred with the given services
// on free ports, and waits until it says it is ready.
func qrStart(t *testing.T, root string, cred *syscall.Credential, services ...string) *qrRunning {
	t.Helper()
	r := qrLaunch(t, root, cred, services...)
	r.waitFor(t, "run: ready: ")
	return r
}

func qrLaunch(t *testing.T, root string, cred *syscall.Credential, services ...string) *qrRunning {
	t.Helper()
	r := &qrRunning{out: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{}), root: root, addr: map[string]string{}}
	args := []string{"run", "--root", root}
	for _, s := range services {
		r.addr[s] = qrFreeAddr(t)
		args = append(args, "--"+s, r.addr[s])
	}
	r.cmd = exec.Command(filepath.Join(root, "bin", "qmailctl"), args...)
	r.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.stderr
	if cred != nil {
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := r.cmd.Wait()
		if err != nil {
			r.code = r.cmd.ProcessState.ExitCode()
			if r.code < 0 {
				r.code = 128 + int(r.cmd.ProcessState.Sys().(syscall.WaitStatus).Signal())
			}
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
		for _, pid := range qrLeftovers(root) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return r
}

func (r *qrRunning) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *qrRunning) waitFor(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(r.out.String(), what) {
		if r.exited() || time.Now().After(deadline) {
			t.Fatalf("no %q from qmailctl run (exited: %v, code %d); stdout:\n%s\nstderr:\n%s", what, r.exited(), r.code, r.out, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for qmailctl run to exit and returns its status.
func (r *qrRunning) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(60 * time.Second):
		t.Fatalf("qmailctl run did not exit; stdout:\n%s", r.out)
		return -1
	}
}

// stop sends TERM and returns the exit status.
func (r *qrRunning) stop(t *testing.T) int {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	return r.wait(t)
}

// partPID is the pid qmailctl run reported for a part.
func (r *qrRunning) partPID(t *testing.T, part string) int {
	t.Helper()
	m := regexp.MustCompile(`run: started ` + part + ` \(pid (\d+)\)`).FindStringSubmatch(r.out.String())
	if m == nil {
		t.Fatalf("no pid for %s in:\n%s", part, r.out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// qrLeftovers lists the processes that belong to the instance at root:
// a program from its bin/, or anything run with QMAILHOME=root (the
// launchers from outside bin/).
func qrLeftovers(root string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.HasPrefix(exe, root+"/") || strings.HasPrefix(cwd, root+"/") || cwd == root ||
			strings.Contains("\x00"+string(env), "\x00QMAILHOME="+root+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// qrNoLeftovers fails if a process of the instance is still there a
// moment after everything stopped (orphans may take that long to be
// reaped by init).
func qrNoLeftovers(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := qrLeftovers(root)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				t.Errorf("process %d is still running: %q", pid, cmdline)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qrCheckSlack fails if a program qmailctl run started, directly or
// further down, lacks quail's timer slack (pkg/timerslack): the session
// slack for what qmail-tcpserver runs per connection. Another
// process's slack is readable only with CAP_SYS_NICE, so an ordinary
// user's run checks nothing.
func qrCheckSlack(t *testing.T, pid int, name string, runPid int) {
	t.Helper()
	if pid == runPid {
		return // started by this test, not by quail
	}
	n, err := procSlack(pid)
	if err != nil {
		// A session may end between the listing and the reading.
		if os.Geteuid() == 0 && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d): %v", name, pid, err)
		}
		return
	}
	want := timerslack.Slack
	if name == "qmail-smtpd" || name == "qmail-popup" {
		want = timerslack.SessionSlack
	}
	if n < want {
		t.Errorf("%s (pid %d) has a timer slack of %d ns, want at least %d", name, pid, n, want)
	}
}

// qrGreeting connects and returns the server's first line.
func qrGreeting(t *testing.T, addr string, useTLS bool) (string, net.Conn) {
	t.Helper()
	var c net.Conn
	var err error
	if useTLS {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Errorf("greeting from %s: %v", addr, err)
	}
	return line, c
}

func TestRunAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	testRun(t, nil)
}

func TestRunAsOrdinaryUser(t *testing.T) { testRun(t, qrAs()) }

func testRun(t *testing.T, cred *syscall.Credential) {
	root := qrInstance(t, cred)
	r := qrStart(t, root, cred, "smtp", "submission", "smtps", "pop3")

	greetings := map[string]string{"smtp": "220 mail.example.test", "submission": "220 mail.example.test", "smtps": "220 mail.example.test", "pop3": "+OK <"}
	var open []net.Conn
	for _, service := range []string{"smtp", "submission", "smtps", "pop3"} {
		line, c := qrGreeting(t, r.addr[service], service == "smtps")
		open = append(open, c)
		if !strings.HasPrefix(line, greetings[service]) {
			t.Errorf("%s on %s greets %q, want %q...", service, r.addr[service], line, greetings[service])
		}
	}
	// Who serves: in a root install qmail-smtpd runs as qmaild in group
	// nofiles, qmail-popup as root; otherwise all as the caller.
	wantSMTPD, wantPopup := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getuid())
	if cred != nil {
		wantSMTPD, wantPopup = strconv.Itoa(int(cred.Uid)), strconv.Itoa(int(cred.Uid))
	} else if os.Geteuid() == 0 {
		d, err := user.Lookup("qmaild")
		if err != nil {
			t.Fatal(err)
		}
		wantSMTPD, wantPopup = d.Uid, "0"
	}
	seen := map[string]int{}
	for _, pid := range qrLeftovers(root) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		_, uid, _ := procIdentity(pid)
		qrCheckSlack(t, pid, filepath.Base(exe), r.cmd.Process.Pid)
		switch filepath.Base(exe) {
		case "qmail-smtpd":
			seen["qmail-smtpd"]++
			if uid != wantSMTPD {
				t.Errorf("qmail-smtpd (pid %d) runs as uid %s, want %s", pid, uid, wantSMTPD)
			}
		case "qmail-popup":
			seen["qmail-popup"]++
			if uid != wantPopup {
				t.Errorf("qmail-popup (pid %d) runs as uid %s, want %s", pid, uid, wantPopup)
			}
		}
	}
	if seen["qmail-smtpd"] != 3 || seen["qmail-popup"] != 1 {
		t.Errorf("sessions found: %v; want 3 qmail-smtpd and 1 qmail-popup", seen)
	}
	for _, c := range open {
		c.Close()
	}

	// A second run on the same instance refuses, naming the first.
	second := run(t, proc{args: []string{"qmailctl", "run", "--root", root, "--smtp", qrFreeAddr(t)}, as: cred})
	want := fmt.Sprintf("qmailctl run: the instance %s is already running under qmailctl run (pid %d, holding %s/run/qmailctl-run.lock): stop that one first\n", root, r.cmd.Process.Pid, root)
	if second.code != 1 || second.stderr != want {
		t.Errorf("second run: exit %d, %q; want exit 1, %q", second.code, second.stderr, want)
	}
	if second.stdout != "" {
		t.Errorf("second run started something: %q", second.stdout)
	}

	if code := r.stop(t); code != 0 {
		t.Errorf("qmailctl run exited %d after TERM; stderr %s", code, r.stderr)
	}
	out := r.out.String()
	for _, want := range []string{
		"send: status: local 0/10 remote 0/20\n",
		"smtp: tcpserver: status: 0/100\n",
		"submission: tcpserver: status: 0/100\n",
		"smtps: tcpserver: status: 0/100\n",
		"pop3: tcpserver: status: 0/40\n",
		"smtp: tcpserver: pid ",
		"pop3: tcpserver: ok ",
		"send: status: exiting\n",
		"run: stopped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	tag := regexp.MustCompile(`^(run|send|smtp|submission|smtps|pop3): `)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !tag.MatchString(line) {
			t.Errorf("untagged log line %q", line)
		}
	}
	// The listeners stopped before qmail-start was told to.
	term := strings.Index(out, "run: terminated: stopping")
	exitasap := strings.Index(out, "send: status: local 0/10 remote 0/20 exitasap")
	if term < 0 || exitasap < term {
		t.Errorf("qmail-send heard TERM before qmailctl run got it:\n%s", out)
	}
	qrNoLeftovers(t, root)
	for _, service := range []string{"smtp", "pop3"} {
		if c, err := net.DialTimeout("tcp", r.addr[service], time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections on %s after the stop", service, r.addr[service])
		}
	}
}

func TestRunPartDies(t *testing.T) {
	root := qrInstance(t, qrAs())
	r := qrStart(t, root, qrAs(), "smtp", "submission")
	pid := r.partPID(t, "smtp")
	syscall.Kill(pid, syscall.SIGKILL)
	if code := r.wait(t); code != 1 {
		t.Errorf("qmailctl run exited %d when a part died, want 1", code)
	}
	want := fmt.Sprintf("qmailctl run: smtp (pid %d) stopped unexpectedly: signal: killed\n", pid)
	if r.stderr.String() != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if out := r.out.String(); !strings.Contains(out, "; stopping the rest\n") || !strings.Contains(out, "send: status: exiting\n") {
		t.Errorf("the rest was not stopped in order:\n%s", out)
	}
	qrNoLeftovers(t, root)
}

func TestRunRefusals(t *testing.T) {
	root := qrInstance(t, qrAs())
	if err := os.Remove(filepath.Join(root, "control", "servercert.pem")); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtps", qrFreeAddr(t)}, "qmailctl run: --smtps needs a certificate in " + root + "/control/servercert.pem: make one with qmailctl cert --self-signed --root " + root},
		{[]string{"--smtp", "localhost"}, "qmailctl run: --smtp localhost: want HOST:PORT"},
		{[]string{"--smtp", busy.Addr().String()}, "qmailctl run: smtp (pid "},
		{[]string{"--grace", "0s"}, "qmailctl run: --grace 0s: want a positive duration"},
	} {
		r := run(t, proc{args: append([]string{"qmailctl", "run", "--root", root}, tc.args...), as: qrAs()})
		if r.code == 0 || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want %q...", tc.args, r.code, r.stderr, tc.want)
		}
	}
	qrNoLeftovers(t, root)
}

// install and cert: owners and modes, as root and as an ordinary user.
func TestInstallAndCertAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	root := qrInstance(t, nil)
	ids := func(name string) uint32 {
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(u.Uid)
		return uint32(n)
	}
	g, err := user.LookupGroup("qmail")
	if err != nil {
		t.Fatal(err)
	}
	qmailGID, _ := strconv.Atoi(g.Gid)
	for _, tc := range []struct {
		name string
		uid  uint32
		mode fs.FileMode
	}{
		{"qmail-queue", ids("qmailq"), 0o711 | fs.ModeSetuid},
		{"checkpassword", 0, 0o711 | fs.ModeSetuid},
		{"qmail-start", 0, 0o700},
		{"qmail-lspawn", 0, 0o700},
		{"qmail-send", 0, 0o711},
		{"qmail-smtpd", 0, 0o755},
		{"qmail-tcpserver", 0, 0o755},
		{"qmailctl", 0, 0o755},
	} {
		qrCheckFile(t, filepath.Join(root, "bin", tc.name), tc.uid, uint32(qmailGID), tc.mode)
	}
	d, err := user.Lookup("qmaild")
	if err != nil {
		t.Fatal(err)
	}
	dgid, _ := strconv.Atoi(d.Gid)
	qrCheckFile(t, filepath.Join(root, "control", "servercert.pem"), ids("qmaild"), uint32(dgid), 0o400)
	// qmaild, which qmail-smtpd runs as, can read it; another account
	// cannot.
	if r := runPath(t, "/bin/cat", proc{args: []string{"cat", filepath.Join(root, "control", "servercert.pem")},
		as: &syscall.Credential{Uid: ids("qmaild"), Gid: uint32(dgid), NoSetGroups: true}}); r.code != 0 || !strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Errorf("qmaild cannot read the certificate: %s", r.stderr)
	}
	if r := runPath(t, "/bin/cat", proc{args: []string{"cat", filepath.Join(root, "control", "servercert.pem")}, as: nobody}); r.code == 0 {
		t.Error("nobody can read the private key")
	}
	testCertRefusal(t, root, nil)
}

func TestInstallAndCertAsOrdinaryUser(t *testing.T) {
	cred := qrAs()
	root := qrInstance(t, cred)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if cred != nil {
		uid, gid = cred.Uid, cred.Gid
	}
	for _, name := range []string{"qmail-queue", "checkpassword", "qmail-start", "qmail-smtpd"} {
		qrCheckFile(t, filepath.Join(root, "bin", name), uid, gid, 0o755)
	}
	qrCheckFile(t, filepath.Join(root, "control", "servercert.pem"), uid, gid, 0o600)
	testCertRefusal(t, root, cred)
	// Installing again replaces the programs in place, and says which.
	r := run(t, proc{args: []string{"qmailctl", "install", "--root", root, "--from", testutil.Bin(t)}, as: cred})
	if r.code != 0 || !strings.Contains(r.stdout, "installed "+root+"/bin/qmail-send\n") {
		t.Errorf("second install: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, proc{args: []string{"qmailctl", "install", "--root", root, "--from", t.TempDir()}, as: cred})
	if r.code != 1 || !strings.Contains(r.stderr, "no quail program in ") {
		t.Errorf("install from an empty directory: exit %d, %q", r.code, r.stderr)
	}
}

func testCertRefusal(t *testing.T, root string, cred *syscall.Credential) {
	t.Helper()
	path := filepath.Join(root, "control", "servercert.pem")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, proc{args: []string{"qmailctl", "cert", "--self-signed", "--root", root}, as: cred})
	if r.code != 1 || r.stderr != "qmailctl cert: "+path+" exists: give --force to replace it\n" {
		t.Errorf("cert over an existing one: exit %d, %q", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the refused cert command changed the file")
	}
	r = run(t, proc{args: []string{"qmailctl", "cert", "--self-signed", "--force", "--hostname", "other.example.test", "--root", root}, as: cred})
	if r.code != 0 {
		t.Fatalf("cert --force: %s", r.stderr)
	}
	after, _ := os.ReadFile(path)
	pair, err := tls.X509KeyPair(after, after)
	if err != nil || string(after) == string(before) {
		t.Fatalf("cert --force wrote nothing new or nothing usable: %v", err)
	}
	if pair.Leaf == nil || pair.Leaf.VerifyHostname("other.example.test") != nil {
		t.Errorf("the new certificate is not for other.example.test")
	}
	r = run(t, proc{args: []string{"qmailctl", "cert", "--root", root}, as: cred})
	if r.code != 2 || !strings.Contains(r.stderr, "only --self-signed certificates are made here") {
		t.Errorf("cert without --self-signed: exit %d, %q", r.code, r.stderr)
	}
}

func qrCheckFile(t *testing.T, path string, uid, gid uint32, mode fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != uid || sys.Gid != gid || st.Mode() != mode {
		t.Errorf("%s: %d:%d %v, want %d:%d %v", path, sys.Uid, sys.Gid, st.Mode(), uid, gid, mode)
	}
}

// scripts/demo, as CI runs it: DEMO_EXIT=1 makes it stop after its own
// check (a message in over SMTP, back over POP3 with APOP), so it needs
// no terminal. DEMO_BIN keeps its build out of the repository's ./bin.
func TestDemo(t *testing.T) {
	testutil.NeedTool(t, "go", "golang")
	dir := ownedDir(t, nil)
	cmd := exec.Command(filepath.Join(testutil.ModuleRoot(t), "scripts", "demo"))
	cmd.Env = append(os.Environ(), "DEMO_EXIT=1", "DEMO_ROOT="+filepath.Join(dir, "demo"), "DEMO_BIN="+filepath.Join(dir, "bin"),
		"DEMO_SMTP="+qrFreeAddr(t), "DEMO_SUBMISSION="+qrFreeAddr(t), "DEMO_SMTPS="+qrFreeAddr(t), "DEMO_POP3="+qrFreeAddr(t))
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"== it works\n",
		"    It works: in over SMTP, out over POP3.\n",
		"== stopped (qmailctl run exited 0); its log:\n",
		"  run: stopped\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("scripts/demo said no %q:\n%s", want, out)
		}
	}
	qrNoLeftovers(t, filepath.Join(dir, "demo"))
}
