// Package popup is qmail-popup: the AUTHORIZATION state of a POP3
// session. It greets the client with an APOP timestamp, takes USER/PASS
// or APOP (and CAPA, STLS, NOOP, QUIT), and hands each login to a
// checkpassword program, which runs qmail-pop3d as the mailbox's owner
// on success.
//
// Beyond qmail it offers STLS (RFC 2595) with control/servercert.pem,
// refuses USER/PASS in plain text when TLS is possible (unless
// control/pop3plaintext says 1), slows down addresses that keep failing,
// and records POP-before-SMTP grants (package popgrant) when the child
// signals a successful login. docs/qmail-popup.8.md describes all of it.
package popup

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quail-mta/quail/pkg/idleconn"
	"github.com/quail-mta/quail/pkg/pop3"
)

// Texts, qmail-popup's where it has one.
const (
	errAuthFirst  = "-ERR authorization first"
	errUserFirst  = "-ERR USER first"
	errAuthFailed = "-ERR authorization failed"
	errCrashed    = "-ERR aack, child crashed"
	// quail's own
	errTemporary  = "-ERR [SYS/TEMP] unable to check the password now; try again later"
	errNeedTLS    = "-ERR plain-text passwords need STLS first (or use APOP)"
	errNoTLS      = "-ERR TLS not available"
	errTLSActive  = "-ERR TLS already active"
	errTLSTrouble = "-ERR [SYS/TEMP] unable to start TLS"
	okTLS         = "+OK begin TLS negotiation"
)

// Config is one session's setting.
type Config struct {
	// Stamp is the APOP timestamp of the greeting, "<PID.TIME@HOST>".
	Stamp string
	// Launcher runs the password checker for a login attempt.
	Launcher Launcher
	// TLS gives the server's TLS configuration for STLS; nil means TLS
	// is not configured (no control/servercert.pem). It is called only
	// when a client asks, so a connection that does not use TLS costs
	// no certificate parsing. An error is a configuration problem:
	// STLS is refused and so, since TLS was meant to be there, is
	// USER/PASS in plain text.
	TLS func() (*tls.Config, error)
	// Plaintext allows USER/PASS before STLS although TLS is
	// configured (control/pop3plaintext).
	Plaintext bool
	// RemoteIP is the client's address, for the log, the failure
	// limiter and (in the launcher) the grant; "" when unknown.
	RemoteIP string
	// Limiter slows down addresses that failed to log in; nil: none.
	Limiter Limiter
	// OnLogin runs when the subprogram signals a successful login, and
	// the subprogram answers the client only once it has returned (or
	// after 5 s): qmail-popup records the POP-before-SMTP grant here,
	// while it still has the privileges to.
	OnLogin func()
	// Timeout drops a client idle that long (pop3.DefaultTimeout when
	// zero).
	Timeout time.Duration
	// Sleep waits (time.Sleep when nil); tests shorten it.
	Sleep func(time.Duration)
	// Log receives one line per login and per trouble; nil discards.
	Log io.Writer
}

// Limiter slows down logins from addresses that failed before.
type Limiter interface {
	// Delay is how long a login attempt from ip waits before it is
	// checked.
	Delay(ip string) time.Duration
	// Fail notes a failed login from ip.
	Fail(ip string)
}

// Result is what Serve did with the session.
type Result int

const (
	// Quit: the client quit, or went away, before logging in.
	Quit Result = iota
	// Served: the subprogram ran the rest of the session.
	Served
	// Refused: a login failed, or the checker could not run; the
	// client was told and the session ended, as in qmail.
	Refused
)

// Serve runs the AUTHORIZATION state on conn. It returns after the
// session is over: QUIT, a login attempt (successful or not: qmail-popup
// ends the connection after one), the end of the client's input, or an
// error.
func Serve(conn net.Conn, cfg Config) (Result, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = pop3.DefaultTimeout
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &session{cfg: &cfg, raw: conn}
	s.use(conn, 1)
	s.reply("+OK " + cfg.Stamp)
	for {
		if err := s.w.Flush(); err != nil {
			return Quit, err
		}
		line, err := s.r.ReadLine()
		if errors.Is(err, pop3.ErrLineTooLong) {
			s.reply(pop3.ErrTooLong)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return Quit, err
		}
		verb, arg := pop3.ParseCommand(line)
		h := commands[verb]
		if h == nil {
			s.reply(errAuthFirst)
			continue
		}
		if res, done := h(s, arg); done {
			return res, s.w.Flush()
		}
	}
}

type session struct {
	cfg  *Config
	raw  net.Conn  // the connection as given
	tls  *tls.Conn // after STLS
	r    *pop3.Reader
	w    *bufio.Writer
	user []byte // after USER
}

// use makes c the connection commands are read from and replies written
// to. chunk is the Reader's read size: 1 on the plain connection, whose
// descriptor a login hands on with whatever the client pipelined still
// unread in it.
func (s *session) use(c net.Conn, chunk int) {
	tc := idleconn.Conn{Conn: c, Timeout: s.cfg.Timeout}
	s.r = pop3.NewReader(tc, chunk)
	s.w = bufio.NewWriterSize(tc, 1024)
}

func (s *session) reply(text string) {
	s.w.WriteString(text)
	s.w.WriteString("\r\n")
}

type handler func(s *session, arg []byte) (Result, bool)

// commands is qmail-popup's table, with CAPA (RFC 2449) and STLS (RFC
// 2595) added.
var commands = map[string]handler{
	"USER": (*session).userCmd,
	"PASS": (*session).pass,
	"APOP": (*session).apop,
	"QUIT": func(s *session, _ []byte) (Result, bool) { s.reply(pop3.OK); return Quit, true },
	"NOOP": func(s *session, _ []byte) (Result, bool) { s.reply(pop3.OK); return 0, false },
	"CAPA": (*session).capa,
	"STLS": (*session).stls,
}

// plaintextOK: USER/PASS are allowed when TLS is not configured, on a
// TLS connection, or when control/pop3plaintext allows them.
func (s *session) plaintextOK() bool {
	return s.cfg.TLS == nil || s.tls != nil || s.cfg.Plaintext
}

func (s *session) userCmd(arg []byte) (Result, bool) {
	switch {
	case len(arg) == 0:
		s.reply(pop3.ErrSyntax)
	case !s.plaintextOK():
		s.reply(errNeedTLS)
	case pop3.HasControl(arg):
		s.reply(pop3.ErrSyntax)
	default:
		s.user = bytes.Clone(arg)
		s.reply(pop3.OK)
	}
	return 0, false
}

func (s *session) pass(arg []byte) (Result, bool) {
	switch {
	case s.user == nil:
		s.reply(errUserFirst)
	case len(arg) == 0, pop3.HasControl(arg):
		s.reply(pop3.ErrSyntax)
	default:
		return s.login(s.user, arg), true
	}
	return 0, false
}

// apop: "APOP name digest", split at the first space as qmail does.
func (s *session) apop(arg []byte) (Result, bool) {
	name, digest, ok := bytes.Cut(arg, []byte{' '})
	if !ok || len(name) == 0 || len(digest) == 0 || pop3.HasControl(arg) {
		s.reply(pop3.ErrSyntax)
		return 0, false
	}
	return s.login(bytes.Clone(name), digest), true
}

// capa: RFC 2449 5. USER only when it would be accepted now; STLS until
// it has been used. RESP-CODES because some refusals carry [SYS/TEMP]
// (RFC 3206), which tells a client not to ask the user for another
// password.
func (s *session) capa(_ []byte) (Result, bool) {
	s.reply("+OK capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	if s.plaintextOK() {
		s.reply("USER")
	}
	if s.cfg.TLS != nil && s.tls == nil {
		s.reply("STLS")
	}
	s.reply("PIPELINING")
	s.reply("RESP-CODES")
	s.reply(".")
	return 0, false
}

// stls starts TLS (RFC 2595 4). Whatever the client sent after the STLS
// line is thrown away, never read as a command: it came in plain text
// and anyone on the path could have put it there (CVE-2011-0411). On the
// plain connection the Reader reads one byte at a time, so there is
// nothing buffered unless a test gives it more; the TLS handshake then
// reads the socket itself, and plain text there fails the handshake.
// The USER given before is forgotten.
func (s *session) stls(arg []byte) (Result, bool) {
	switch {
	case len(arg) > 0:
		s.reply(pop3.ErrSyntax)
		return 0, false
	case s.tls != nil:
		s.reply(errTLSActive)
		return 0, false
	case s.cfg.TLS == nil:
		s.reply(errNoTLS)
		return 0, false
	}
	conf, err := s.cfg.TLS()
	if err != nil {
		s.log("TLS not available: %v", err)
		s.reply(errTLSTrouble)
		return 0, false
	}
	s.reply(okTLS)
	if err := s.w.Flush(); err != nil {
		return Quit, true
	}
	if n := s.r.Discard(); n > 0 {
		s.log("discarded %d bytes sent after STLS before the TLS handshake", n)
	}
	tc := tls.Server(s.raw, conf)
	tc.SetDeadline(time.Now().Add(s.cfg.Timeout))
	if err := tc.Handshake(); err != nil {
		s.log("TLS handshake failed: %v", err)
		return Quit, true
	}
	tc.SetDeadline(time.Time{})
	s.tls = tc
	s.user = nil
	s.use(tc, 0)
	return 0, false
}

// login runs the checker for one attempt. However it ends, the session
// ends with it, as in qmail: a client that got the password wrong
// connects again.
func (s *session) login(user, secret []byte) Result {
	defer clear(secret)
	ip := s.cfg.RemoteIP
	if s.cfg.Limiter != nil {
		if d := s.cfg.Limiter.Delay(ip); d > 0 {
			s.w.Flush()
			s.cfg.Sleep(d)
		}
	}
	tlsUsed := yesNo(s.tls != nil)
	signalled := false
	a := Attempt{User: user, Secret: secret, Stamp: s.cfg.Stamp, OnLogin: func() {
		signalled = true
		s.log("login user=%q tls=%s", user, tlsUsed)
		if s.cfg.OnLogin != nil {
			s.cfg.OnLogin()
		}
	}}
	if s.tls != nil {
		a.TLS = s.tls
		a.Pending = s.r.Buffered()
	}
	if err := s.w.Flush(); err != nil {
		return Quit
	}
	out := s.cfg.Launcher.Launch(a)
	switch out.Kind {
	case LoggedIn:
		if !signalled {
			s.log("login user=%q tls=%s: the subprogram did not signal on $%s, so no POP-before-SMTP grant", user, tlsUsed, pop3.GrantEnv)
		}
		return Served
	case BadLogin:
		if s.cfg.Limiter != nil {
			s.cfg.Limiter.Fail(ip)
		}
		s.log("refused user=%q tls=%s: %v", user, tlsUsed, out.Err)
		s.reply(errAuthFailed)
	case Crashed:
		s.log("trouble user=%q: %v", user, out.Err)
		s.reply(errCrashed)
	default:
		s.log("trouble user=%q: %v", user, out.Err)
		s.reply(errTemporary)
	}
	return Refused
}

func (s *session) log(format string, args ...any) {
	ip := s.cfg.RemoteIP
	if ip == "" {
		ip = "unknown"
	}
	fmt.Fprintf(s.cfg.Log, "qmail-popup: ip=%s %s\n", ip, fmt.Sprintf(format, args...))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
