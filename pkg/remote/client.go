package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Deliver sends the message (size bytes of msg, read twice: once to
// measure it, once to send it, never held whole in memory) from sender
// to recipients, trying cfg.Targets in order, in one SMTP transaction
// per target.
//
// It moves on to the next target when the current one fails before the
// message could be delivered: the connection is refused or times out
// (and cfg.TCPTo learns of it), or the address is skipped because
// cfg.TCPTo says it timed out recently; the greeting is not 220; EHLO
// and HELO are both refused; MAIL gets a 4xx; the connection dies or a
// read or write times out before the end of data was sent; or TLS is
// required and the target does not offer STARTTLS, refuses it, or fails
// the handshake or certificate check. A target's answer about one
// recipient (a 4xx or 5xx to its RCPT) stands: the next target is
// offered only the recipients that have no such answer. A 5xx to MAIL,
// any reply to DATA or after the message, and a connection that dies
// after the end of data are final. When every target fails, the message
// report is the last failure of a target that answered, or "Sorry, I
// wasn't able to establish an SMTP connection. (#4.4.1)" when none did.
func Deliver(ctx context.Context, cfg Config, sender string, recipients []string, msg io.ReaderAt, size int64) Result {
	if bad(sender) {
		return Result{Message: Report{PermFail, "Sorry, the envelope sender contains a line break or NUL, which SMTP cannot carry. (#5.6.0)\n"}}
	}
	wire, eightBit, err := measure(msg, size)
	if err != nil {
		return Result{Message: Report{TempFail, TextReadMessage}}
	}
	// kept holds the answers about single recipients that stand whatever
	// later targets say.
	kept := make([]*Report, len(recipients))
	var last *Report
	for _, t := range cfg.Targets {
		if ctx.Err() != nil {
			break
		}
		var todo []int
		for i := range recipients {
			if kept[i] == nil {
				todo = append(todo, i)
			}
		}
		if len(todo) == 0 {
			break
		}
		skip, listed := cfg.TCPTo.Skip(t.Addr.Addr())
		if skip {
			continue
		}
		env := envelope{sender: sender, msg: msg, size: size, wire: wire, eightBit: eightBit}
		for _, i := range todo {
			env.recipients = append(env.recipients, recipients[i])
		}
		res, next := attempt(ctx, &cfg, t, &env, false, listed)
		if next == retryPlain {
			res, next = attempt(ctx, &cfg, t, &env, true, false)
		}
		switch next {
		case done:
			return merge(kept, todo, res)
		case nextConnected:
			for k, r := range res.Recipients {
				if r.Status != Accepted {
					kept[todo[k]] = &r
				}
			}
			last = &res.Message
		}
	}
	if last == nil {
		last = &Report{TempFail, TextNoConnection}
	}
	return merge(kept, nil, Result{Message: *last})
}

// merge puts the reports kept from earlier targets and those of the
// last attempt (for the recipients todo) back in argument order. A
// recipient with no report before one that has a report gets the
// message's verdict with no text of its own, which reads as no report.
func merge(kept []*Report, todo []int, res Result) Result {
	all := make([]*Report, len(kept))
	copy(all, kept)
	for k, i := range todo {
		if k < len(res.Recipients) {
			all[i] = &res.Recipients[k]
		}
	}
	n := len(all)
	for n > 0 && all[n-1] == nil {
		n--
	}
	out := Result{Message: res.Message}
	if n == 0 {
		return out
	}
	out.Recipients = make([]Report, n)
	for i := range n {
		if all[i] != nil {
			out.Recipients[i] = *all[i]
		} else {
			out.Recipients[i] = Report{Status: res.Message.Status}
		}
	}
	return out
}

type envelope struct {
	sender     string
	recipients []string
	msg        io.ReaderAt
	size, wire int64
	eightBit   bool
}

// what attempt says to do after one target.
type outcome int

const (
	done          outcome = iota // the Result is final
	nextUnreached                // could not connect: next target
	nextConnected                // connected, nothing delivered: next target, with the recipients not answered for
	retryPlain                   // opportunistic TLS failed: same target without STARTTLS
)

// conn is one SMTP connection with qmail's report texts at hand.
type conn struct {
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	ip  string
	ext map[string]string // EHLO keywords (upper case) and their parameters
}

// attempt makes one connection to t. listed is what cfg.TCPTo said of
// t's address.
func attempt(ctx context.Context, cfg *Config, t Target, env *envelope, noTLS, listed bool) (Result, outcome) {
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	raw, err := d.DialContext(ctx, "tcp", t.Addr.String())
	if ctx.Err() == nil {
		cfg.TCPTo.Record(t.Addr.Addr(), err != nil && isTimeout(err), listed)
	}
	if err != nil {
		return Result{}, nextUnreached
	}
	c := &conn{ip: t.Addr.Addr().String()}
	c.setConn(&deadlineConn{Conn: raw, timeout: cfg.Timeout})
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	defer raw.Close()

	fail := func(text string, r *reply) (Result, outcome) {
		if r != nil {
			text += r.said()
		}
		return Result{Message: Report{TempFail, text}}, nextConnected
	}
	died := "Connected to " + c.ip + " but connection died. (#4.4.2)\n"

	r, err := readReply(c.br)
	if err != nil {
		return fail(died, nil)
	}
	if r.Code != codeGreeting {
		c.quit()
		return fail("Connected to "+c.ip+" but greeting failed.\n", &r)
	}
	if r, err = c.hello(cfg.HeloHost); err != nil {
		return fail(died, nil)
	} else if r.Code != codeOK {
		c.quit()
		return fail("Connected to "+c.ip+" but my name was rejected.\n", &r)
	}

	_, offered := c.ext["STARTTLS"]
	switch {
	case offered && !noTLS:
		r, err := c.cmd("STARTTLS")
		if err != nil {
			return fail(died, nil)
		}
		if r.Code != codeTLSReady {
			if cfg.TLS == TLSRequired {
				c.quit()
				return fail("Connected to "+c.ip+" but it refused STARTTLS, which control/tlsrequired requires for "+cfg.Domain+". (#4.7.0)\n", &r)
			}
			break // opportunistic: go on in plain text
		}
		if c.br.Buffered() > 0 {
			// RFC 3207 4.2: nothing may follow the 220 before the handshake.
			return fail("Connected to "+c.ip+" but it sent data after its STARTTLS reply. (#4.7.0)\n", nil)
		}
		tc := tls.Client(c.nc, tlsConfig(cfg, t))
		hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if cfg.TLS == TLSRequired {
				return fail("Connected to "+c.ip+" but the TLS handshake failed: "+oneLine(err)+" (#4.7.5)\n", nil)
			}
			return Result{}, retryPlain
		}
		c.setConn(tc)
		// RFC 3207 4.2: forget what we learnt before TLS and ask again.
		if r, err = c.hello(cfg.HeloHost); err != nil {
			return fail(died, nil)
		} else if r.Code != codeOK {
			c.quit()
			return fail("Connected to "+c.ip+" but my name was rejected.\n", &r)
		}
	case cfg.TLS == TLSRequired:
		c.quit()
		return fail("Connected to "+c.ip+" but it does not offer STARTTLS, which control/tlsrequired requires for "+cfg.Domain+". (#4.7.0)\n", nil)
	}

	return c.transaction(cfg, env)
}

func tlsConfig(cfg *Config, t Target) *tls.Config {
	tc := &tls.Config{ServerName: t.Name, MinVersion: tls.VersionTLS12}
	if t.Name == "" {
		tc.ServerName = t.Addr.Addr().String() // checked against IP SANs
	}
	if cfg.TLS == TLSRequired {
		tc.RootCAs = cfg.RootCAs
	} else {
		// RFC 7435: opportunistic TLS encrypts without authenticating.
		tc.InsecureSkipVerify = true
	}
	return tc
}

// transaction runs MAIL, RCPT, DATA and the message; its result is final.
func (c *conn) transaction(cfg *Config, env *envelope) (Result, outcome) {
	final := func(s Status, text string, r *reply) (Result, outcome) {
		if r != nil {
			text += r.said()
		}
		return Result{Message: Report{s, text}}, done
	}
	died := "Connected to " + c.ip + " but connection died. (#4.4.2)\n"

	if lim, ok := c.ext["SIZE"]; ok {
		// RFC 1870 6: do not send what the server said it will refuse.
		if n, err := strconv.ParseInt(lim, 10, 64); err == nil && n > 0 && env.wire > n {
			c.quit()
			return final(PermFail, fmt.Sprintf("%s accepts messages of at most %d bytes and this one has %d. (#5.3.4)\n", c.ip, n, env.wire), nil)
		}
	}
	mail := "MAIL FROM:<" + quoteAddr(env.sender) + ">"
	if _, ok := c.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.FormatInt(env.wire, 10) // RFC 1870 6
	}
	if _, ok := c.ext["8BITMIME"]; ok && env.eightBit {
		mail += " BODY=8BITMIME" // RFC 6152 3
	}
	_, pipelining := c.ext["PIPELINING"]

	// Recipients SMTP cannot carry are refused here, not sent.
	var sendable []int
	res := Result{Recipients: make([]Report, len(env.recipients))}
	for i, rcpt := range env.recipients {
		if bad(rcpt) {
			res.Recipients[i] = Report{PermFail, "Sorry, the recipient address contains a line break or NUL, which SMTP cannot carry. (#5.1.3)\n"}
			continue
		}
		sendable = append(sendable, i)
	}

	// RFC 2920 3.1: with PIPELINING, MAIL, the RCPTs and DATA go out in
	// one write and their replies are read in order afterwards.
	c.send(mail)
	if pipelining {
		for _, i := range sendable {
			c.send("RCPT TO:<" + quoteAddr(env.recipients[i]) + ">")
		}
		if len(sendable) > 0 {
			c.send("DATA")
		}
	}
	// Until MAIL is answered nothing is committed: a dead connection
	// here moves on to the next target.
	if c.bw.Flush() != nil {
		return Result{Message: Report{TempFail, died}}, nextConnected
	}
	r, err := readReply(c.br)
	if err != nil {
		return Result{Message: Report{TempFail, died}}, nextConnected
	}
	if r.Code >= codeTempFailMin {
		c.quit()
		res, next := final(statusOf(r.Code), "Connected to "+c.ip+" but sender was rejected.\n", &r)
		if r.Code < codePermFailMin {
			// A 4xx to MAIL says this server cannot take mail now,
			// not that the message is unwelcome: ask the next one.
			next = nextConnected
		}
		return res, next
	}

	// heard is how many leading recipients have their report: a failure
	// reports only those, as qmail-remote prints reports as it goes.
	// Until the end of data is sent nothing is delivered, so a dead
	// connection hands the rest to the next target (early).
	heard := len(env.recipients)
	accepted := 0
	for k, i := range sendable {
		heard = i
		if !pipelining {
			c.send("RCPT TO:<" + quoteAddr(env.recipients[i]) + ">")
			if c.bw.Flush() != nil {
				return early(res, heard, died)
			}
		}
		r, err := readReply(c.br)
		if err != nil {
			return early(res, heard, died)
		}
		heard = len(env.recipients)
		if k+1 < len(sendable) {
			heard = sendable[k+1]
		}
		if r.Code >= codeTempFailMin {
			res.Recipients[i] = Report{statusOf(r.Code), c.ip + " does not like recipient.\n" + r.said()}
			continue
		}
		res.Recipients[i] = Report{Accepted, ""}
		accepted++
	}
	if accepted == 0 {
		if pipelining && len(sendable) > 0 {
			// The peer should refuse DATA now (RFC 2920 3.1); if it
			// says 354 anyway we hang up rather than send anything.
			if r, err := readReply(c.br); err == nil && r.Code >= codeTempFailMin {
				c.quit()
			}
		} else {
			c.quit()
		}
		res.Message = Report{PermFail, "Giving up on " + c.ip + ".\n"}
		return res, done
	}

	if !pipelining {
		c.send("DATA")
		if c.bw.Flush() != nil {
			return early(res, heard, died)
		}
	}
	r, err = readReply(c.br)
	if err != nil {
		return early(res, heard, died)
	}
	if r.Code >= codeTempFailMin {
		c.quit()
		res.Message = Report{statusOf(r.Code), c.ip + " failed on DATA command.\n" + r.said()}
		return res, done
	}
	err = writeData(c.bw, env.msg, env.size)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		var re *readError
		if errors.As(err, &re) {
			// Hang up without the final dot: nothing is delivered,
			// and the next target would fare no better.
			res.Recipients = res.Recipients[:heard]
			res.Message = Report{TempFail, TextReadMessage}
			return res, done
		}
		return early(res, heard, died)
	}
	r, err = readReply(c.br)
	if err != nil {
		// The message may have arrived: this is final.
		res.Message = Report{TempFail, "Connected to " + c.ip + " but connection died. Possible duplicate! (#4.4.2)\n"}
		return res, done
	}
	c.quit()
	switch {
	case r.Code >= codeTempFailMin:
		res.Message = Report{statusOf(r.Code), c.ip + " failed after I sent the message.\n" + r.said()}
	default:
		res.Message = Report{Accepted, c.ip + " accepted message.\n" + r.said()}
	}
	return res, done
}

// early is a connection that failed after the recipients were offered
// and before the end of data was sent, with the reports of the first
// heard recipients: Deliver keeps their refusals and offers the others
// to the next target.
func early(res Result, heard int, text string) (Result, outcome) {
	res.Recipients = res.Recipients[:heard]
	res.Message = Report{TempFail, text}
	return res, nextConnected
}

// isTimeout tells a connect that timed out (which lock/tcpto counts)
// from one that was refused or unreachable.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func statusOf(code int) Status {
	switch {
	case code >= codePermFailMin:
		return PermFail
	case code >= codeTempFailMin:
		return TempFail
	}
	return Accepted
}

func (c *conn) setConn(nc net.Conn) {
	c.nc = nc
	c.br = bufio.NewReaderSize(nc, 4096)
	c.bw = bufio.NewWriterSize(nc, 4096)
}

func (c *conn) send(line string) {
	_, _ = c.bw.WriteString(line + "\r\n") // a failed write shows at Flush
}

func (c *conn) cmd(line string) (reply, error) {
	c.send(line)
	if err := c.bw.Flush(); err != nil {
		return reply{}, err
	}
	return readReply(c.br)
}

// hello sends EHLO and, when that is refused, HELO (RFC 5321 3.2), and
// records the EHLO extensions.
func (c *conn) hello(name string) (reply, error) {
	c.ext = map[string]string{}
	r, err := c.cmd("EHLO " + name)
	if err != nil {
		return r, err
	}
	if r.Code == codeOK {
		for _, l := range r.Lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(k)] = strings.TrimSpace(v)
		}
		return r, nil
	}
	if r.Code >= codeTempFailMin && r.Code < 600 {
		return c.cmd("HELO " + name)
	}
	return r, nil
}

// quit says QUIT and does not wait for the answer, as qmail-remote.
func (c *conn) quit() {
	c.send("QUIT")
	_ = c.bw.Flush()
}

// deadlineConn gives every read and write its own timeout
// (control/timeoutremote).
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Write(p)
}

// bad reports an address SMTP cannot carry.
func bad(addr string) bool { return strings.ContainsAny(addr, "\r\n\x00") }

// quoteAddr quotes the local part when it is not a dot-atom
// (RFC 5321 4.1.2), as qmail-remote does.
func quoteAddr(addr string) string {
	if addr == "" {
		return ""
	}
	local, domain := addr, ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain = addr[:i], addr[i:]
	}
	if isDotAtom(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String() + domain
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>[]:;@\\,\"", c) >= 0 {
			return false
		}
	}
	return true
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
