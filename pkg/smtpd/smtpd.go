// Package smtpd is qmail-smtpd: one SMTP session (RFC 5321) on a
// connection it is handed, in qmail's words, with what qmail sites patched
// in: SIZE, STARTTLS, SMTP AUTH (PLAIN, LOGIN, CRAM-MD5 through a
// checkpassword program), SMTPUTF8, the submission and SMTPS modes, a
// recipient check that uses local delivery's own lookup, and defences
// against bad input.
//
// The package speaks the protocol and applies the relay rules; what it
// needs to know about the instance (rcpthosts, whether a mailbox exists,
// POP-before-SMTP grants, how to run the queue program) comes in through
// Config, so the session can be tested over a pipe.
//
// Every reply goes through a buffered writer that is flushed only before
// the session waits for input: pipelined commands are answered in one
// write (RFC 2920), and a client that never reads fills no unbounded
// buffer, since a blocked write runs into the timeout.
package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quail-mta/quail/pkg/idleconn"
	"github.com/quail-mta/quail/queue"
)

// Mode is the kind of service a session gives.
type Mode int

const (
	// MX accepts mail for the instance's domains from anyone (port 25),
	// and relays for RELAYCLIENT, authenticated clients and
	// POP-before-SMTP grants.
	MX Mode = iota
	// Submission is port 587: nothing but EHLO, HELO, STARTTLS, AUTH,
	// NOOP, RSET and QUIT before a successful AUTH.
	Submission
	// SMTPS is submission over implicit TLS (port 465).
	SMTPS
)

func (m Mode) String() string {
	switch m {
	case Submission:
		return "submission"
	case SMTPS:
		return "smtps"
	}
	return "mx"
}

// Limits.
const (
	// MaxCommand is the longest command line, CRLF included (RFC 5321
	// §4.5.3.1.4).
	MaxCommand = 512
	// maxAuthLine bounds an AUTH exchange's lines (RFC 4954 §4).
	maxAuthLine = 12288
	// DefaultMaxRcpt is how many recipients one message may have.
	DefaultMaxRcpt = 1000
	// maxErrors is how many refused commands in a row end a session.
	maxErrors = 20
	// maxAuthFailures is how many failed AUTHs end a session.
	maxAuthFailures = 5
)

// Injector is one message on its way into the queue (package qq's
// Injection).
type Injector interface {
	io.Writer
	Finish(env queue.Envelope) error
	Abort()
	Pid() int
}

// RecipientError is the answer of Config.Recipient about an address.
type RecipientError int

const (
	// RecipientOK: the address exists (or is not ours to check).
	RecipientOK RecipientError = iota
	// NoMailbox: delivery would bounce it.
	NoMailbox
	// Relay: the address is a relay attempt in disguise.
	Relay
)

// Config is one session's configuration.
type Config struct {
	Mode     Mode
	Greeting string // smtpgreeting, else me
	Hostname string // me: the CRAM-MD5 challenge's host
	// LocalIPHost replaces a domain literal naming one of our addresses.
	LocalIPHost string
	DataBytes   int64 // 0: no limit
	Timeout     time.Duration
	MaxRcpt     int // 0: DefaultMaxRcpt

	// Who is talking to us, for the Received line and the relay rules.
	RemoteIP, RemoteHost, RemoteInfo string // "" when unknown
	LocalHost, LocalIP               string

	// RelayClient is $RELAYCLIENT when set: relaying allowed, and its value
	// appended to every recipient, as qmail does. Ignored on submission.
	RelayClient    string
	HasRelayClient bool

	// RcptHost reports whether mail for domain is accepted
	// (rcpthosts and morercpthosts.cdb).
	RcptHost func(domain string) (bool, error)
	// BadMailFrom reports whether a sender is refused.
	BadMailFrom func(addr string) bool
	// Recipient checks an accepted recipient with local delivery's
	// lookup; nil accepts all. A non-nil error is a temporary failure.
	Recipient func(addr string) (RecipientError, error)
	// PopGrant reports whether the client's IP logged in to POP3
	// recently (MX mode only).
	PopGrant func() (bool, error)
	// SenderAllowed reports whether the authenticated user may use
	// sender's domain.
	SenderAllowed func(user, sender string) (bool, error)

	// Contract names the hosting contract a domain belongs to, "" for
	// none; nil: no contracts, so no quota or rate limits.
	Contract func(domain string) string
	// ReceiveCheck and SendCheck give the refusal for a message of size
	// bytes (0: not known yet) to or from a contract: its disk quota
	// and its rate limits. "" accepts.
	ReceiveCheck func(contract string, size int64) (string, error)
	SendCheck    func(contract string) (string, error)
	// Accepted counts a queued message against its contracts' rates.
	Accepted func(sendContract string, rcptContracts []string) error

	// TLS, when non-nil, offers STARTTLS (and is what SMTPS uses).
	TLS *tls.Config
	// AuthPlaintext offers PLAIN and LOGIN without TLS.
	AuthPlaintext bool
	// AuthCRAM offers CRAM-MD5: only a checker that knows the secret
	// (quail's checkpassword) can verify it.
	AuthCRAM bool
	// Auth checks credentials; nil offers no AUTH.
	Auth Authenticator

	// Queue starts an injection.
	Queue func() (Injector, error)

	Log io.Writer // one key=value line per event; nil: none
	Now func() time.Time
}

// Authenticator checks a user's credentials: a clear password, or for
// CRAM-MD5 the digest over challenge. ok false with a nil error means
// wrong credentials; an error means the check itself failed.
type Authenticator interface {
	Check(user, secret, challenge string) (ok bool, err error)
}

// session is the state of one SMTP conversation.
type session struct {
	cfg  Config
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tls  *tls.ConnectionState

	helo     string
	ehlo     bool
	authUser string

	// The transaction.
	mail    bool
	sender  string
	params  mailParams
	badMail bool
	rcpts   []string
	// The hosting contracts the transaction counts against (SPEC §8):
	// the sender's, when it is one of ours and the client vouched for
	// it, and each recipient's.
	sendContract  string
	rcptContracts []string
	errors        int
	authFail      int
	popGrant      int8 // POP-before-SMTP: 0 not looked up yet, 1 granted, -1 not
}

var errQuit = errors.New("quit")

// Serve runs one SMTP session on conn to its end. It returns nil when the
// client quit, and the reason otherwise.
func Serve(conn net.Conn, cfg Config) error {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRcpt <= 0 {
		cfg.MaxRcpt = DefaultMaxRcpt
	}
	s := &session{cfg: cfg, conn: conn}
	defer s.releaseIO()
	if cfg.Mode == SMTPS {
		if cfg.TLS == nil {
			return errors.New("smtps needs a certificate: control/servercert.pem")
		}
		tc := tls.Server(idleconn.Conn{Conn: conn, Timeout: cfg.Timeout}, cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		s.tls, s.conn = &st, tc
	}
	s.setIO()
	s.reply("220 %s ESMTP", cfg.Greeting)
	for {
		line, err := s.readCommand()
		if err != nil {
			if errors.Is(err, errTooLong) {
				s.refuse("500 sorry, that command line is too long (#5.5.2)")
				continue
			}
			return s.end(err)
		}
		if err := s.command(line); err != nil {
			return s.end(err)
		}
	}
}

// end closes the session after err, answering a timeout as qmail does.
func (s *session) end(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.reply("451 timeout (#4.4.2)")
		s.w.Flush()
	}
	if errors.Is(err, errQuit) {
		return nil
	}
	return err
}

// The buffers are kept from one message, and one session, to the next:
// a process reused by qmail-tcpserver -k would otherwise allocate, zero
// and fault in 128 KB for each message, and a fresh page for each
// session's replies.
var (
	readers      = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	dataWriters  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	replyWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// setIO gives the session a reader and a writer on its connection. After
// STARTTLS it is called again: the reader is reset, so that nothing the
// client sent before TLS is read after it.
func (s *session) setIO() {
	c := idleconn.Conn{Conn: s.conn, Timeout: s.cfg.Timeout}
	if s.r == nil {
		s.r = readers.Get().(*bufio.Reader)
	}
	s.r.Reset(c)
	if s.w == nil {
		s.w = replyWriters.Get().(*bufio.Writer)
	}
	// Nothing is buffered here: STARTTLS flushes its 220 before the
	// handshake, so Reset drops no reply.
	s.w.Reset(c)
}

// releaseIO gives the reader and writer back when the session is over.
func (s *session) releaseIO() {
	if s.r != nil {
		s.r.Reset(nil)
		readers.Put(s.r)
		s.r = nil
	}
	if s.w != nil {
		s.w.Reset(nil)
		replyWriters.Put(s.w)
		s.w = nil
	}
}

func (s *session) reply(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.w.WriteString("\r\n")
}

// refuse replies and counts a refused command: a client that does
// nothing right for long is cut off. Refused recipients and messages are
// not counted: a list's post with many stale addresses must still reach
// the valid ones.
func (s *session) refuse(text string) {
	s.reply("%s", text)
	s.errors++
}

func (s *session) logf(format string, args ...any) {
	if s.cfg.Log == nil {
		return
	}
	fmt.Fprintf(s.cfg.Log, "qmail-smtpd: pid=%d remote=%s "+format+"\n",
		append([]any{pid, orUnknown(s.cfg.RemoteIP)}, args...)...)
}

var errTooLong = errors.New("line too long")

// readLine reads one line of at most max bytes (CRLF included), flushing
// pending replies first. The CR before the LF is dropped; a bare LF ends
// a command line too, as in qmail. A longer line is read to its end and
// reported as errTooLong.
func (s *session) readLine(max int) (string, error) {
	if !s.lineBuffered() {
		if err := s.w.Flush(); err != nil {
			return "", err
		}
	}
	var buf []byte
	tooLong := false
	for {
		chunk, err := s.r.ReadSlice('\n')
		if !tooLong {
			buf = append(buf, chunk...)
			if len(buf) > max {
				tooLong, buf = true, nil
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	if tooLong {
		return "", errTooLong
	}
	line := buf[:len(buf)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// lineBuffered reports whether a whole line of input is already buffered:
// the client pipelined it, so its reply can wait to go out with the next
// ones in one write (RFC 2920). Replies are flushed before any read that
// could block, so a client never waits for a reply that is held back.
func (s *session) lineBuffered() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func (s *session) readCommand() (string, error) {
	if s.errors >= maxErrors {
		s.reply("421 too many errors, closing connection (#4.7.0)")
		s.w.Flush()
		return "", errors.New("too many errors")
	}
	return s.readLine(MaxCommand)
}

// command runs one command line.
func (s *session) command(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimLeft(arg, " ")
	verb = strings.ToUpper(verb)
	if strings.IndexByte(line, 0) >= 0 {
		s.refuse("500 sorry, a command may not contain a NUL byte (#5.5.2)")
		return nil
	}
	if s.cfg.Mode != MX && s.authUser == "" {
		switch verb {
		case "EHLO", "HELO", "STARTTLS", "AUTH", "NOOP", "RSET", "QUIT":
		default:
			s.refuse("530 5.7.0 Authentication required")
			return nil
		}
	}
	switch verb {
	case "HELO":
		s.resetTransaction()
		s.helo, s.ehlo = arg, false
		s.reply("250 %s", s.cfg.Greeting)
	case "EHLO":
		s.resetTransaction()
		s.helo, s.ehlo = arg, true
		s.ehloReply()
	case "MAIL":
		s.mailCmd(arg)
	case "RCPT":
		s.rcptCmd(arg)
	case "DATA":
		return s.dataCmd(arg)
	case "RSET":
		s.resetTransaction()
		s.reply("250 flushed")
	case "NOOP":
		s.reply("250 ok")
	case "VRFY":
		s.reply("252 send some mail, i'll try my best")
	case "HELP":
		s.reply("214 quail home page: https://github.com/quail-mta/quail")
	case "QUIT":
		s.reply("221 %s", s.cfg.Greeting)
		s.w.Flush()
		return errQuit
	case "STARTTLS":
		return s.startTLS(arg)
	case "AUTH":
		return s.authCmd(arg)
	default:
		s.refuse("502 unimplemented (#5.5.1)")
		return nil
	}
	return nil
}

func (s *session) ehloReply() {
	lines := []string{s.cfg.Greeting, "PIPELINING", "8BITMIME", "SMTPUTF8"}
	if s.cfg.DataBytes > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(s.cfg.DataBytes, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	if s.cfg.TLS != nil && s.tls == nil {
		lines = append(lines, "STARTTLS")
	}
	if mechs := s.authMechanisms(); len(mechs) > 0 && s.authUser == "" {
		lines = append(lines, "AUTH "+strings.Join(mechs, " "))
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		s.reply("250%s%s", sep, l)
	}
}

func (s *session) resetTransaction() {
	s.mail, s.sender, s.params, s.badMail, s.rcpts = false, "", mailParams{}, false, nil
	s.sendContract, s.rcptContracts = "", nil
}

func (s *session) mailCmd(arg string) {
	if !strings.HasPrefix(strings.ToUpper(arg), "FROM:") {
		s.refuse("555 syntax error (#5.5.4)")
		return
	}
	p, err := parsePath(arg)
	if err != nil || hasControl(p.addr) {
		s.refuse("555 syntax error (#5.5.4)")
		return
	}
	mp, err := parseMailParams(p.params)
	if err != nil {
		s.refuse("555 syntax error (#5.5.4)")
		return
	}
	if s.cfg.DataBytes > 0 && mp.size > s.cfg.DataBytes {
		s.refuse("552 sorry, that message size exceeds my databytes limit (#5.3.4)")
		return
	}
	if s.authUser != "" && p.addr != "" && s.cfg.SenderAllowed != nil {
		ok, err := s.cfg.SenderAllowed(s.authUser, p.addr)
		if err != nil {
			s.logf("event=error what=sender-check err=%q", err.Error())
			s.refuse("451 sorry, I can't check that sender right now (#4.3.0)")
			return
		}
		if !ok {
			s.logf("event=refused sender=%q user=%q reason=not-own-domain", p.addr, s.authUser)
			s.refuse("553 sorry, that sender address is not yours to use (#5.7.1)")
			return
		}
	}
	s.resetTransaction()
	s.mail, s.sender, s.params = true, p.addr, mp
	s.sendContract = s.senderContract(p.addr)
	s.badMail = s.cfg.BadMailFrom != nil && s.cfg.BadMailFrom(p.addr)
	s.errors = 0
	s.reply("250 ok")
}

func (s *session) rcptCmd(arg string) {
	if !s.mail {
		s.refuse("503 MAIL first (#5.5.1)")
		return
	}
	if !strings.HasPrefix(strings.ToUpper(arg), "TO:") {
		s.refuse("555 syntax error (#5.5.4)")
		return
	}
	p, err := parsePath(arg)
	if err != nil || hasControl(p.addr) || p.addr == "" || len(p.params) > 0 {
		s.refuse("555 syntax error (#5.5.4)")
		return
	}
	if s.badMail {
		s.reply("%s", "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)")
		return
	}
	if len(s.rcpts) >= s.cfg.MaxRcpt {
		s.reply("%s", "452 sorry, too many recipients (#4.5.3)")
		return
	}
	addr := s.localIP(p.addr)
	reply, ok := s.checkRecipient(addr)
	if !ok {
		s.logf("event=refused sender=%q rcpt=%q reply=%q", s.sender, addr, reply)
		s.reply("%s", reply)
		return
	}
	contract, reply, err := s.limits(addr, s.params.size)
	if err != nil {
		s.logf("event=error what=limits rcpt=%q err=%q", addr, err.Error())
		s.reply("451 sorry, I can't check that recipient right now (#4.3.0)")
		return
	}
	if reply != "" {
		s.logf("event=refused sender=%q rcpt=%q reply=%q", s.sender, addr, reply)
		s.reply("%s", reply)
		return
	}
	if contract != "" {
		s.rcptContracts = append(s.rcptContracts, contract)
	}
	if s.relayClient() {
		addr += s.cfg.RelayClient
	}
	s.rcpts = append(s.rcpts, addr)
	s.errors = 0
	s.reply("250 ok")
}

// localIP rewrites a domain literal naming the address the client
// connected to into localiphost, as qmail does before checking rcpthosts.
func (s *session) localIP(addr string) string {
	local, domain := splitAddr(addr)
	if len(domain) > 2 && domain[0] == '[' && domain[len(domain)-1] == ']' && s.cfg.LocalIP != "" {
		lit := strings.TrimPrefix(domain[1:len(domain)-1], "IPv6:")
		if a, err := netip.ParseAddr(lit); err == nil && a.String() == s.cfg.LocalIP {
			return local + "@" + s.cfg.LocalIPHost
		}
	}
	return addr
}

// relayClient reports whether $RELAYCLIENT counts in this session.
func (s *session) relayClient() bool {
	return s.cfg.Mode == MX && s.cfg.HasRelayClient
}

// mayRelay reports whether this client may send to any domain.
func (s *session) mayRelay() (bool, error) {
	if s.authUser != "" || s.relayClient() {
		return true, nil
	}
	if s.cfg.Mode != MX || s.cfg.PopGrant == nil {
		return false, nil
	}
	// A grant is looked up once per session, not for every recipient.
	if s.popGrant == 0 {
		ok, err := s.cfg.PopGrant()
		if err != nil {
			return false, err
		}
		s.popGrant = -1
		if ok {
			s.popGrant = 1
		}
	}
	return s.popGrant > 0, nil
}

const relayRefused = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"

// checkRecipient applies the relay rules of SPEC §6 and local delivery's
// lookup to addr, returning the refusal when it is refused.
func (s *session) checkRecipient(addr string) (string, bool) {
	relay, err := s.mayRelay()
	if err != nil {
		s.logf("event=error what=pop-grant err=%q", err.Error())
		relay = false
	}
	local, domain := splitAddr(addr)
	if domain == "" {
		// RFC 5321 §4.5.1: <postmaster> without a domain must work; other
		// addresses need one.
		if strings.EqualFold(local, "postmaster") {
			return "", true
		}
		return "555 syntax error (#5.5.4)", false
	}
	ours, err := s.cfg.RcptHost(domain)
	if err != nil {
		s.logf("event=error what=rcpthosts err=%q", err.Error())
		return "451 sorry, I can't check that recipient right now (#4.3.0)", false
	}
	if !ours {
		if relay {
			return "", true
		}
		return relayRefused, false
	}
	// Mail for one of our domains, from anyone (a client that may relay
	// too: a bounce of what we accepted would go to a sender nobody
	// checked): the local part must not hide another address (a quoted
	// "user@elsewhere"@ourdomain) unless the client may relay, and the
	// mailbox must exist.
	if strings.IndexByte(local, '@') >= 0 && !relay {
		return relayRefused, false
	}
	if s.cfg.Recipient == nil {
		return "", true
	}
	verdict, err := s.cfg.Recipient(addr)
	switch {
	case err != nil:
		s.logf("event=error what=recipient rcpt=%q err=%q", addr, err.Error())
		return "451 sorry, I can't check that recipient right now (#4.3.0)", false
	case verdict == NoMailbox:
		return "550 sorry, no mailbox here by that name (#5.1.1)", false
	case verdict == Relay && !relay:
		return relayRefused, false
	}
	return "", true
}

func (s *session) dataCmd(arg string) error {
	if !s.mail {
		s.refuse("503 MAIL first (#5.5.1)")
		return nil
	}
	if len(s.rcpts) == 0 {
		s.refuse("503 RCPT first (#5.5.1)")
		return nil
	}
	qq, err := s.cfg.Queue()
	if err != nil {
		s.logf("event=error what=queue err=%q", err.Error())
		s.reply("451 qqt failure (#4.3.0)")
		return nil
	}
	s.reply("354 go ahead")
	if err := s.w.Flush(); err != nil {
		qq.Abort()
		return err
	}
	w := dataWriters.Get().(*bufio.Writer)
	w.Reset(qq)
	defer func() { w.Reset(nil); dataWriters.Put(w) }()
	w.WriteString(s.received())
	res, err := readData(s.r, w, s.cfg.DataBytes)
	if err != nil {
		qq.Abort()
		if errors.Is(err, errBareLF) {
			s.reply("451 See https://cr.yp.to/docs/smtplf.html.")
			s.w.Flush()
		}
		return err
	}
	env := queue.Envelope{Sender: s.sender, Recipients: s.rcpts}
	defer s.resetTransaction()
	switch {
	case res.hops >= maxHops:
		qq.Abort()
		s.reply("%s", "554 too many hops, this message is looping (#5.4.6)")
		return nil
	case res.tooBig:
		qq.Abort()
		s.logf("event=refused sender=%q reason=databytes", s.sender)
		s.reply("%s", "552 sorry, that message size exceeds my databytes limit (#5.3.4)")
		return nil
	case res.longLine:
		qq.Abort()
		s.reply("%s", "554 sorry, the message has a line longer than 1000 octets (#5.6.0)")
		return nil
	}
	// A flush error means the queue program stopped reading: its exit
	// status, from Finish, says why.
	w.Flush()
	// Quota and rates again, now that the size is known and time has
	// passed: the first refusal stops the message.
	if reply, err := s.recheck(res.size); err != nil || reply != "" {
		qq.Abort()
		if err != nil {
			s.logf("event=error what=limits err=%q", err.Error())
			reply = "451 sorry, I can't check the limits right now (#4.3.0)"
		}
		s.logf("event=refused sender=%q reply=%q", s.sender, reply)
		s.reply("%s", reply)
		return nil
	}
	if err := qq.Finish(env); err != nil {
		var text string
		var perm bool
		var qe interface {
			Temporary() bool
		}
		if errors.As(err, &qe) {
			perm = !qe.Temporary()
		}
		text = err.Error()
		code := 451
		if perm {
			code = 554
		}
		s.logf("event=refused sender=%q reply=%q", s.sender, fmt.Sprintf("%d %s", code, text))
		s.reply("%d %s", code, text)
		return nil
	}
	if s.cfg.Accepted != nil {
		// The message is queued: trouble counting it is only logged.
		if err := s.cfg.Accepted(s.sendContract, s.rcptContracts); err != nil {
			s.logf("event=error what=ratelimit err=%q", err.Error())
		}
	}
	now := s.cfg.Now()
	s.logf("event=accepted sender=%q rcpts=%d bytes=%d qp=%d", s.sender, len(env.Recipients), res.size, qq.Pid())
	s.reply("250 ok %d qp %d", now.Unix(), qq.Pid())
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// senderContract is the contract a message is sent by: the authenticated
// user's, else, for a client allowed to relay (RELAYCLIENT, a POP3 login),
// the sender domain's. A sender anyone can write on port 25 counts
// against nobody's allowance, or an outsider could use it up.
func (s *session) senderContract(sender string) string {
	if s.cfg.Contract == nil {
		return ""
	}
	if s.authUser != "" {
		user := s.authUser
		if !strings.Contains(user, "@") {
			if i := strings.LastIndexByte(user, '%'); i >= 0 {
				user = user[:i] + "@" + user[i+1:]
			}
		}
		_, d := splitAddr(user)
		return s.cfg.Contract(d)
	}
	if relay, err := s.mayRelay(); err == nil && relay {
		_, d := splitAddr(sender)
		if d != "" {
			return s.cfg.Contract(d)
		}
	}
	return ""
}

// limits checks a recipient's and the sender's contracts: quota and
// receive rate for the first, send rate for the second.
func (s *session) limits(addr string, size int64) (contract, reply string, err error) {
	if s.cfg.Contract == nil {
		return "", "", nil
	}
	if size < 0 {
		size = 0
	}
	if s.sendContract != "" && s.cfg.SendCheck != nil {
		if reply, err := s.cfg.SendCheck(s.sendContract); err != nil || reply != "" {
			return "", reply, err
		}
	}
	_, d := splitAddr(addr)
	if d == "" {
		return "", "", nil
	}
	contract = s.cfg.Contract(d)
	if contract != "" && s.cfg.ReceiveCheck != nil {
		reply, err = s.cfg.ReceiveCheck(contract, size)
	}
	return contract, reply, err
}

// recheck runs the contracts' checks again at the end of DATA.
func (s *session) recheck(size int64) (string, error) {
	if s.sendContract != "" && s.cfg.SendCheck != nil {
		if reply, err := s.cfg.SendCheck(s.sendContract); err != nil || reply != "" {
			return reply, err
		}
	}
	seen := map[string]bool{}
	for _, c := range s.rcptContracts {
		if seen[c] || s.cfg.ReceiveCheck == nil {
			continue
		}
		seen[c] = true
		if reply, err := s.cfg.ReceiveCheck(c, size); err != nil || reply != "" {
			return reply, err
		}
	}
	return "", nil
}
