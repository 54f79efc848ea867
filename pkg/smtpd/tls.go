package smtpd

import (
	"crypto/tls"
	"fmt"

	"github.com/quail-mta/quail/pkg/idleconn"
)

// startTLS runs STARTTLS (RFC 3207). Whatever the client sent after the
// command, before the handshake, is thrown away unread: a command
// injected in plaintext must never run inside the TLS session
// (CVE-2011-0411). Afterwards the session starts over, as if just
// connected, without a greeting.
func (s *session) startTLS(arg string) error {
	switch {
	case s.cfg.TLS == nil || s.tls != nil:
		s.refuse("502 unimplemented (#5.5.1)")
		return nil
	case arg != "":
		s.refuse("501 Syntax error (no parameters allowed) (#5.5.4)")
		return nil
	}
	s.reply("220 ready for tls")
	if err := s.w.Flush(); err != nil {
		return err
	}
	if n := s.r.Buffered(); n > 0 {
		s.logf("event=discarded bytes=%d reason=pipelined-after-starttls", n)
		s.r.Discard(n)
	}
	tc := tls.Server(idleconn.Conn{Conn: s.conn, Timeout: s.cfg.Timeout}, s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	s.tls, s.conn = &st, tc
	s.setIO()
	// RFC 3207 §4.2: forget everything learned before TLS, the
	// authentication too, or a man in the middle could log in as himself
	// before the client's STARTTLS and have its session.
	s.resetTransaction()
	s.helo, s.ehlo, s.authUser = "", false, ""
	return nil
}
