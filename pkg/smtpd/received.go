package smtpd

import (
	"crypto/tls"
	"strings"

	"github.com/quail-mta/quail/pkg/maildate"
)

// received is the Received line qmail-smtpd puts below qmail-queue's
// (reference §3.5):
//
//	Received: from REMOTEHOST (HELO helo) (INFO@REMOTEIP)
//	  by LOCALHOST with SMTP; DATE
//
// with "(HELO ...)" only when it differs from the remote host's name and
// "INFO@" only when known (the authenticated user, else TCPREMOTEINFO).
// The protocol word follows RFC 3848 once TLS or AUTH is involved
// (ESMTPS, ESMTPA, ESMTPSA), and a comment names the TLS version and
// cipher. Every field from outside is filtered to qmail's safe bytes.
func (s *session) received() string {
	var b strings.Builder
	host := safe(orUnknown(s.cfg.RemoteHost))
	b.WriteString("Received: from ")
	b.WriteString(host)
	if s.helo != "" && !strings.EqualFold(s.helo, s.cfg.RemoteHost) {
		b.WriteString(" (HELO ")
		b.WriteString(safe(s.helo))
		b.WriteString(")")
	}
	b.WriteString(" (")
	info := s.authUser
	if info == "" {
		info = s.cfg.RemoteInfo
	}
	if info != "" {
		b.WriteString(safe(info))
		b.WriteString("@")
	}
	b.WriteString(safe(orUnknown(s.cfg.RemoteIP)))
	b.WriteString(")\n  by ")
	local := s.cfg.LocalHost
	if local == "" {
		local = s.cfg.LocalIP
	}
	b.WriteString(safe(orUnknown(local)))
	b.WriteString(" with ")
	switch {
	case s.tls == nil && s.authUser == "":
		b.WriteString("SMTP")
	default:
		b.WriteString("ESMTP")
		if s.tls != nil {
			b.WriteString("S")
		}
		if s.authUser != "" {
			b.WriteString("A")
		}
		if s.tls != nil {
			b.WriteString(" (")
			b.WriteString(tls.VersionName(s.tls.Version))
			b.WriteString(" ")
			b.WriteString(tls.CipherSuiteName(s.tls.CipherSuite))
			b.WriteString(" encrypted)")
		}
	}
	b.WriteString("; ")
	b.WriteString(maildate.Format(s.cfg.Now()))
	b.WriteString("\n")
	return b.String()
}

// safe replaces every byte outside qmail's allowed set (letters, digits,
// ". @ % + / = : - [ ]") with '?', so nothing a client sends can break
// the header.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".@%+/=:-[]", c) >= 0:
		default:
			b[i] = '?'
		}
	}
	return string(b)
}
