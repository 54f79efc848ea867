package smtpd

import (
	"errors"
	"strconv"
	"strings"
)

// maxAddr is qmail-smtpd's limit on an address, in bytes.
const maxAddr = 900

var errSyntax = errors.New("syntax error")

// path is a MAIL or RCPT argument: the address and the ESMTP parameters
// after it.
type path struct {
	addr   string
	params []string // "KEY=VALUE" or "KEY" as sent
}

// parsePath reads the argument of MAIL FROM: or RCPT TO: as qmail-smtpd
// does (reference §3.2): the text between the first '<' and the first
// unquoted '>', or without '<' the text after the colon up to a space; a
// leading source route "@a,@b:" dropped; quotes removed and a backslash
// escaping the next byte. What follows the '>' is split into parameters.
func parsePath(arg string) (path, error) {
	colon := strings.IndexByte(arg, ':')
	if colon < 0 {
		return path{}, errSyntax
	}
	arg = arg[colon+1:]
	var rest string
	var b strings.Builder
	if lt := strings.IndexByte(arg, '<'); lt >= 0 {
		s := arg[lt+1:]
		quoted, closed := false, false
		i := 0
	scan:
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				b.WriteByte(s[i])
			case c == '"':
				quoted = !quoted
			case c == '>' && !quoted:
				closed = true
				break scan
			default:
				b.WriteByte(c)
			}
		}
		if !closed {
			return path{}, errSyntax
		}
		rest = s[i+1:]
	} else {
		s := strings.TrimLeft(arg, " ")
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		b.WriteString(s[:end])
		rest = s[end:]
	}
	addr := b.String()
	if strings.HasPrefix(addr, "@") {
		// A source route: qmail keeps what follows its colon.
		colon := strings.IndexByte(addr, ':')
		if colon < 0 {
			return path{}, errSyntax
		}
		addr = addr[colon+1:]
	}
	if len(addr) > maxAddr {
		return path{}, errSyntax
	}
	p := path{addr: addr}
	for _, f := range strings.Fields(rest) {
		p.params = append(p.params, f)
	}
	return p, nil
}

// mailParams are the MAIL FROM parameters quail understands.
type mailParams struct {
	size     int64 // SIZE=, -1 when absent
	body8bit bool
	utf8     bool
	auth     string // AUTH= decoded, "" when absent or <>
}

// parseMailParams checks MAIL FROM's parameters (RFC 1870 SIZE, RFC 6152
// BODY, RFC 6531 SMTPUTF8, RFC 4954 AUTH). An unknown or malformed one is
// an error, answered with 555 as RFC 5321 asks.
func parseMailParams(params []string) (mailParams, error) {
	mp := mailParams{size: -1}
	for _, p := range params {
		key, value, hasValue := strings.Cut(p, "=")
		switch strings.ToUpper(key) {
		case "SIZE":
			n, err := strconv.ParseInt(value, 10, 64)
			if !hasValue || err != nil || n < 0 {
				return mp, errSyntax
			}
			mp.size = n
		case "BODY":
			switch strings.ToUpper(value) {
			case "7BIT":
			case "8BITMIME":
				mp.body8bit = true
			default:
				return mp, errSyntax
			}
		case "SMTPUTF8":
			if hasValue {
				return mp, errSyntax
			}
			mp.utf8 = true
		case "AUTH":
			if !hasValue {
				return mp, errSyntax
			}
			if value != "<>" {
				s, ok := xtextDecode(value)
				if !ok {
					return mp, errSyntax
				}
				mp.auth = s
			}
		default:
			return mp, errSyntax
		}
	}
	return mp, nil
}

// xtextDecode undoes RFC 3461's xtext: "+XX" is the byte with hex value XX.
func xtextDecode(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '+' {
			if i+2 >= len(s) {
				return "", false
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		if c < '!' || c > '~' || c == '=' {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// splitAddr splits an address at its last '@'. An address without one has
// an empty domain.
func splitAddr(addr string) (local, domain string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}

// hasControl reports whether s holds a NUL or another control byte.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
