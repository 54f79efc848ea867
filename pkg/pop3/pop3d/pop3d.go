// Package pop3d is qmail-pop3d: the TRANSACTION and UPDATE states of a
// POP3 session over one Maildir, run as the mailbox's owner after
// qmail-popup and checkpassword have logged the client in.
//
// It keeps qmail-pop3d's Maildir semantics (docs/qmail-pop3d.8.md):
// messages are numbered oldest first at the start of the session;
// DELE only marks; at QUIT the marked messages are removed and the rest
// of new/ moves to cur/; a session that ends any other way changes
// nothing. Where qmail departs from RFC 1939, quail follows the RFC:
// sizes are the octets RETR sends, STAT leaves out deleted messages, and
// no empty line is added before the terminating dot.
//
// Memory is per message metadata only (a name and a size): LIST takes
// sizes from the names deliverers give (",W=" in the name, see
// maildir.NameSizes) and counts the others once, streaming; RETR streams
// each message through a fixed buffer.
package pop3d

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/quail-mta/quail/pkg/idleconn"
	"github.com/quail-mta/quail/pkg/pop3"
)

// Config is one session's setting.
type Config struct {
	// Maildir is the mailbox directory (qmail-pop3d changes into it and
	// passes ".").
	Maildir string
	// Timeout drops a client idle that long, or not taking a response
	// (pop3.DefaultTimeout when zero).
	Timeout time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives one line per session; nil discards.
	Log io.Writer
	// User names the mailbox in the log (checkpassword's $USER).
	User string
	// Released is told the bytes and messages QUIT removed, for the
	// contract's quota record; nil when no quota counts this Maildir.
	Released func(bytes, messages int64) error
}

// Texts, as qmail-pop3d writes them.
const (
	errNoMaildir = "-ERR this user has no $HOME/Maildir"
	errScan      = "-ERR unable to scan $HOME/Maildir"
	errUnimpl    = "-ERR unimplemented"
	errDeleted   = "-ERR already deleted"
	errNoZero    = "-ERR messages are counted from 1"
	errTooBig    = "-ERR not that many messages"
	errNoSuch    = "-ERR unable to open that message"
	errNoUnlink  = "-ERR unable to unlink all deleted messages"
)

// ErrNoMaildir means the mailbox directory cannot be read: the client
// has been told.
var ErrNoMaildir = errors.New("unable to scan the Maildir")

// writeBuffer holds one response up to this size: the status line and
// the message leave in one write.
const writeBuffer = 64 << 10

// Serve runs a session on conn until QUIT (nil), the end of the
// client's input (io.EOF), a timeout or another error.
func Serve(conn net.Conn, cfg Config) error {
	if cfg.Timeout <= 0 {
		cfg.Timeout = pop3.DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	tc := idleconn.Conn{Conn: conn, Timeout: cfg.Timeout}
	s := &session{cfg: cfg, r: pop3.NewReader(tc, 0), w: bufio.NewWriterSize(tc, writeBuffer)}
	md, err := openMaildrop(cfg.Maildir, cfg.Now())
	if err != nil {
		s.reply(errScan)
		s.w.Flush()
		return fmt.Errorf("%w: %v", ErrNoMaildir, err)
	}
	defer md.close()
	s.md = md
	s.reply(pop3.OK)
	return s.loop()
}

type session struct {
	cfg  Config
	r    *pop3.Reader
	w    *bufio.Writer
	md   *maildrop
	last int // qmail's LAST: the highest message number DELEted

	retrieved, deleted int
}

type handler func(s *session, arg []byte) (quit bool)

// commands is qmail-pop3d's table, with CAPA (RFC 2449) added.
var commands = map[string]handler{
	"QUIT": (*session).quit,
	"STAT": (*session).stat,
	"LIST": func(s *session, arg []byte) bool { return s.listing(arg, false) },
	"UIDL": func(s *session, arg []byte) bool { return s.listing(arg, true) },
	"DELE": (*session).dele,
	"RETR": func(s *session, arg []byte) bool { return s.top(arg, false) },
	"TOP":  func(s *session, arg []byte) bool { return s.top(arg, true) },
	"RSET": (*session).rset,
	"LAST": (*session).lastCmd,
	"NOOP": func(s *session, _ []byte) bool { s.reply(pop3.OK); return false },
	"CAPA": (*session).capa,
}

func (s *session) loop() error {
	for {
		if len(s.r.Buffered()) == 0 {
			// Flush only when no pipelined command waits: one write
			// per batch, at least one per response.
			if err := s.w.Flush(); err != nil {
				return err
			}
		}
		line, err := s.r.ReadLine()
		if errors.Is(err, pop3.ErrLineTooLong) {
			s.reply(pop3.ErrTooLong)
			continue
		}
		if err != nil {
			s.w.Flush()
			return err
		}
		verb, arg := pop3.ParseCommand(line)
		h := commands[verb]
		if h == nil {
			s.reply(errUnimpl)
			continue
		}
		if h(s, arg) {
			return s.w.Flush()
		}
	}
}

func (s *session) reply(text string) {
	s.w.WriteString(text)
	s.w.WriteString("\r\n")
}

// msgno reads a message number as qmail-pop3d does, replying to a bad
// one; -1 then.
func (s *session) msgno(arg []byte) (int, []byte) {
	n, rest := pop3.ParseNumber(arg)
	switch {
	case n < 0:
		s.reply(pop3.ErrSyntax)
	case n == 0:
		s.reply(errNoZero)
	case n > int64(len(s.md.msgs)):
		s.reply(errTooBig)
	case s.md.msgs[n-1].deleted:
		s.reply(errDeleted)
	default:
		return int(n - 1), rest
	}
	return -1, nil
}

// stat: RFC 1939 5, the number and total size of the messages not
// deleted (qmail-pop3d counted deleted ones in the number).
func (s *session) stat(_ []byte) bool {
	var n, total int64
	for i := range s.md.msgs {
		if !s.md.msgs[i].deleted {
			n++
			total += s.md.size(i)
		}
	}
	s.line("+OK ", n, total)
	return false
}

func (s *session) line(prefix string, a, b int64) {
	var num [48]byte
	buf := append(num[:0], prefix...)
	buf = strconv.AppendInt(buf, a, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, b, 10)
	buf = append(buf, '\r', '\n')
	s.w.Write(buf)
}

func (s *session) entry(prefix string, i int, uidl bool) {
	if !uidl {
		s.line(prefix, int64(i+1), s.md.size(i))
		return
	}
	var num [24]byte
	buf := append(num[:0], prefix...)
	buf = strconv.AppendInt(buf, int64(i+1), 10)
	buf = append(buf, ' ')
	s.w.Write(buf)
	s.w.WriteString(s.md.msgs[i].uidl)
	s.w.WriteString("\r\n")
}

func (s *session) listing(arg []byte, uidl bool) bool {
	if len(arg) > 0 {
		if i, _ := s.msgno(arg); i >= 0 {
			s.entry("+OK ", i, uidl)
		}
		return false
	}
	s.reply(pop3.OK)
	for i := range s.md.msgs {
		if !s.md.msgs[i].deleted {
			s.entry("", i, uidl)
		}
	}
	s.w.WriteString(pop3.Terminator)
	return false
}

func (s *session) dele(arg []byte) bool {
	i, _ := s.msgno(arg)
	if i < 0 {
		return false
	}
	s.md.msgs[i].deleted = true
	s.deleted++
	s.last = max(s.last, i+1)
	s.reply(pop3.OK)
	return false
}

// top is RETR (whole message) and TOP (header and k body lines; as in
// qmail, TOP without k sends the whole message).
func (s *session) top(arg []byte, isTop bool) bool {
	i, rest := s.msgno(arg)
	if i < 0 {
		return false
	}
	lines := int64(-1)
	if isTop {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if k, _ := pop3.ParseNumber(rest); k >= 0 {
			lines = k
		}
	}
	f, err := s.md.open(i)
	if err != nil {
		s.reply(errNoSuch)
		return false
	}
	defer f.Close()
	s.reply(pop3.OK)
	if !isTop {
		s.retrieved++
	}
	if err := pop3.WriteMessage(s.w, f, s.md.buf, lines); err != nil {
		// The status line is out: a read error mid-message cannot be
		// reported in the protocol. Drop the connection, as qmail-pop3d
		// does, so the client does not take a truncated message whole.
		fmt.Fprintf(s.cfg.Log, "qmail-pop3d: user=%q read %s: %v\n", s.cfg.User, s.md.msgs[i].name, err)
		return true
	}
	return false
}

func (s *session) rset(_ []byte) bool {
	for i := range s.md.msgs {
		s.md.msgs[i].deleted = false
	}
	s.deleted = 0
	s.last = 0
	s.reply(pop3.OK)
	return false
}

func (s *session) lastCmd(_ []byte) bool {
	var num [24]byte
	buf := strconv.AppendInt(append(num[:0], "+OK "...), int64(s.last), 10)
	s.w.Write(append(buf, '\r', '\n'))
	return false
}

// capa: RFC 2449. In this state USER and STLS no longer apply.
func (s *session) capa(_ []byte) bool {
	s.w.WriteString("+OK capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n")
	return false
}

func (s *session) quit(_ []byte) bool {
	failed, bytes, messages := s.md.commit()
	for range failed {
		s.reply(errNoUnlink)
	}
	if messages > 0 && s.cfg.Released != nil {
		if err := s.cfg.Released(bytes, messages); err != nil {
			// The next recount corrects the record.
			fmt.Fprintf(s.cfg.Log, "qmail-pop3d: user=%q: quota record: %v\n", s.cfg.User, err)
		}
	}
	s.reply(pop3.OK)
	fmt.Fprintf(s.cfg.Log, "qmail-pop3d: quit user=%q messages=%d retrieved=%d deleted=%d\n",
		s.cfg.User, len(s.md.msgs), s.retrieved, s.deleted)
	return true
}
