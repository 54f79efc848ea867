// Package run is `qmailctl run`: it runs a whole instance in the
// foreground — the delivery side (qmail-start) and one tcpserver per
// listening address — tags each line the parts log with the part's name,
// and stops them in an order that loses nothing.
//
// Each part runs in its own process group, so a Ctrl-C at the terminal
// reaches only qmailctl, which then stops the parts in order: the
// listeners first (no new sessions), then, once the sessions in progress
// have ended or the grace period is over, qmail-start with TERM, which
// lets qmail-send finish the deliveries in flight. A second INT or TERM
// kills everything at once; deliveries it interrupts stay in the queue
// and are retried, as after a crash.
package run

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/timerslack"
)

// The parts' names, which tag their log lines.
const (
	Send       = "send"
	SMTP       = "smtp"
	Submission = "submission"
	SMTPS      = "smtps"
	POP3       = "pop3"
)

// LockFile is the file, under the instance root, that a running `qmailctl
// run` holds locked, with its pid inside.
const LockFile = "run/qmailctl-run.lock"

// SMTPDReuse is qmail-tcpserver's -k for the SMTP services: how many
// sessions one qmail-smtpd process serves in turn. Postfix's smtpd
// processes serve 100 (max_use) for the same reason: a process creation
// costs more than a short session.
const SMTPDReuse = 100

// sameSignal is how soon after the first a stop signal counts as the
// same one: timeout(1) and kills aimed at a process group can deliver
// one signal twice, which must not read as a second Ctrl-C.
const sameSignal = time.Second

// DefaultGrace is how long the sessions in progress may go on after the
// listeners stop.
const DefaultGrace = 10 * time.Second

// Listener is one listening address and the service behind it.
type Listener struct {
	Service string // SMTP, Submission, SMTPS or POP3
	Addr    string // host:port; [::1]:25 for IPv6; an empty host is every address
}

// Options are the choices of Run.
type Options struct {
	Root      string
	Listeners []Listener
	// TCPServer is the per-connection launcher; empty means
	// ROOT/bin/qmail-tcpserver. ucspi-tcp's tcpserver takes the same
	// flags.
	TCPServer string
	// Out receives every part's log lines, each tagged "NAME: ", and
	// run's own, tagged "run: ".
	Out io.Writer
	// Signals are the signals qmailctl received: INT or TERM stops the
	// instance (a second one kills it), HUP and ALRM go to qmail-start,
	// which hands them to qmail-send.
	Signals <-chan os.Signal
	// Grace is how long sessions may go on after the listeners stop;
	// 0 means DefaultGrace.
	Grace time.Duration

	// daemonIDs, when set, replaces the look-up of qmaild's uid and
	// nofiles' gid in a root install (tests).
	daemonIDs func() ([]string, error)
}

// part is one supervised program and its process group.
type part struct {
	name  string
	addr  string // listeners only
	cmd   *exec.Cmd
	log   *os.File // read end of the part's stdout and stderr
	logs  chan struct{}
	done  chan struct{} // closed once cmd.Wait returned
	err   error         // cmd.Wait's
	ready bool
}

func (p *part) pid() int { return p.cmd.Process.Pid }

func (p *part) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// runner is one run of an instance.
type runner struct {
	o     Options
	out   *tagger
	send  *part
	lis   []*part
	grace time.Duration
}

// Run runs the instance until a signal stops it or a part dies. It
// returns nil after a clean stop on INT or TERM.
func Run(o Options) error {
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return err
	}
	o.Root = root
	r := &runner{o: o, out: &tagger{w: o.Out}, grace: o.Grace}
	if r.grace <= 0 {
		r.grace = DefaultGrace
	}
	if err := r.prepare(); err != nil {
		return err
	}
	release, err := Lock(root)
	if err != nil {
		return err
	}
	defer release()
	// Sessions whose launcher has stopped are orphans; adopting them
	// (rather than init) lets stop reap them the moment they end, and
	// know that the group is gone.
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	return r.run()
}

// prepare checks the instance and builds the parts' commands, so that a
// mistake is reported before anything starts.
func (r *runner) prepare() error {
	root := r.o.Root
	ctl := control.New(root)
	me, ok, err := ctl.Value("me")
	if err != nil {
		return err
	}
	if !ok || me == "" {
		return fmt.Errorf("%s is not an instance (control/me is missing): run qmailctl init --root %s", root, root)
	}
	bin := func(name string) string { return filepath.Join(root, "bin", name) }
	if err := executable(bin("qmail-start")); err != nil {
		return fmt.Errorf("%w: run qmailctl install --root %s", err, root)
	}
	delivery, ok, err := ctl.Value("defaultdelivery")
	if err != nil {
		return err
	}
	if !ok || delivery == "" {
		delivery = "./Maildir/"
	}
	r.send = r.newPart(Send, "", []string{bin("qmail-start"), delivery})
	if len(r.o.Listeners) == 0 {
		return nil
	}

	tcpserver := r.o.TCPServer
	if tcpserver == "" {
		tcpserver = bin("qmail-tcpserver")
	}
	if !strings.Contains(tcpserver, "/") {
		p, err := exec.LookPath(tcpserver)
		if err != nil {
			return fmt.Errorf("--tcpserver %s: not found in PATH", tcpserver)
		}
		tcpserver = p
	}
	if err := executable(tcpserver); err != nil {
		return fmt.Errorf("%w: run qmailctl install --root %s, or name another launcher with --tcpserver", err, root)
	}
	maxSMTP, err := ctl.IntOr("concurrencyincoming", 100)
	if err != nil {
		return err
	}
	// In a root install qmail-smtpd runs as qmaild in group nofiles;
	// qmail-popup stays root, because checkpassword needs it.
	ids := r.o.daemonIDs
	if ids == nil {
		ids = daemonIDs
	}
	dropTo, err := ids()
	if err != nil {
		return err
	}
	var rules []string
	if _, err := os.Stat(ctl.Path("tcp.smtp.cdb")); err == nil {
		rules = []string{"-x", ctl.Path("tcp.smtp.cdb")}
	}
	seen := map[string]string{}
	for _, l := range r.o.Listeners {
		host, port, err := SplitAddr(l.Addr)
		if err != nil {
			return fmt.Errorf("--%s %s: %v", l.Service, l.Addr, err)
		}
		if other, dup := seen[host+" "+port]; dup {
			return fmt.Errorf("--%s %s: the address is already given to --%s", l.Service, l.Addr, other)
		}
		seen[host+" "+port] = l.Service
		args := []string{tcpserver, "-v", "-R", "-H", "-l", me}
		var prog []string
		switch l.Service {
		case SMTP, Submission, SMTPS:
			args = append(append(args, dropTo...), rules...)
			args = append(args, "-c", strconv.FormatInt(maxSMTP, 10))
			if filepath.Base(tcpserver) == "qmail-tcpserver" {
				// One qmail-smtpd process serves up to SMTPDReuse
				// sessions in turn (docs/architecture.md).
				args = append(args, "-k", strconv.Itoa(SMTPDReuse))
			}
			prog = []string{bin("qmail-smtpd")}
			if l.Service != SMTP {
				prog = append(prog, "--"+l.Service)
			}
		case POP3:
			prog = []string{bin("qmail-popup"), me, bin("checkpassword"), bin("qmail-pop3d"), "Maildir"}
		default:
			return fmt.Errorf("unknown service %q", l.Service)
		}
		for _, p := range prog {
			if strings.HasPrefix(p, root+"/") {
				if err := executable(p); err != nil {
					return fmt.Errorf("--%s needs %w: run qmailctl install --root %s", l.Service, err, root)
				}
			}
		}
		if l.Service == SMTPS {
			if err := checkCert(ctl.Path("servercert.pem"), root); err != nil {
				return err
			}
		}
		args = append(append(args, host, port), prog...)
		r.lis = append(r.lis, r.newPart(l.Service, l.Addr, args))
	}
	return nil
}

// daemonIDs are tcpserver's -u and -g for qmail-smtpd: qmaild and
// nofiles in a root install, none otherwise.
func daemonIDs() ([]string, error) {
	if !privsep.Root() {
		return nil, nil
	}
	d, err := privsep.Lookup(privsep.Daemon)
	if err != nil {
		return nil, err
	}
	gid, err := privsep.LookupGroup(privsep.GroupNofiles)
	if err != nil {
		return nil, err
	}
	return []string{"-u", strconv.Itoa(d.UID), "-g", strconv.Itoa(gid)}, nil
}

// checkCert makes sure implicit TLS has a certificate to offer, so the
// problem shows now rather than as failed handshakes.
func checkCert(path, root string) error {
	pem, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--smtps needs a certificate in %s: make one with qmailctl cert --self-signed --root %s, or put yours there (key and certificate in one PEM file)", path, root)
	}
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(pem, pem); err != nil {
		return fmt.Errorf("%s: %v: it must hold the private key and the certificate chain in PEM", path, err)
	}
	return nil
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is missing", path)
		}
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// SplitAddr splits a listening address into tcpserver's host and port
// operands: "127.0.0.1:25", "[::1]:587", ":110" (every address, "0").
func SplitAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", errors.New("want HOST:PORT, e.g. 127.0.0.1:25 or [::1]:25")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	switch {
	case host == "":
		host = "0"
	case net.ParseIP(host) == nil && !validHostname(host):
		return "", "", fmt.Errorf("host %q: want an IP address or a host name", host)
	}
	return host, port, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return h != "" && h[0] != '-' && h[0] != '.'
}

func (r *runner) newPart(name, addr string, args []string) *part {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = r.o.Root
	// A minimal environment, as run scripts give with `env -`.
	cmd.Env = []string{
		"PATH=" + filepath.Join(r.o.Root, "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"QMAILHOME=" + r.o.Root,
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	// Its own process group: a Ctrl-C at the terminal reaches qmailctl
	// alone, which stops the parts in order. Should qmailctl die, the
	// kernel sends the part TERM, so it still stops cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return &part{name: name, addr: addr, cmd: cmd, done: make(chan struct{}), logs: make(chan struct{})}
}

// start starts p; its exit is reported on exited, its first status line
// on ready.
func (r *runner) start(p *part, exited, ready chan<- *part) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	err = timerslack.Start(p.cmd.Start)
	pw.Close()
	if err != nil {
		pr.Close()
		return err
	}
	p.log = pr
	go func() {
		defer close(p.logs)
		r.out.copy(p.name, pr, func() { ready <- p })
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
		exited <- p
	}()
	r.logf("started %s (pid %d): %s", p.name, p.pid(), strings.Join(p.cmd.Args, " "))
	return nil
}

func (r *runner) logf(format string, args ...any) {
	r.out.line("run", fmt.Sprintf(format, args...))
}

func (r *runner) parts() []*part { return append([]*part{r.send}, r.lis...) }

func (r *runner) run() error {
	r.logf("instance %s, pid %d", r.o.Root, os.Getpid())
	all := r.parts()
	exited := make(chan *part, len(all))
	ready := make(chan *part, len(all))
	for _, p := range all {
		if err := r.start(p, exited, ready); err != nil {
			err = fmt.Errorf("unable to start %s: %w", p.name, err)
			r.logf("%v; stopping the rest", err)
			r.stop(nil)
			return err
		}
	}
	var failure error
	nready := 0
loop:
	for {
		select {
		case sig := <-r.o.Signals:
			if r.forward(sig) {
				continue
			}
			r.logf("%v: stopping: listeners first, then qmail-start (deliveries in progress finish); a second signal kills everything", sig)
			break loop
		case p := <-exited:
			failure = fmt.Errorf("%s (pid %d) stopped unexpectedly: %v", p.name, p.pid(), describe(p.err))
			r.logf("%v; stopping the rest", failure)
			break loop
		case p := <-ready:
			if p.ready {
				continue
			}
			p.ready = true
			if nready++; nready == len(all) {
				names := []string{Send}
				for _, l := range r.lis {
					names = append(names, l.name+" "+l.addr)
				}
				r.logf("ready: %s", strings.Join(names, ", "))
			}
		}
	}
	forced := r.stop(r.o.Signals)
	return r.result(failure, forced)
}

// forward hands HUP and ALRM to qmail-start and reports whether sig was
// one of them.
func (r *runner) forward(sig os.Signal) bool {
	if sig != syscall.SIGHUP && sig != syscall.SIGALRM {
		return false
	}
	if !r.send.exited() {
		r.send.cmd.Process.Signal(sig)
		r.logf("%v passed to qmail-start", sig)
	}
	return true
}

// stop stops every part, listeners first, and waits for their logs. An
// INT or TERM on signals makes it kill everything at once; it reports
// whether that happened.
func (r *runner) stop(signals <-chan os.Signal) (forced bool) {
	force := make(chan struct{})
	quit := make(chan struct{})
	defer close(quit)
	begun := time.Now()
	go func() {
		for {
			select {
			case sig := <-signals:
				if r.forward(sig) {
					continue
				}
				if time.Since(begun) < sameSignal {
					continue
				}
				r.logf("%v again: killing everything now (deliveries cut short stay queued and are retried)", sig)
				close(force)
				return
			case <-quit:
				return
			}
		}
	}()
	isForced := func() bool {
		select {
		case <-force:
			return true
		default:
			return false
		}
	}

	// The listeners: TERM to each launcher, so no session starts; then
	// the sessions in progress get the grace period to end.
	for _, l := range r.lis {
		if l.cmd.Process != nil && !l.exited() {
			l.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(r.grace)
	for _, l := range r.lis {
		if l.cmd.Process == nil {
			continue
		}
		if !r.waitGone(l, deadline, force) && !isForced() {
			r.logf("%s: sessions still running after %v: terminating them", l.name, r.grace)
			r.killGroup(l, syscall.SIGTERM)
			if !r.waitGone(l, time.Now().Add(5*time.Second), force) {
				r.killGroup(l, syscall.SIGKILL)
			}
		}
	}
	// The delivery side: qmail-start passes TERM to qmail-send, which
	// starts nothing new and waits for the deliveries in flight.
	if s := r.send; s.cmd.Process != nil {
		if !s.exited() && !isForced() {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		r.waitGone(s, time.Time{}, force)
	}
	if isForced() {
		for _, p := range r.parts() {
			if p.cmd.Process != nil {
				r.killGroup(p, syscall.SIGKILL)
				r.waitGone(p, time.Now().Add(5*time.Second), nil)
			}
		}
	}
	// Every writer of the logs is gone, unless a program left its group;
	// don't wait for such a one forever.
	for _, p := range r.parts() {
		if p.log == nil {
			continue
		}
		select {
		case <-p.logs:
		case <-time.After(2 * time.Second):
			r.logf("%s: a process outside its group still holds the log open; not waiting for it", p.name)
		}
		p.log.Close()
	}
	return isForced()
}

// waitGone waits until p has exited and every process of its group is
// gone, or until the deadline (zero: none) or force. It reports whether
// the group is gone.
func (r *runner) waitGone(p *part, deadline time.Time, force <-chan struct{}) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.exited() && groupGone(p.pid()) {
			return true
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return false
		}
		select {
		case <-force:
			r.killGroup(p, syscall.SIGKILL)
			force = nil // keep waiting, now for the kill
			if deadline.IsZero() || time.Until(deadline) > 5*time.Second {
				deadline = time.Now().Add(5 * time.Second)
			}
		case <-tick.C:
		}
	}
}

// groupGone reports whether process group pgid has no member left. It
// first reaps the group's members that are its children: sessions
// orphaned when their launcher stopped, adopted because Run is a child
// subreaper (or process 1, in a container). Call it only once the
// group's leader has been waited for, so its status goes to its
// exec.Cmd.
func groupGone(pgid int) bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if err != nil || pid <= 0 {
			break
		}
	}
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

func (r *runner) killGroup(p *part, sig syscall.Signal) {
	if err := syscall.Kill(-p.pid(), sig); err == nil && sig == syscall.SIGKILL {
		r.logf("%s: killed", p.name)
	}
}

// result is Run's answer once everything stopped.
func (r *runner) result(failure error, forced bool) error {
	if failure != nil {
		return failure
	}
	if forced {
		return errors.New("killed on a second signal: deliveries that were cut short will be retried")
	}
	if s := r.send; !s.exited() || s.err != nil {
		return fmt.Errorf("qmail-start did not stop cleanly: %v", describeExited(s))
	}
	for _, l := range r.lis {
		if !l.exited() {
			return fmt.Errorf("%s did not stop", l.name)
		}
		if l.err != nil && !stoppedByTerm(l.err) {
			return fmt.Errorf("%s did not stop cleanly: %v", l.name, describeExited(l))
		}
	}
	r.logf("stopped")
	return nil
}

func stoppedByTerm(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

func describe(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func describeExited(p *part) string {
	if !p.exited() {
		return "still running"
	}
	err := p.err
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tagger writes whole lines, each tagged with its part's name, so that
// the parts' logs interleave line by line.
type tagger struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *tagger) line(tag string, text string) {
	t.write([]byte(tag + ": " + text + "\n"))
}

func (t *tagger) write(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(b)
}

// maxLine bounds a log line; a longer one is cut into pieces, each
// tagged.
const maxLine = 16 << 10

// copy copies r's lines to the tagger until EOF. The first line holding
// "status: " (tcpserver -v's and qmail-send's first status line, written
// once they are listening or running) calls ready. The whole lines that
// one read brought are tagged and written together, in one write.
func (t *tagger) copy(tag string, r io.Reader, ready func()) {
	br := bufio.NewReaderSize(r, maxLine)
	out := make([]byte, 0, 2*(len(tag)+2+maxLine+1))
	seen := false
	for {
		out = out[:0]
		call := false
		var err error
		for {
			var b []byte
			b, err = br.ReadSlice('\n')
			if len(b) > 0 {
				b = bytes.TrimSuffix(b, []byte("\n"))
				out = append(append(append(append(out, tag...), ": "...), b...), '\n')
				if !seen && bytes.Contains(b, []byte("status: ")) {
					seen, call = true, true
				}
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) || len(out) > maxLine || !lineBuffered(br) {
				break
			}
		}
		if len(out) > 0 {
			t.write(out)
		}
		if call {
			ready()
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// lineBuffered reports whether br holds a whole line already, so reading
// it will not wait.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// Lock takes the instance's run lock, so that two `qmailctl run` never
// run one instance. It returns the function that releases it.
func Lock(root string) (release func(), err error) {
	path := filepath.Join(root, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing: run qmailctl init --root %s", filepath.Dir(path), root)
		}
		return nil, fmt.Errorf("run lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, _ := io.ReadAll(io.LimitReader(f, 32)); len(bytes.TrimSpace(b)) > 0 {
				pid = string(bytes.TrimSpace(b))
			}
			return nil, fmt.Errorf("the instance %s is already running under qmailctl run (pid %s, holding %s): stop that one first", root, pid, path)
		}
		return nil, fmt.Errorf("run lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		f.Truncate(0)
		f.Close()
	}, nil
}
