package tcpserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/reuse"
	"github.com/quail-mta/quail/pkg/testutil"
)

// workerArg makes the test binary a -k program (see testWorker).
const workerArg = "--tcpserver-test-worker"

func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == workerArg {
		os.Exit(testWorker())
	}
	os.Exit(m.Run())
}

// testWorker serves connections through reuse.Serve. Each session reads
// one line: "exit" ends the process with status 3, "kill" kills it;
// anything else is echoed as LINE=, followed by PID= and the session's
// environment.
func testWorker() int {
	return reuse.Serve(func() int {
		line := readLine()
		switch line {
		case "exit":
			return 3
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "LINE=%s\nPID=%d\nBLOCKING=%v\n", line, os.Getpid(), blocking(0) && blocking(1))
		for _, kv := range os.Environ() {
			b.WriteString(kv + "\n")
		}
		os.Stdout.WriteString(b.String())
		return 0
	})
}

func blocking(fd int) bool {
	flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	return e == 0 && flags&syscall.O_NONBLOCK == 0
}

// readLine reads fd 0 a byte at a time, so that nothing of a later
// session could be buffered.
func readLine() string {
	var line []byte
	c := make([]byte, 1)
	for {
		n, err := syscall.Read(0, c)
		if err == syscall.EINTR {
			continue
		}
		if n != 1 || c[0] == '\n' {
			return string(line)
		}
		line = append(line, c[0])
	}
}

// serveWorkers is serve for testWorker. Its environment spares each
// worker of a -race test binary the race detector's one-second pause at
// exit.
func serveWorkers(t *testing.T, o Options, setup func(*Server)) *testServer {
	t.Helper()
	return serveEnv(t, o, []string{"PATH=/usr/bin:/bin", "TCPREMOTEHOST=stale", "GORACE=atexit_sleep_ms=0"}, setup)
}

func workerOpts(t *testing.T, reuse int) Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := opts("127.0.0.1", exe, workerArg)
	o.Reuse = reuse
	o.Verbosity = Verbose
	return o
}

// session is one connection's view: what the worker echoed and the
// client's port.
type session struct {
	env  map[string]string
	port int
	ip   string
}

// talkFrom connects from the local address ip, sends line and reads the
// reply until the server closes.
func talkFrom(t *testing.T, ts *testServer, ip, line string) session {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", ts.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, line+"\n")
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return session{env: testutil.ParseEnv(string(out)), port: c.LocalAddr().(*net.TCPAddr).Port, ip: ip}
}

// countEnds waits until the log holds n "end" lines, each followed by its
// status line.
func (ts *testServer) countEnds(t *testing.T, n int) string {
	t.Helper()
	return ts.waitLog(t, fmt.Sprintf(`^(?s:(.*?tcpserver: end \d+ status \d+\ntcpserver: status: \d+/\d+\n){%d})`, n))
}

// waitGone waits until process pid has been reaped.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pidOf(t *testing.T, s session) int {
	t.Helper()
	pid, err := strconv.Atoi(s.env["PID"])
	if err != nil || pid <= 0 {
		t.Fatalf("no PID in the reply: %v", s.env)
	}
	return pid
}

// servedLog is the -v log of a connection served to its end with status.
func servedLog(pid int, s session, port, status, limit int) string {
	return fmt.Sprintf("tcpserver: status: 1/%d\ntcpserver: pid %d from %s\ntcpserver: ok %d 0:127.0.0.1:%d :%s::%d\ntcpserver: end %d status %d\ntcpserver: status: 0/%d\n",
		limit, pid, s.ip, pid, port, s.ip, s.port, pid, status, limit)
}

// TestReuseSequential: with -k 3, four connections in turn are served by
// two processes, each connection with its own environment, and logged as
// four processes would be.
func TestReuseSequential(t *testing.T) {
	rules := writeCDB(t, "127.0.0.1", "+RELAYCLIENT=\x00+N=1\x00", "127.0.0.2", "+N=2\x00")
	o := workerOpts(t, 3)
	o.Rules = rules
	ts := serveWorkers(t, o, nil)
	var sessions []session
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"} {
		s := talkFrom(t, ts, ip, "hello"+strconv.Itoa(i))
		sessions = append(sessions, s)
		// The next connection finds the process idle only once it has
		// said "done", which the end line shows.
		ts.countEnds(t, i+1)
	}
	pids := make([]int, len(sessions))
	want := "tcpserver: status: 0/40\n"
	for i, s := range sessions {
		pids[i] = pidOf(t, s)
		want += servedLog(pids[i], s, ts.Port(), 0, 40)
		e := s.env
		if e["LINE"] != "hello"+strconv.Itoa(i) || e["BLOCKING"] != "true" || e["TCPREMOTEIP"] != s.ip || e["TCPREMOTEPORT"] != strconv.Itoa(s.port) ||
			e["TCPLOCALPORT"] != strconv.Itoa(ts.Port()) || e["PROTO"] != "TCP" || e["PATH"] != "/usr/bin:/bin" {
			t.Errorf("connection %d from %s port %d: %v", i, s.ip, s.port, e)
		}
		relay, hasRelay := e["RELAYCLIENT"]
		if s.ip == "127.0.0.1" && (!hasRelay || relay != "" || e["N"] != "1") || s.ip == "127.0.0.2" && (hasRelay || e["N"] != "2") {
			t.Errorf("connection %d from %s: the rule's variables RELAYCLIENT=%q (set %v) N=%q", i, s.ip, relay, hasRelay, e["N"])
		}
		for _, gone := range []string{reuse.EnvFD, "TCPREMOTEHOST"} {
			if v, ok := e[gone]; ok {
				t.Errorf("connection %d: %s=%q", i, gone, v)
			}
		}
	}
	if pids[0] != pids[1] || pids[0] != pids[2] || pids[3] == pids[0] {
		t.Errorf("pids %v: want the first three the same and the fourth another (-k 3)", pids)
	}
	// The first process, done with its three, was told to exit: it leaves
	// without a log line of its own.
	waitGone(t, pids[0])
	time.Sleep(50 * time.Millisecond)
	if l := ts.log(t); l != want {
		t.Errorf("log:\n%s\nwant:\n%s", l, want)
	}
}

// TestReuseCrash: a reused process that exits or dies during a session
// has its real wait status logged, and the next connection gets a new
// process.
func TestReuseCrash(t *testing.T) {
	ts := serveWorkers(t, workerOpts(t, 5), nil)
	var want strings.Builder
	want.WriteString("tcpserver: status: 0/40\n")
	var prev int
	for i, tc := range []struct {
		line     string
		status   int
		samePid  bool // served by the previous connection's process
		newAfter bool
	}{
		{"a", 0, false, false},
		{"exit", 3 << 8, true, true},
		{"b", 0, false, false},
		{"kill", int(syscall.SIGKILL), true, true},
		{"c", 0, false, false},
	} {
		s := talkFrom(t, ts, "127.0.0.1", tc.line)
		l := ts.countEnds(t, i+1)
		var pid int
		if tc.status == 0 {
			pid = pidOf(t, s)
			if pid == prev {
				t.Errorf("connection %d (%s) served by %d, which had died", i, tc.line, pid)
			}
		} else {
			if len(s.env) != 0 {
				t.Errorf("connection %d (%s) got a reply: %v", i, tc.line, s.env)
			}
			pid = prev
		}
		want.WriteString(servedLog(pid, s, ts.Port(), tc.status, 40))
		if l != want.String() {
			t.Fatalf("after connection %d (%s), log:\n%s\nwant:\n%s", i, tc.line, l, want.String())
		}
		prev = pid
	}
}

// TestReuseIdleKilled: a process killed while it waits is replaced; its
// death is not logged, as its last connection was.
func TestReuseIdleKilled(t *testing.T) {
	ts := serveWorkers(t, workerOpts(t, 5), nil)
	first := talkFrom(t, ts, "127.0.0.1", "a")
	ts.countEnds(t, 1)
	a := pidOf(t, first)
	syscall.Kill(a, syscall.SIGKILL)
	waitGone(t, a)
	second := talkFrom(t, ts, "127.0.0.1", "b")
	ts.countEnds(t, 2)
	b := pidOf(t, second)
	if b == a || second.env["LINE"] != "b" {
		t.Errorf("after the idle process %d was killed: %v", a, second.env)
	}
	want := "tcpserver: status: 0/40\n" + servedLog(a, first, ts.Port(), 0, 40) + servedLog(b, second, ts.Port(), 0, 40)
	if l := ts.log(t); l != want {
		t.Errorf("log:\n%s\nwant:\n%s", l, want)
	}
}

// TestReuseIdleTimeout: a process idle for longer than idleMax is told
// to exit.
func TestReuseIdleTimeout(t *testing.T) {
	ts := serveWorkers(t, workerOpts(t, 5), func(s *Server) { s.pool.idleMax = 100 * time.Millisecond })
	first := talkFrom(t, ts, "127.0.0.1", "a")
	ts.countEnds(t, 1)
	a := pidOf(t, first)
	waitGone(t, a)
	second := talkFrom(t, ts, "127.0.0.1", "b")
	if b := pidOf(t, second); b == a {
		t.Errorf("the retired process %d served again", a)
	}
}

// TestReuseLimit: -c 1 with -k still serves one connection at a time,
// and the second goes to the first's process.
func TestReuseLimit(t *testing.T) {
	o := workerOpts(t, 5)
	o.Limit = 1
	ts := serveWorkers(t, o, nil)
	out1, out2 := oneAtATime(t, ts)
	e1, e2 := testutil.ParseEnv(out1), testutil.ParseEnv(out2)
	if e1["LINE"] != "a" || e2["LINE"] != "b" || e1["PID"] != e2["PID"] {
		t.Errorf("first %v\nsecond %v\nwant a and b from one process", e1, e2)
	}
	l := ts.countEnds(t, 2)
	if strings.Contains(l, "status: 2/1") || strings.Count(l, "status: 1/1\n") != 2 {
		t.Errorf("log:\n%s", l)
	}
}

// TestReuseStop: when the server stops, an idle process exits at once
// and a busy one after its session.
func TestReuseStop(t *testing.T) {
	ts := serveWorkers(t, workerOpts(t, 5), nil)
	held, err := net.Dial("tcp", ts.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ts.waitLog(t, `ok \d+`)
	idle := talkFrom(t, ts, "127.0.0.1", "x")
	ts.countEnds(t, 1)
	ts.stop(t)
	waitGone(t, pidOf(t, idle))
	io.WriteString(held, "y\n")
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(held)
	e := testutil.ParseEnv(string(out))
	if e["LINE"] != "y" {
		t.Fatalf("the busy process after stop: %q", out)
	}
	pid, _ := strconv.Atoi(e["PID"])
	waitGone(t, pid)
	ts.countEnds(t, 2)
}

// TestReuseOffNoChannel: without -k the program gets no channel and no
// variable; with -k a program that does not speak the protocol (sh) is
// run once per connection, as by tcpserver.
func TestReuseOffNoChannel(t *testing.T) {
	script := `read x; if [ -e /proc/$$/fd/3 ]; then echo FD3=yes; else echo FD3=no; fi; echo PID=$$; env`
	for _, k := range []int{0, 1, 2} {
		o := opts("127.0.0.1", "sh", "-c", script)
		o.Reuse, o.Verbosity = k, Verbose
		ts := serve(t, o, nil)
		var pids []string
		for i := range 2 {
			s := talkFrom(t, ts, "127.0.0.1", "")
			ts.countEnds(t, i+1)
			fd, v := s.env["FD3"], s.env[reuse.EnvFD]
			if k < 2 && (fd != "no" || v != "") || k >= 2 && (fd != "yes" || v != "3") {
				t.Errorf("-k %d: fd 3 open: %s, $%s=%q", k, fd, reuse.EnvFD, v)
			}
			pids = append(pids, s.env["PID"])
		}
		if pids[0] == pids[1] || pids[0] == "" {
			t.Errorf("-k %d: sh served twice by one process: %v", k, pids)
		}
		if l := ts.log(t); !regexp.MustCompile(`end \d+ status 0\n.*\n.*\n.*\n.*\nend \d+ status 0\n`).MatchString(strings.ReplaceAll(l, "tcpserver: ", "")) {
			t.Errorf("-k %d log:\n%s", k, l)
		}
	}
}

// TestHandoffSkipsDeadWorker: a handoff to an idle worker whose program
// is gone fails, and the connection goes to the next idle one.
func TestHandoffSkipsDeadWorker(t *testing.T) {
	s := &Server{o: Defaults(), log: &logger{w: io.Discard}, pool: pool{idleMax: time.Minute}}
	s.o.Reuse = 5
	self, _ := os.FindProcess(os.Getpid())
	mk := func() (*worker, *os.File) {
		ours, theirs, err := pollfd.NewPair()
		if err != nil {
			t.Fatal(err)
		}
		w := &worker{p: self, ch: ours, served: 1, open: true, timer: time.NewTimer(time.Hour)}
		t.Cleanup(func() { ours.Close(); theirs.Close() })
		return w, theirs
	}
	good, goodEnd := mk()
	dead, deadEnd := mk()
	deadEnd.Close()
	s.pool.idle = []*worker{good, dead} // dead is the most recent
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wr.Close()
	if !s.handoff(int(wr.Fd()), []string{"A=1", "B=2"}, &Facts{}) {
		t.Fatal("handoff failed with a live idle worker")
	}
	if len(s.pool.idle) != 0 || dead.open || !good.busy || good.served != 2 {
		t.Errorf("after handoff: idle %d, dead open %v, good busy %v served %d", len(s.pool.idle), dead.open, good.busy, good.served)
	}
	// The live worker's end holds the environment and the descriptor.
	buf := make([]byte, 100)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := syscall.Recvmsg(int(goodEnd.Fd()), buf, oob, syscall.MSG_CMSG_CLOEXEC)
	if err != nil || string(buf[:n]) != "A=1\x00B=2\x00" {
		t.Fatalf("packet %q, %v", buf[:n], err)
	}
	msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	if len(msgs) != 1 {
		t.Fatalf("%d control messages", len(msgs))
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	syscall.Write(fds[0], []byte("via the worker"))
	syscall.Close(fds[0])
	wr.Close()
	if got, _ := io.ReadAll(r); string(got) != "via the worker" {
		t.Errorf("handed descriptor is not the connection: %q", got)
	}
	if s.handoff(0, nil, &Facts{}) {
		t.Error("handoff succeeded with no idle worker")
	}
}

// TestReuseEnvTooLarge: a connection whose environment cannot be handed
// over gets a process of its own, and the idle process stays.
func TestReuseEnvTooLarge(t *testing.T) {
	rules := writeCDB(t, "127.0.0.2", "+BIG="+strings.Repeat("x", reuse.MaxEnv)+"\x00")
	o := workerOpts(t, 5)
	o.Rules = rules
	ts := serveWorkers(t, o, nil)
	a := pidOf(t, talkFrom(t, ts, "127.0.0.1", "a"))
	ts.countEnds(t, 1)
	big := talkFrom(t, ts, "127.0.0.2", "big")
	ts.countEnds(t, 2)
	b := pidOf(t, big)
	if len(big.env["BIG"]) != reuse.MaxEnv || b == a {
		t.Fatalf("big environment: %d bytes of BIG, pid %d (first %d)", len(big.env["BIG"]), b, a)
	}
	// Both are idle; the most recent takes the next connection, which it
	// holds, and the first process the one after.
	held, err := net.Dial("tcp", ts.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ts.waitLog(t, fmt.Sprintf(`ok %d .*\n(?s:.*)ok %d `, b, b))
	if c := pidOf(t, talkFrom(t, ts, "127.0.0.1", "c")); c != a {
		t.Errorf("with %d busy, connection served by %d, want the idle %d", b, c, a)
	}
	io.WriteString(held, "h\n")
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(held)
	h := testutil.ParseEnv(string(out))
	if h["PID"] != strconv.Itoa(b) {
		t.Errorf("held connection: %v, want pid %d", h, b)
	}
	if _, ok := h["BIG"]; ok {
		t.Error("the previous session's BIG leaked into the next")
	}
}

// TestReuseChannelClosed: a program that closes its end of the channel
// and goes on serving is never handed another connection; its exit ends
// the connection with its status.
func TestReuseChannelClosed(t *testing.T) {
	o := opts("127.0.0.1", "sh", "-c", `exec 3>&-; read x; echo PID=$$; exit 2`)
	o.Reuse, o.Verbosity = 5, Verbose
	ts := serve(t, o, nil)
	var pids []string
	for i := range 2 {
		s := talkFrom(t, ts, "127.0.0.1", "")
		pids = append(pids, s.env["PID"])
		ts.countEnds(t, i+1)
	}
	if pids[0] == "" || pids[0] == pids[1] {
		t.Errorf("pids %v, want two processes", pids)
	}
	l := ts.log(t)
	if n := strings.Count(l, " status 512\n"); n != 2 || strings.Count(l, "tcpserver: end ") != 2 {
		t.Errorf("%d end lines with the exit status 2, want 2:\n%s", n, l)
	}
}

// BenchmarkReuse is connections per second to the test worker (a Go
// program, so an exec costs what qmail-smtpd's does) without and with
// -k 100, measured alternately in the same run; "k100/k1" is the ratio
// of the time per connection. procs/conn is the processes -k 100 started
// per connection: a client that connects again at once may find the
// previous process not yet back in the pool.
func BenchmarkReuse(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	servers := make([]*Server, 2)
	logs := make([]*os.File, 2)
	for i, k := range []int{1, 100} {
		o := opts("127.0.0.1", exe, workerArg)
		o.Port, o.Reuse, o.Verbosity = "0", k, Verbose
		logs[i], err = os.CreateTemp(b.TempDir(), "log")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		s, err := Listen(ctx, o, logs[i], []string{"PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0"})
		if err != nil {
			b.Fatal(err)
		}
		servers[i] = s
		go s.Serve(ctx)
	}
	one := func(s *Server) {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())))
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(c, "x\n")
		out, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(out), "LINE=x\n") {
			b.Fatalf("%q, %v", out, err)
		}
	}
	var spent [2]time.Duration
	conns := 0
	for b.Loop() {
		for i, s := range servers {
			start := time.Now()
			one(s)
			spent[i] += time.Since(start)
		}
		conns++
	}
	data, _ := os.ReadFile(logs[1].Name())
	pids := map[string]bool{}
	for _, m := range regexp.MustCompile(`ok (\d+) `).FindAllStringSubmatch(string(data), -1) {
		pids[m[1]] = true
	}
	b.ReportMetric(float64(len(pids))/float64(conns), "procs/conn")
	b.ReportMetric(float64(conns)/spent[0].Seconds(), "k1-conn/s")
	b.ReportMetric(float64(conns)/spent[1].Seconds(), "k100-conn/s")
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "k100/k1")
}

// TestReuseParallel: many clients at once through -c 4 -k 10; every
// connection is served, each ok line is matched by one end line of the
// same pid, and the count never passes the limit.
func TestReuseParallel(t *testing.T) {
	o := workerOpts(t, 10)
	o.Limit = 4
	ts := serveWorkers(t, o, nil)
	const clients, each = 8, 25
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			for j := range each {
				line := fmt.Sprintf("c%d-%d", i, j)
				c, err := net.Dial("tcp", ts.addr("127.0.0.1"))
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(c, line+"\n")
				out, err := io.ReadAll(c)
				c.Close()
				if e := testutil.ParseEnv(string(out)); err != nil || e["LINE"] != line {
					errs <- fmt.Errorf("%s: %q, %v", line, out, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	l := ts.countEnds(t, clients*each)
	open := map[string]int{}
	procs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(l, "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "ok":
			open[f[2]]++
			procs[f[2]] = true
			if open[f[2]] > 1 {
				t.Fatalf("process %s given a second connection before the first ended:\n%s", f[2], l)
			}
		case len(f) >= 3 && f[1] == "end":
			if open[f[2]]--; open[f[2]] < 0 || f[4] != "0" {
				t.Fatalf("%q without its connection, or failed:\n%s", line, l)
			}
		case len(f) == 3 && f[1] == "status:":
			if n, _ := strconv.Atoi(strings.Split(f[2], "/")[0]); n > 4 {
				t.Fatalf("past -c 4:\n%s", l)
			}
		}
	}
	if !strings.HasSuffix(l, "status: 0/4\n") || len(procs) >= clients*each/2 {
		t.Errorf("%d processes for %d connections; log ends %q", len(procs), clients*each, l[max(0, len(l)-60):])
	}
	t.Logf("%d connections, %d processes", clients*each, len(procs))
}
