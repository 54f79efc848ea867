// Package tcpserver is qmail-tcpserver: a per-connection launcher that
// does what ucspi-tcp 0.88's tcpserver does for qmail sites, so that a
// quail install needs no outside package. It takes tcpserver's options,
// sets its environment variables, follows the rules databases tcprules
// writes and logs tcpserver's lines.
//
// Unlike tcpserver, which forks a copy of itself for every connection and
// does the name, ident and rules lookups in that copy, the launcher does
// them in a goroutine and then creates one process: the program. A
// connection that is denied or dropped therefore costs no process at all.
// With -k, a program that speaks package reuse's protocol (qmail-smtpd)
// serves several connections in turn, so that most cost no process
// either.
package tcpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/reuse"
	"github.com/quail-mta/quail/pkg/sockaddr"
	"github.com/quail-mta/quail/pkg/timerslack"
)

// Server is a bound listener and the state of its connections.
type Server struct {
	o        Options
	ln       *os.File // the listening socket (listen)
	port     int
	stderr   *os.File
	log      *logger
	base     []string
	path     string
	resolver *net.Resolver
	identd   uint16 // the port ident queries go to: 113 but in tests

	sem      chan struct{} // one token per connection being served (-c)
	active   int           // guarded by log.mu, so status lines stay in order
	starting sync.WaitGroup
	pool     pool // -k's processes
}

// Listen resolves HOST and PORT, binds the listening socket and then
// switches to o.UID and o.GID. stderr receives the log and is the
// children's fd 2; environ is the environment the children start from.
func Listen(ctx context.Context, o Options, stderr *os.File, environ []string) (*Server, error) {
	if o.Limit < 1 || len(o.Program) == 0 {
		return nil, errors.New("tcpserver: Options need a Limit of at least 1 and a Program")
	}
	r := net.DefaultResolver
	host, err := ResolveHost(ctx, r, o.Host)
	if err != nil {
		return nil, err
	}
	port, err := ResolvePort(ctx, r, o.Port)
	if err != nil {
		return nil, err
	}
	ln, err := listen(netip.AddrPortFrom(host, port), o.Backlog)
	if err != nil {
		return nil, err
	}
	if err := dropPrivileges(o.UID, o.GID); err != nil {
		ln.Close()
		return nil, err
	}
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = "/bin:/usr/bin" // execvp's default, as tcpserver's pathexec
	}
	s := &Server{
		o:        o,
		ln:       ln,
		port:     boundPort(ln),
		stderr:   stderr,
		log:      &logger{w: stderr},
		base:     BaseEnv(environ),
		path:     path,
		resolver: r,
		identd:   identPort,
		sem:      make(chan struct{}, o.Limit),
		pool:     pool{idleMax: idleMax},
	}
	return s, nil
}

func boundPort(ln *os.File) int {
	raw, err := ln.SyscallConn()
	if err != nil {
		return 0
	}
	var port uint16
	raw.Control(func(fd uintptr) { port = sockaddr.Local(int(fd)).Port() })
	return int(port)
}

// Port is the bound port, the one the kernel chose when PORT was 0.
func (s *Server) Port() int { return s.port }

// Serve accepts connections until ctx is done. Then it closes the
// listener, waits for the connections still being looked up to have
// started their program (or been refused), and returns nil, leaving the
// programs running as tcpserver does on SIGTERM. With -k, idle programs
// are told to exit, and busy ones will be when they finish.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.stopReuse()
	s.changeActive(0, "")
	for {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			s.starting.Wait()
			return nil
		}
		c, err := s.accept()
		if err != nil {
			<-s.sem
			if ctx.Err() != nil {
				s.starting.Wait()
				return nil
			}
			if errors.Is(err, os.ErrClosed) {
				return err
			}
			// Out of descriptors, or a connection reset before accept:
			// tcpserver just tries again; a pause keeps a full descriptor
			// table from spinning the CPU.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.changeActive(1, "")
		s.starting.Add(1)
		go s.serveConn(ctx, c)
	}
}

// changeActive counts a connection in or out and, with -v, writes before
// and the status line together.
func (s *Server) changeActive(delta int, before string) {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.active += delta
	if s.o.Verbosity >= Verbose {
		io.WriteString(s.log.w, before+statusLine(s.active, s.o.Limit))
	}
}

// conn is an accepted connection as tcpserver has it: a blocking
// descriptor that Go's poller never saw. Go's Accept would register it,
// set TCP_NODELAY and keepalives, and each would have to be undone for
// the program, at a dozen system calls per connection.
type conn struct {
	fd            int
	local, remote netip.AddrPort
}

// accept waits for the next connection.
func (s *Server) accept() (conn, error) {
	raw, err := s.ln.SyscallConn()
	if err != nil {
		return conn{}, err
	}
	var c conn
	var sa unix.Sockaddr
	var aerr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			c.fd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			switch aerr {
			case unix.EINTR, unix.ECONNABORTED:
				continue // nothing to wait for: try again, as Go's Accept does
			case unix.EAGAIN:
				return false // wait for the next connection
			}
			return true
		}
	})
	if err != nil {
		// With no deadline set, waiting fails only once the listener
		// is closed (and says so in the poller's words, not os's).
		return conn{}, os.ErrClosed
	}
	if aerr != nil {
		return conn{}, os.NewSyscallError("accept4", aerr)
	}
	c.remote, c.local = sockaddr.AddrPort(sa), sockaddr.Local(c.fd)
	return c, nil
}

func (s *Server) serveConn(ctx context.Context, c conn) {
	p, end := s.launch(ctx, c)
	s.starting.Done()
	switch {
	case p != nil:
		var wstat uint32
		if st, err := p.Wait(); err == nil {
			wstat = uint32(st.Sys().(syscall.WaitStatus))
		}
		end = endLine(p.Pid, wstat)
	case end == "":
		return // a -k process serves it; its watcher counts it out
	}
	s.changeActive(-1, end)
	<-s.sem
}

func endLine(pid int, wstat uint32) string {
	return logPrefix + "end " + strconv.Itoa(pid) + " status " + strconv.FormatUint(uint64(wstat), 10) + "\n"
}

func pidLine(pid int, ip string) string {
	return logPrefix + "pid " + strconv.Itoa(pid) + " from " + ip + "\n"
}

// launch does tcpserver's child's work for one connection: banner,
// lookups, rules, and then it starts the program. It returns the program's
// process, or nil and the "end" line to log when no program runs; those
// connections are logged with pid 0. With -k it returns nil and "" when
// the connection went to a process of the pool, new or reused.
func (s *Server) launch(ctx context.Context, c conn) (*os.Process, string) {
	file := os.NewFile(uintptr(c.fd), "tcp")
	defer file.Close() // the program has its own descriptor
	f := Facts{Local: c.local, Remote: c.remote}
	from := pidLine(0, IPString(f.Remote.Addr()))
	drop := func(what string, err error) (*os.Process, string) {
		msg := dropPrefix + what + ": " + errText(err) + "\n"
		switch {
		case s.o.Verbosity >= Verbose:
			s.log.write(from + msg)
		case s.o.Verbosity >= Errors:
			s.log.write(msg)
		}
		return nil, endLine(0, wstatDrop)
	}

	s.tune(c.fd)
	if s.o.Banner != "" {
		if _, err := io.WriteString(file, s.o.Banner); err != nil {
			return drop("unable to print banner", err)
		}
	}
	// Lookups under way finish after SIGTERM, as in tcpserver's
	// children, which the signal did not reach.
	s.lookups(context.WithoutCancel(ctx), &f)
	var rule Rule
	if s.o.Rules != "" {
		var err error
		rule, err = LookupFile(s.o.Rules, s.o.AllowNoRules, Client{
			IP:   IPString(f.Remote.Addr()),
			Host: f.RemoteHost, HasHost: f.HasRemoteHost,
			Info: f.RemoteInfo, HasInfo: f.HasRemoteInfo,
		})
		if err != nil {
			return drop("unable to read "+s.o.Rules, err)
		}
	}
	if rule.Deny {
		if s.o.Verbosity >= Verbose {
			s.log.write(from + connLine("deny", 0, &f))
		}
		return nil, endLine(0, wstatDeny)
	}

	env := ChildEnv(s.base, f, rule.Env)
	reusing := s.o.Reuse >= 2
	if reusing && envSize(env) <= reuse.MaxEnv && s.handoff(c.fd, env, &f) {
		return nil, ""
	}

	prog := s.o.Program[0]
	path, err := lookPath(prog, s.path)
	if err != nil {
		return drop("unable to run "+prog, err)
	}
	if reusing {
		w, err := s.startWorker(path, file, env)
		if err != nil {
			return drop("unable to run "+prog, err)
		}
		if s.o.Verbosity >= Verbose {
			s.log.write(pidLine(w.p.Pid, IPString(f.Remote.Addr())) + connLine("ok", w.p.Pid, &f))
		}
		s.watch(w)
		return nil, ""
	}
	var p *os.Process
	err = timerslack.StartSession(func() (err error) {
		p, err = os.StartProcess(path, s.o.Program, &os.ProcAttr{
			Env:   env,
			Files: []*os.File{file, file, s.stderr},
		})
		return err
	})
	if err != nil {
		return drop("unable to run "+prog, err)
	}
	if s.o.Verbosity >= Verbose {
		s.log.write(pidLine(p.Pid, IPString(f.Remote.Addr())) + connLine("ok", p.Pid, &f))
	}
	return p, ""
}

// tune sets the socket options tcpserver sets: TCP_NODELAY with -D (a
// new socket has it off, as -d wants), and no source-routed replies
// unless -o. IP options apply to IPv4 only and, as in tcpserver, a
// failure is ignored.
func (s *Server) tune(fd int) {
	if s.o.NoDelay {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if !s.o.KeepIPOptions {
		unix.SetsockoptString(fd, unix.IPPROTO_IP, unix.IP_OPTIONS, "")
	}
}

// lookups fills in the names and the ident answer, in tcpserver's order.
func (s *Server) lookups(ctx context.Context, f *Facts) {
	if s.o.HasLocalHost {
		f.LocalHost, f.HasLocalHost = s.o.LocalHost, true
	} else {
		f.LocalHost, f.HasLocalHost = s.name(ctx, f.Local.Addr())
	}
	if s.o.RemoteHost {
		f.RemoteHost, f.HasRemoteHost = s.name(ctx, f.Remote.Addr())
		if f.HasRemoteHost && s.o.Paranoid && !s.resolvesTo(ctx, f.RemoteHost, f.Remote.Addr()) {
			f.RemoteHost, f.HasRemoteHost = "", false
		}
	}
	if s.o.RemoteInfo {
		f.RemoteInfo, f.HasRemoteInfo = ident(ctx, f.Local, f.Remote, s.identd, s.o.InfoTimeout)
	}
}

// name is the first name of a, lower-cased and without the final dot as
// tcpserver gave it. It comes from the system's resolver configuration,
// so /etc/hosts counts (tcpserver asked DNS only).
func (s *Server) name(ctx context.Context, a netip.Addr) (string, bool) {
	names, err := s.resolver.LookupAddr(ctx, a.Unmap().WithZone("").String())
	if err != nil || len(names) == 0 {
		return "", false
	}
	n := strings.ToLower(strings.TrimSuffix(names[0], "."))
	return n, n != ""
}

// resolvesTo is -p's check: one of name's addresses of a's family is a.
func (s *Server) resolvesTo(ctx context.Context, name string, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	network := "ip6"
	if a.Is4() {
		network = "ip4"
	}
	addrs, err := s.resolver.LookupNetIP(ctx, network, name)
	if err != nil {
		return false
	}
	for _, b := range addrs {
		if b.Unmap().WithZone("") == a {
			return true
		}
	}
	return false
}

// Main is the qmail-tcpserver command: it returns the exit status, 100
// for misuse and 111 when the server cannot start, as tcpserver.
func Main(args []string, stdout, stderr *os.File) int {
	o, err := ParseArgs(args, os.LookupEnv, stderr)
	switch {
	case errors.Is(err, ErrHelp):
		return 0
	case err != nil:
		io.WriteString(stderr, "qmail-tcpserver: "+err.Error()+"\n"+Usage+"\n")
		return 100
	}
	// SIGTERM stops the server (not its children); SIGPIPE, when the log
	// reader is gone, must not kill it. Caught, rather than ignored, so
	// that the children start with both at their defaults.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	s, err := Listen(ctx, o, stderr, os.Environ())
	if err != nil {
		// Written even with -q: the server is not running, and the
		// admin needs to know why.
		io.WriteString(stderr, fatalText+err.Error()+"\n")
		return 111
	}
	if o.PrintPort {
		io.WriteString(stdout, strconv.Itoa(s.Port())+"\n")
	}
	// As tcpserver closes them: whoever started the server (and read
	// the port) must not be kept waiting for the launcher's stdout to
	// close.
	reuse.DetachStdio()
	if err := s.Serve(ctx); err != nil {
		io.WriteString(stderr, fatalText+"unable to accept: "+errText(err)+"\n")
		return 111
	}
	return 0
}
