package bounce

import "strings"

// quoteAddress writes an address for a header as qmail does (quote2): the
// local part, the text before the last '@', goes in double quotes when it
// is not a dot-atom (RFC 5322 3.2.3); the domain is left as it is.
func quoteAddress(addr string) string {
	if addr == "" {
		return ""
	}
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return quoteLocal(addr)
	}
	return quoteLocal(addr[:i]) + addr[i:]
}

// quoteLocal quotes a local part when it needs it (qmail's quote): when it
// is empty, holds a byte that is not atext or '.', or has a leading,
// trailing or doubled dot. In quotes, CR, LF, '"' and '\' are escaped
// with a backslash.
func quoteLocal(s string) string {
	if !needsQuote(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func needsQuote(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if !isAtext(s[i]) && s[i] != '.' {
			return true
		}
	}
	return false
}

// isAtext reports whether c is RFC 5322 atext (3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
