package tcpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/testutil"
)

type testServer struct {
	*Server
	logFile *os.File
	cancel  context.CancelFunc
	done    chan error
}

// serve starts a server on HOST with o's options (HOST port 0) and stops
// it when the test ends. setup, when not nil, adjusts the Server before
// it serves.
func serve(t *testing.T, o Options, setup func(*Server)) *testServer {
	t.Helper()
	return serveEnv(t, o, []string{"PATH=/usr/bin:/bin", "TCPREMOTEHOST=stale"}, setup)
}

// serveEnv is serve with the server's environment.
func serveEnv(t *testing.T, o Options, environ []string, setup func(*Server)) *testServer {
	t.Helper()
	if o.Port == "" {
		o.Port = "0"
	}
	logFile, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Listen(ctx, o, logFile, environ)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	ts := &testServer{Server: s, logFile: logFile, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.done <- nil // stop is idempotent
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after its context ended")
	}
}

func (ts *testServer) log(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(ts.logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitLog waits until the log matches re.
func (ts *testServer) waitLog(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := ts.log(t)
		if rx.MatchString(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("log never matched %s:\n%s", re, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (ts *testServer) addr(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(ts.Port()))
}

func opts(host string, program ...string) Options {
	o := Defaults()
	o.Host, o.Program = host, program
	o.RemoteHost, o.RemoteInfo = false, false
	o.LocalHost, o.HasLocalHost = "0", true
	return o
}

func TestServeEnvironment(t *testing.T) {
	ts := serve(t, opts("127.0.0.1", "env"), nil)
	out := testutil.Talk(t, ts.addr("127.0.0.1"), "")
	env := testutil.ParseEnv(out)
	port := env["TCPREMOTEPORT"]
	if n, err := strconv.Atoi(port); err != nil || n <= 0 {
		t.Errorf("TCPREMOTEPORT=%q", port)
	}
	delete(env, "TCPREMOTEPORT")
	want := map[string]string{
		"PATH": "/usr/bin:/bin", "PROTO": "TCP",
		"TCPLOCALIP": "127.0.0.1", "TCPLOCALPORT": strconv.Itoa(ts.Port()), "TCPLOCALHOST": "0",
		"TCPREMOTEIP": "127.0.0.1",
	}
	if !equalMaps(env, want) {
		t.Errorf("environment (TCPREMOTEHOST must be gone, not empty):\n got %v\nwant %v", env, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestServeRemoteHost(t *testing.T) {
	o := opts("127.0.0.1", "env")
	o.RemoteHost, o.Paranoid = true, true
	o.HasLocalHost = false
	ts := serve(t, o, nil)
	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), ""))
	// The system resolver's answer, whatever this machine calls itself.
	names, err := net.DefaultResolver.LookupAddr(context.Background(), "127.0.0.1")
	host, ok := env["TCPREMOTEHOST"]
	if err != nil || len(names) == 0 {
		if ok {
			t.Errorf("TCPREMOTEHOST=%q, but 127.0.0.1 has no name", host)
		}
		return
	}
	want := strings.ToLower(strings.TrimSuffix(names[0], "."))
	addrs, _ := net.DefaultResolver.LookupHost(context.Background(), want)
	if !contains(addrs, "127.0.0.1") {
		want = "" // -p drops a name that does not lead back
	}
	if want == "" && ok || want != "" && host != want {
		t.Errorf("TCPREMOTEHOST=%q (set %v), want %q", host, ok, want)
	}
	if env["TCPLOCALHOST"] != want {
		t.Errorf("TCPLOCALHOST=%q, want the looked-up %q", env["TCPLOCALHOST"], want)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestServeRulesReread(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.cdb")
	put := func(pairs ...string) {
		t.Helper()
		os.Rename(writeCDB(t, pairs...), rules)
	}
	put("127.0.0.1", "+RELAYCLIENT=\x00+N=1\x00")
	o := opts("127.0.0.1", "env")
	o.Rules = rules
	o.Verbosity = Verbose
	ts := serve(t, o, nil)

	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), ""))
	if v, ok := env["RELAYCLIENT"]; !ok || v != "" || env["N"] != "1" {
		t.Errorf("first rules: RELAYCLIENT=%q (%v) N=%q", v, ok, env["N"])
	}
	put("127.", "+N=2\x00")
	if env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), "")); env["N"] != "2" {
		t.Errorf("after tcprules ran again: N=%q, want 2", env["N"])
	}
	put("127.0.0.1", "D\x00")
	if out := testutil.Talk(t, ts.addr("127.0.0.1"), ""); out != "" {
		t.Errorf("denied, but the program ran: %q", out)
	}
	ts.waitLog(t, `tcpserver: pid 0 from 127\.0\.0\.1\ntcpserver: deny 0 0:127\.0\.0\.1:\d+ :127\.0\.0\.1::\d+\n(tcpserver: status: 1/40\n)?tcpserver: end 0 status 25600\n`)
	os.Remove(rules)
	if out := testutil.Talk(t, ts.addr("127.0.0.1"), ""); out != "" {
		t.Errorf("rules file gone and no -X, but the program ran: %q", out)
	}
	ts.waitLog(t, `tcpserver: warning: dropping connection, unable to read `+regexp.QuoteMeta(rules)+`: file does not exist\ntcpserver: end 0 status 28416\n`)
}

func TestServeMissingRulesAllowed(t *testing.T) {
	o := opts("127.0.0.1", "env")
	o.Rules, o.AllowNoRules = filepath.Join(t.TempDir(), "none.cdb"), true
	ts := serve(t, o, nil)
	if env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), "")); env["PROTO"] != "TCP" {
		t.Errorf("-X with no rules file: program did not run: %v", env)
	}
}

func TestServeVerboseLog(t *testing.T) {
	o := opts("127.0.0.1", "sh", "-c", "exit 3")
	o.Verbosity = Verbose
	ts := serve(t, o, nil)
	testutil.Talk(t, ts.addr("127.0.0.1"), "")
	l := ts.waitLog(t, `end \d+ status 768\ntcpserver: status: 0/40\n$`)
	re := regexp.MustCompile(`^tcpserver: status: 0/40
tcpserver: status: 1/40
tcpserver: pid (\d+) from 127\.0\.0\.1
tcpserver: ok (\d+) 0:127\.0\.0\.1:(\d+) :127\.0\.0\.1::(\d+)
tcpserver: end (\d+) status 768
tcpserver: status: 0/40
$`)
	m := re.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("log:\n%s", l)
	}
	if m[1] != m[2] || m[1] != m[5] || m[1] == "0" || m[3] != strconv.Itoa(ts.Port()) {
		t.Errorf("pids or port disagree:\n%s", l)
	}
}

func TestServeQuiet(t *testing.T) {
	o := opts("127.0.0.1", "no-such-program-anywhere")
	o.Verbosity = Quiet
	ts := serve(t, o, nil)
	testutil.Talk(t, ts.addr("127.0.0.1"), "")
	o.Verbosity = Errors
	ts2 := serve(t, o, nil)
	testutil.Talk(t, ts2.addr("127.0.0.1"), "")
	ts2.waitLog(t, `^tcpserver: warning: dropping connection, unable to run no-such-program-anywhere: file does not exist\n$`)
	if l := ts.log(t); l != "" {
		t.Errorf("-q logged %q", l)
	}
}

func TestServeLimit(t *testing.T) {
	o := opts("127.0.0.1", "sh", "-c", `read x; echo "done $x"`)
	o.Limit = 1
	o.Verbosity = Verbose
	ts := serve(t, o, nil)
	out1, out2 := oneAtATime(t, ts)
	if out1 != "done a\n" || out2 != "done b\n" {
		t.Errorf("first %q, second %q", out1, out2)
	}
	if l := ts.log(t); strings.Contains(l, "status: 2/1") {
		t.Errorf("went past the limit:\n%s", l)
	}
}

// oneAtATime checks a -c 1 server: with a first connection open, a
// second one (complete in the backlog) gets no service. It then sends
// "a" on the first and "b" on the second, and returns what each read.
func oneAtATime(t *testing.T, ts *testServer) (out1, out2 string) {
	t.Helper()
	first, err := net.Dial("tcp", ts.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ts.waitLog(t, `ok \d+`)
	second, err := net.Dial("tcp", ts.addr("127.0.0.1")) // completes in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, "b\n")
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := second.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection served while the first runs (-c 1): %d, %v", n, err)
	}
	io.WriteString(first, "a\n")
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	b1, _ := io.ReadAll(first)
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	b2, _ := io.ReadAll(second)
	return string(b1), string(b2)
}

func TestServeIdent(t *testing.T) {
	port, _ := fakeIdentd(t, "x , y : USERID : UNIX : joe\r\n")
	rules := writeCDB(t, "joe@127.0.0.1", "+WHO=joe\x00", "127.0.0.1", "+WHO=anyone\x00")
	o := opts("127.0.0.1", "env")
	o.RemoteInfo, o.Rules = true, rules
	ts := serve(t, o, func(s *Server) { s.identd = port })
	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), ""))
	if env["TCPREMOTEINFO"] != "joe" || env["WHO"] != "joe" {
		t.Errorf("TCPREMOTEINFO=%q WHO=%q, want joe and the joe@ rule", env["TCPREMOTEINFO"], env["WHO"])
	}
}

func TestServeNoIdentd(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	o := opts("127.0.0.1", "env")
	o.RemoteInfo = true
	ts := serve(t, o, func(s *Server) { s.identd = port })
	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), ""))
	if v, ok := env["TCPREMOTEINFO"]; ok {
		t.Errorf("no identd, yet TCPREMOTEINFO=%q", v)
	}
}

func TestServeIPv6(t *testing.T) {
	ts := serve(t, opts("::1", "env"), nil)
	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("::1"), ""))
	if env["TCPREMOTEIP"] != "::1" || env["TCPLOCALIP"] != "::1" {
		t.Errorf("over [::1]: TCPREMOTEIP=%q TCPLOCALIP=%q", env["TCPREMOTEIP"], env["TCPLOCALIP"])
	}
}

func TestServeDualStack(t *testing.T) {
	ts := serve(t, opts("::", "env"), nil)
	env := testutil.ParseEnv(testutil.Talk(t, ts.addr("127.0.0.1"), ""))
	if env["TCPREMOTEIP"] != "127.0.0.1" || env["TCPLOCALIP"] != "127.0.0.1" {
		t.Errorf("IPv4 through [::]: TCPREMOTEIP=%q TCPLOCALIP=%q, want dotted quads", env["TCPREMOTEIP"], env["TCPLOCALIP"])
	}
	env = testutil.ParseEnv(testutil.Talk(t, ts.addr("::1"), ""))
	if env["TCPREMOTEIP"] != "::1" {
		t.Errorf("IPv6 through [::]: TCPREMOTEIP=%q", env["TCPREMOTEIP"])
	}
}

func TestServeBanner(t *testing.T) {
	o := opts("127.0.0.1", "sh", "-c", "echo from program")
	o.Banner = "220 hello\r\n"
	ts := serve(t, o, nil)
	if out := testutil.Talk(t, ts.addr("127.0.0.1"), ""); out != "220 hello\r\nfrom program\n" {
		t.Errorf("got %q", out)
	}
}

// TestServeStop: when the server stops, it stops listening, and a program
// already running goes on.
func TestServeStop(t *testing.T) {
	o := opts("127.0.0.1", "sh", "-c", `read x; echo "bye $x"`)
	o.Verbosity = Verbose
	ts := serve(t, o, nil)
	c, err := net.Dial("tcp", ts.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ts.waitLog(t, `ok \d+`)
	ts.stop(t)
	if c2, err := net.DialTimeout("tcp", ts.addr("127.0.0.1"), time.Second); err == nil {
		c2.Close()
		t.Error("still accepting after stop")
	}
	io.WriteString(c, "x\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if out, _ := io.ReadAll(c); string(out) != "bye x\n" {
		t.Errorf("running program after stop: %q", out)
	}
}

// TestAcceptAndTune: a connection is accepted blocking, with the
// addresses of both ends, and with TCP_NODELAY off unless -D.
func TestAcceptAndTune(t *testing.T) {
	ln, err := listen(netip.MustParseAddrPort("127.0.0.1:0"), 5)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(boundPort(ln))
	client := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			client <- c
		}
		close(client)
	}()
	s := &Server{o: Defaults(), ln: ln}
	c, err := s.accept()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c.fd)
	cl := <-client
	if cl == nil {
		t.Fatal("dial failed")
	}
	defer cl.Close()
	if c.local.String() != addr || c.remote.String() != cl.LocalAddr().String() {
		t.Errorf("accepted %v from %v; want %v from %v", c.local, c.remote, addr, cl.LocalAddr())
	}
	if flags, _ := unix.FcntlInt(uintptr(c.fd), unix.F_GETFL, 0); flags&unix.O_NONBLOCK != 0 {
		t.Error("the accepted socket is non-blocking")
	}
	nodelay := func() int {
		v, _ := unix.GetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		return v
	}
	s.tune(c.fd)
	if nodelay() != 0 {
		t.Error("-d (the default): TCP_NODELAY is on")
	}
	s.o.NoDelay = true
	s.tune(c.fd)
	if nodelay() == 0 {
		t.Error("-D: TCP_NODELAY is off")
	}
}

func TestListenErrors(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := opts("127.0.0.1", "env")
	o.Port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		host, port, want string
	}{
		{"127.0.0.1", o.Port, ""}, // SO_REUSEADDR does not let two listen
		{"192.0.2.1", "0", "unable to bind: address not available"},
		{"0", "no-such-service", "unable to figure out port number for no-such-service"},
		{"0", "70000", "unable to figure out port number for 70000"},
	} {
		o.Host, o.Port = tc.host, tc.port
		_, err := Listen(ctx, o, os.Stderr, nil)
		if err == nil || tc.want != "" && err.Error() != tc.want {
			t.Errorf("Listen(%s, %s): %v, want %q", tc.host, tc.port, err, tc.want)
		}
	}
}

func TestResolvePort(t *testing.T) {
	for in, want := range map[string]uint16{"25": 25, "0": 0, "smtp": 25, "pop3": 110} {
		got, err := ResolvePort(context.Background(), net.DefaultResolver, in)
		if err != nil || got != want {
			t.Errorf("ResolvePort(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestResolveHost(t *testing.T) {
	for in, want := range map[string]string{"0": "0.0.0.0", "": "0.0.0.0", "::": "::", "::ffff:127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "10.1.2.3": "10.1.2.3"} {
		got, err := ResolveHost(context.Background(), net.DefaultResolver, in)
		if err != nil || got.String() != want {
			t.Errorf("ResolveHost(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}

func TestErrText(t *testing.T) {
	_, err := os.Open("/nonexistent/x")
	if got := errText(err); got != "file does not exist" {
		t.Errorf("ENOENT: %q", got)
	}
	if got := errText(errors.New("plain")); got != "plain" {
		t.Errorf("plain error: %q", got)
	}
	if got := errText(unix.EADDRINUSE); got != "address already used" {
		t.Errorf("EADDRINUSE: %q", got)
	}
}

// TestAcceptClosed: closing the listener ends a waiting accept with
// os.ErrClosed, which Serve takes as the end.
func TestAcceptClosed(t *testing.T) {
	ln, err := listen(netip.MustParseAddrPort("127.0.0.1:0"), 5)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{o: Defaults(), ln: ln}
	done := make(chan error, 1)
	go func() {
		_, err := s.accept()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("accept on a closed listener: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("accept still waits after the listener was closed")
	}
}
