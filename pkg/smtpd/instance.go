package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/cdb"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/popgrant"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/pkg/quota"
	"github.com/quail-mta/quail/pkg/ratelimit"
	"github.com/quail-mta/quail/pkg/recipient"
	"github.com/quail-mta/quail/pkg/routing"
	"github.com/quail-mta/quail/pkg/sysfile"
	"github.com/quail-mta/quail/pkg/users"
)

const usage = `usage: qmail-smtpd [--submission | --smtps] [--checkpassword PROG] [CHECKPROG SUBPROG...]

One SMTP session on fd 0 and 1, as started by tcpserver, qmail-tcpserver
or inetd. The instance is $QMAILHOME (default /var/qmail). See
docs/qmail-smtpd.8.md.
`

// Main is qmail-smtpd: it reads the instance's control files, then serves
// the connection on stdin and stdout. It returns the exit status.
func Main(args []string, stdin, stdout *os.File, stderr io.Writer) int {
	flags := pflag.NewFlagSet("qmail-smtpd", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	submission := flags.Bool("submission", false, "port 587: AUTH required before MAIL; RELAYCLIENT and POP-before-SMTP grant nothing")
	smtps := flags.Bool("smtps", false, "port 465: submission over implicit TLS")
	checker := flags.String("checkpassword", "", "checkpassword program for AUTH (default: bin/checkpassword)")
	cram := flags.Bool("cram", false, "offer CRAM-MD5 with a checker other than quail's checkpassword (it must verify CRAM-MD5 digests)")
	help := flags.BoolP("help", "h", false, "show this help")
	flags.SetInterspersed(false)
	if err := flags.Parse(args); err != nil {
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n%s", err, usage)
		return 2
	}
	if *help {
		fmt.Fprint(stderr, usage+"\n"+flags.FlagUsages())
		return 0
	}
	if stderrIsConnection() {
		// inetd gives the socket on fd 2 too: a log line there would
		// reach the client as a reply. Nothing is logged, and children
		// get /dev/null.
		stderr = io.Discard
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			syscall.Dup2(int(null.Fd()), 2)
			null.Close()
		}
	}
	root := control.Home()
	cfg, err := loadConfig(root, flags.Args(), *checker, *cram)
	if err != nil {
		// qmail's reply when it cannot read its controls, then the cause
		// for the admin in the log.
		stdout.WriteString("421 unable to read controls (#4.3.0)\r\n")
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
		return 1
	}
	switch {
	case *submission && *smtps:
		fmt.Fprintf(stderr, "qmail-smtpd: --submission and --smtps exclude each other\n")
		return 2
	case *submission:
		cfg.Mode = Submission
	case *smtps:
		cfg.Mode = SMTPS
	default:
		if _, ok := os.LookupEnv("SMTPS"); ok {
			cfg.Mode = SMTPS // the TLS patch's convention for port 465
		}
	}
	if cfg.Mode == SMTPS && cfg.TLS == nil {
		fmt.Fprintf(stderr, "qmail-smtpd: SMTPS needs control/servercert.pem (certificate and key); run qmailctl cert\n")
		return 1
	}
	conn, err := stdioConn(stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
		return 1
	}
	// Closed before Main returns: a process reused for the next
	// connection (qmail-tcpserver -k) must hold no copy of this one.
	defer conn.Close()
	cfg.connInfo(conn)
	if cfg.Mode == MX && cfg.RemoteIP != "" {
		// Asked at the first RCPT (the session keeps the answer), so a
		// session that sends no mail reads nothing for it.
		ip := cfg.RemoteIP
		cfg.PopGrant = func() (bool, error) {
			window, err := popgrant.Window(control.New(root))
			if err != nil || window <= 0 {
				return false, err
			}
			return popgrant.Allowed(root, ip, window, time.Now())
		}
	}
	cfg.Log = stderr
	if err := Serve(conn, cfg); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		fmt.Fprintf(stderr, "qmail-smtpd: pid=%d remote=%s event=end err=%q\n", pid, orUnknown(cfg.RemoteIP), err.Error())
		return 1
	}
	return 0
}

// loadConfig reads what a session needs from the instance's control
// files (reference §3.1).
func loadConfig(root string, checkArgs []string, checker string, cram bool) (Config, error) {
	ctl := control.New(root)
	var cfg Config
	me, ok, err := ctl.Value("me")
	if err != nil {
		return cfg, err
	}
	greeting, gok, err := ctl.Value("smtpgreeting")
	if err != nil {
		return cfg, err
	}
	if !gok {
		if !ok {
			return cfg, errors.New("neither control/smtpgreeting nor control/me exists")
		}
		greeting = me
	}
	cfg.Greeting, cfg.Hostname = greeting, me
	if cfg.LocalIPHost, err = ctl.String("localiphost"); err != nil {
		return cfg, err
	}
	t, err := ctl.Int("timeoutsmtpd")
	if err != nil {
		return cfg, err
	}
	if t <= 0 {
		t = 1
	}
	cfg.Timeout = time.Duration(t) * time.Second
	if cfg.DataBytes, err = ctl.Int("databytes"); err != nil {
		return cfg, err
	}
	if v, ok := os.LookupEnv("DATABYTES"); ok && control.EnvTrusted() {
		if cfg.DataBytes, err = control.ParseInt(v); err != nil {
			return cfg, fmt.Errorf("$DATABYTES: %v", err)
		}
	}
	maxRcpt, err := ctl.IntOr("maxrcpt", DefaultMaxRcpt)
	if err != nil {
		return cfg, err
	}
	cfg.MaxRcpt = int(maxRcpt)
	hosts, err := rcptHosts(ctl)
	if err != nil {
		return cfg, err
	}
	cfg.RcptHost = hosts
	bad, err := ctl.List("badmailfrom")
	if err != nil {
		return cfg, err
	}
	cfg.BadMailFrom = badMailFrom(bad)
	plain, err := ctl.IntOr("authplaintext", 0)
	if err != nil {
		return cfg, err
	}
	cfg.AuthPlaintext = plain != 0
	if cfg.TLS, err = serverTLS(ctl.Path("servercert.pem")); err != nil {
		return cfg, err
	}
	cfg.RelayClient, cfg.HasRelayClient = os.LookupEnv("RELAYCLIENT")
	var host string
	cfg.Auth, host, cfg.AuthCRAM = authenticator(root, checkArgs, checker)
	cfg.AuthCRAM = cfg.Auth != nil && (cfg.AuthCRAM || cram)
	if host != "" {
		cfg.Hostname = host
	}
	lookup := &lazyLookup{root: root, ctl: ctl}
	cfg.Recipient = lookup.recipient
	cfg.SenderAllowed = lookup.senderAllowed
	cfg.Contract = lookup.contract
	cfg.ReceiveCheck = lookup.receiveCheck
	cfg.SendCheck = lookup.sendCheck
	cfg.Accepted = lookup.accepted
	cfg.Queue = func() (Injector, error) { return queueKeeper(root).Start() }
	return cfg, nil
}

// keeper keeps the queue program running from one message to the next,
// and from one session to the next when qmail-tcpserver -k reuses this
// process, so that a message costs no process creation (package qq's
// serve mode). It is replaced when a session's environment names another
// queue program (QMAILQUEUE set by a tcprules entry, say).
var keeper *qq.Keeper

// Shutdown ends the queue program kept for this process, and waits for
// it: qmail-smtpd calls it before it exits.
func Shutdown() {
	if keeper != nil {
		keeper.Close()
		keeper = nil
	}
}

func queueKeeper(root string) *qq.Keeper {
	if keeper != nil && (keeper.Program() != qq.Program(root) || keeper.Root() != root) {
		keeper.Close()
		keeper = nil
	}
	if keeper == nil {
		keeper = qq.NewKeeper(root)
	}
	return keeper
}

// authenticator is the checkpassword program AUTH runs: the operands as
// in qmail's AUTH patches, "CHECKPROG SUBPROG..." (Hoffmann) or
// "HOSTNAME CHECKPROG SUBPROG..." (Dabrowski, whose HOSTNAME names the
// CRAM-MD5 challenge's host), else --checkpassword, else the instance's
// own bin/checkpassword; each run with true as its subprogram when none
// is given. cram reports whether the checker is quail's checkpassword,
// which can verify CRAM-MD5 (djb's cannot).
func authenticator(root string, args []string, checker string) (a Authenticator, host string, cram bool) {
	own := filepath.Join(root, "bin", "checkpassword")
	if len(args) > 0 {
		if len(args) >= 3 && lookPath(args[0]) == "" && lookPath(args[1]) != "" {
			host, args = args[0], args[1:]
		}
		if p := lookPath(args[0]); p != "" {
			args = append([]string{p}, args[1:]...)
		} // else running it fails, and AUTH fails closed with 454
		return Checkpassword{Args: withSubprogram(args)}, host, args[0] == own
	}
	if checker == "" {
		checker = own
		if _, err := os.Stat(checker); err != nil {
			return nil, "", false
		}
	}
	return Checkpassword{Args: withSubprogram([]string{checker})}, "", filepath.Clean(checker) == own
}

// lookPath finds an executable as execvp would: a name with a slash as
// it is, else in $PATH. "" when there is none.
func lookPath(name string) string {
	exe := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
	}
	if strings.Contains(name, "/") {
		if exe(name) {
			return name
		}
		return ""
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		if p := filepath.Join(dir, name); exe(p) {
			return p
		}
	}
	return ""
}

func withSubprogram(args []string) []string {
	if len(args) > 1 {
		return args
	}
	return []string{args[0], trueProgram()}
}

// trueProgram is looked for once per process, not per session.
var trueProgram = sync.OnceValue(func() string {
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "true"
})

// serverTLS offers TLS with control/servercert.pem, the certificate chain
// and its private key in one file (the convention of qmail's TLS patch).
// No file, no STARTTLS. The file is parsed only when a client starts TLS,
// so a session that never does pays nothing for it; a file that cannot
// be used fails that handshake and is named in the log.
func serverTLS(path string) (*tls.Config, error) {
	f, err := sysfile.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		// Most often qmaild may not read it: say so, and offer no TLS
		// rather than a handshake bound to fail.
		fmt.Fprintf(os.Stderr, "qmail-smtpd: %v; STARTTLS not offered (the file must be readable by qmail-smtpd's account)\n", err)
		return nil, nil
	}
	f.Close()
	var (
		once sync.Once
		cert tls.Certificate
		cerr error
	)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			once.Do(func() {
				cert, cerr = tls.LoadX509KeyPair(path, path)
				if cerr != nil {
					cerr = fmt.Errorf("%s: %v (it must hold the certificate and its private key)", path, cerr)
				}
			})
			return &cert, cerr
		},
	}, nil
}

// rcptHosts is qmail's rcpthosts test: the domain, lower-cased, and each
// of its suffixes that starts with a dot, in control/rcpthosts, then the
// same keys in control/morercpthosts.cdb.
func rcptHosts(ctl control.Dir) (func(string) (bool, error), error) {
	list, err := ctl.List("rcpthosts")
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(list))
	for _, h := range list {
		set[strings.ToLower(h)] = true
	}
	more := ctl.Path("morercpthosts.cdb")
	return func(domain string) (bool, error) {
		domain = strings.ToLower(domain)
		keys := []string{domain}
		for i := 0; i < len(domain); i++ {
			if domain[i] == '.' {
				keys = append(keys, domain[i:])
			}
		}
		for _, k := range keys {
			if set[k] {
				return true, nil
			}
		}
		db, err := cdb.Open(more)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", more, err)
		}
		defer db.Close()
		for _, k := range keys {
			if _, ok, err := db.Get([]byte(k)); err != nil {
				return false, fmt.Errorf("%s: %w", more, err)
			} else if ok {
				return true, nil
			}
		}
		return false, nil
	}, nil
}

// badMailFrom matches a sender against badmailfrom's lines: the whole
// address, or "@domain" for the domain part (case-insensitively).
func badMailFrom(lines []string) func(string) bool {
	set := make(map[string]bool, len(lines))
	for _, l := range lines {
		set[strings.ToLower(l)] = true
	}
	return func(addr string) bool {
		addr = strings.ToLower(addr)
		if set[addr] {
			return true
		}
		if at := strings.LastIndexByte(addr, '@'); at >= 0 {
			return set[addr[at:]]
		}
		return false
	}
}

// lazyLookup loads the routing tables on first use, so a session that
// never reaches RCPT reads nothing more.
type lazyLookup struct {
	root     string
	ctl      control.Dir
	table    *routing.Table
	resolver *recipient.Resolver
	err      error
	rates    *ratelimit.Table
	ratesErr error
	ratesSet bool
}

func (l *lazyLookup) load() error {
	if l.table != nil || l.err != nil {
		return l.err
	}
	l.table, l.err = routing.Load(l.ctl)
	if l.err != nil {
		return l.err
	}
	l.resolver = &recipient.Resolver{Root: l.root, Passwd: users.System{},
		Owner: recipient.VirtualOwner, SingleUser: singleUser(l.root), Outsider: !privsep.Root()}
	return nil
}

// singleUser reports whether the delivery side runs in single-user mode,
// as qmail-lspawn decides it: the instance is not a root install. The
// session itself runs as qmaild in a root install, so it asks the queue's
// owner rather than its own uid.
func singleUser(root string) bool {
	if privsep.Root() {
		return false
	}
	st, err := os.Stat(filepath.Join(root, "queue"))
	if err != nil {
		return true
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return !ok || int(sys.Uid) == os.Geteuid()
}

// recipient is the RCPT check for an address in one of our domains: it
// routes the address as qmail-send will and, for local delivery, asks
// local delivery's own lookup whether the mailbox exists.
func (l *lazyLookup) recipient(addr string) (RecipientError, error) {
	if err := l.load(); err != nil {
		return RecipientOK, err
	}
	channel, routed := l.table.Route(addr)
	if channel == routing.Remote {
		// A domain we accept but deliver elsewhere (a backup MX). The
		// percent hack must not turn it into an open relay.
		if !strings.EqualFold(routed, addr) {
			return Relay, nil
		}
		return RecipientOK, nil
	}
	local, _ := splitAddr(routed)
	ok, err := l.resolver.Exists(local)
	if err != nil {
		return RecipientOK, err
	}
	if !ok {
		return NoMailbox, nil
	}
	return RecipientOK, nil
}

// senderAllowed lets an authenticated user send as the addresses of their
// own contract: domains that route to the same hosted domain as theirs
// (the domain itself and its aliases in virtualdomains).
func (l *lazyLookup) senderAllowed(user, sender string) (bool, error) {
	if err := l.load(); err != nil {
		return false, err
	}
	if !strings.Contains(user, "@") {
		if i := strings.LastIndexByte(user, '%'); i >= 0 {
			user = user[:i] + "@" + user[i+1:]
		}
	}
	_, ud := splitAddr(user)
	_, sd := splitAddr(sender)
	if ud == "" || sd == "" {
		return false, nil
	}
	if strings.EqualFold(ud, sd) {
		return true, nil
	}
	// Both route to the same hosted domain's prefix: "x@alias.example"
	// and "x@example" both become "example-x".
	uc, ur := l.table.Route("x@" + ud)
	sc, sr := l.table.Route("x@" + sd)
	ul, _ := splitAddr(ur)
	sl, _ := splitAddr(sr)
	return uc == routing.Local && sc == routing.Local && ul == sl && ul != "x", nil
}

// stdioConn is the connection on fd 0 and 1: the socket itself when fd 0
// is one (tcpserver and inetd give the same socket on both), else the two
// descriptors joined, made non-blocking so that timeouts work on them too.
func stdioConn(in, out *os.File) (net.Conn, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(in.Fd()), &st); err != nil {
		return nil, fmt.Errorf("fd 0: %v", err)
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFSOCK {
		return newSocketConn(int(in.Fd()))
	}
	for _, f := range []*os.File{in, out} {
		if err := syscall.SetNonblock(int(f.Fd()), true); err != nil {
			return nil, err
		}
	}
	return pipeConn{os.NewFile(in.Fd(), "stdin"), os.NewFile(out.Fd(), "stdout")}, nil
}

// stderrIsConnection reports whether fd 2 is a socket, as inetd leaves
// it: the client's connection.
func stderrIsConnection() bool {
	var st syscall.Stat_t
	return syscall.Fstat(2, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}

// pipeConn is a connection over two files that are not a socket, as in
// tests and under inetd-like launchers with pipes.
type pipeConn struct{ r, w *os.File }

func (c pipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c pipeConn) Close() error {
	c.w.Close()
	return c.r.Close()
}
func (c pipeConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }
func (c pipeConn) SetDeadline(t time.Time) error {
	c.r.SetReadDeadline(t)
	return c.w.SetWriteDeadline(t)
}
func (c pipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c pipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "" }

// connInfo fills in who is talking: tcpserver's variables when set,
// else what the socket says (inetd sets none).
func (cfg *Config) connInfo(conn net.Conn) {
	cfg.RemoteIP = os.Getenv("TCPREMOTEIP")
	cfg.RemoteHost = os.Getenv("TCPREMOTEHOST")
	cfg.RemoteInfo = os.Getenv("TCPREMOTEINFO")
	cfg.LocalIP = os.Getenv("TCPLOCALIP")
	cfg.LocalHost = os.Getenv("TCPLOCALHOST")
	if cfg.RemoteIP == "" {
		cfg.RemoteIP = addrIP(conn.RemoteAddr())
	}
	if cfg.LocalIP == "" {
		cfg.LocalIP = addrIP(conn.LocalAddr())
	}
}

func addrIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().String()
}

// contract names the hosted domain that domain's mail goes to (the domain
// itself, or what virtualdomains maps an alias to), "" when it is not a
// hosted contract's.
func (l *lazyLookup) contract(domain string) string {
	if l.load() != nil {
		return ""
	}
	channel, routed := l.table.Route("x@" + domain)
	if channel != routing.Local {
		return ""
	}
	local, _ := splitAddr(routed)
	prefix, rest, ok := strings.Cut(local, "-")
	if !ok || rest != "x" || prefix == "" {
		return ""
	}
	prefix = strings.ToLower(prefix)
	if st, err := os.Stat(filepath.Join(l.root, "domains", prefix)); err != nil || !st.IsDir() {
		return ""
	}
	return prefix
}

// limitsFor reads control/ratelimits once per session.
func (l *lazyLookup) limitsFor(contract string) (ratelimit.Limits, error) {
	if !l.ratesSet {
		l.rates, l.ratesErr = ratelimit.Load(l.ctl)
		l.ratesSet = true
	}
	if l.ratesErr != nil {
		return ratelimit.Limits{}, l.ratesErr
	}
	return l.rates.For(contract), nil
}

const replyRate = "423 sorry, that message exceeds my limit"

func (l *lazyLookup) rateCheck(contract string, d ratelimit.Direction) (string, error) {
	lim, err := l.limitsFor(contract)
	if err != nil {
		return "", err
	}
	blocked, err := ratelimit.Blocked(l.root, contract, d, lim, time.Now())
	if err != nil || !blocked {
		return "", err
	}
	return replyRate, nil
}

// receiveCheck is a recipient contract's disk quota, with room for size
// bytes (SPEC §8), then its receive rate.
func (l *lazyLookup) receiveCheck(contract string, size int64) (string, error) {
	over, err := quota.Over(l.root, contract, size)
	if err != nil {
		return "", err
	}
	if over {
		return "452 sorry, mailbox is full (#4.5.2)", nil
	}
	return l.rateCheck(contract, ratelimit.Receive)
}

func (l *lazyLookup) sendCheck(contract string) (string, error) {
	return l.rateCheck(contract, ratelimit.Send)
}

// accepted counts a queued message: once for the sending contract, once
// for each recipient contract.
func (l *lazyLookup) accepted(send string, rcpts []string) error {
	now := time.Now()
	var first error
	count := func(c string, d ratelimit.Direction) {
		lim, err := l.limitsFor(c)
		if err == nil {
			err = ratelimit.Count(l.root, c, d, lim, 1, now)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("counting %s: %w", c, err)
		}
	}
	if send != "" {
		count(send, ratelimit.Send)
	}
	seen := map[string]bool{}
	for _, c := range rcpts {
		if !seen[c] {
			seen[c] = true
			count(c, ratelimit.Receive)
		}
	}
	return first
}
