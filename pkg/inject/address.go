package inject

import (
	"errors"
	"strings"
)

// This file reads the address fields of a header the way qmail's
// token822 does (RFC 822 lexical tokens, lenient about what a sender
// really writes) and rewrites each address as qmail-inject does.

type tokKind byte

const (
	tAtom    tokKind = iota + 1 // joe, example, 8-bit text
	tQuoted                     // "joe smith"
	tLiteral                    // [192.0.2.1]
	tComment                    // (Joe Smith)
	tSpecial                    // one of . , @ < > : ;
)

// token is one lexical token of a field value. text is decoded: the
// content of a quoted string, literal or comment without its delimiters,
// backslashes or folding line breaks; ch is the special character.
type token struct {
	kind       tokKind
	ch         byte
	text       string
	start, end int // byte span in the source
}

func (t token) is(ch byte) bool { return t.kind == tSpecial && t.ch == ch }

func (t token) word() bool { return t.kind == tAtom || t.kind == tQuoted || t.kind == tLiteral }

var errSyntax = errors.New("unparsable address")

// specials end an atom and are tokens of their own (RFC 822 3.3, as
// qmail's token822 reads them).
const specials = ".,@<>:;"

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// tokenize splits s into tokens. A stray ')' or ']', or a quoted string,
// comment or literal without its end, is a syntax error.
func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case strings.IndexByte(specials, c) >= 0:
			toks = append(toks, token{kind: tSpecial, ch: c, start: i, end: i + 1})
			i++
		case c == ')' || c == ']':
			return nil, errSyntax
		case c == '"' || c == '[' || c == '(':
			t, next, err := delimited(s, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = next
		default:
			var b strings.Builder
			j := i
			for j < len(s) && !isSpace(s[j]) && strings.IndexByte(specials+`"[()]`, s[j]) < 0 {
				if s[j] == '\\' {
					if j+1 >= len(s) || s[j+1] == '\r' || s[j+1] == '\n' {
						return nil, errSyntax
					}
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, token{kind: tAtom, text: b.String(), start: i, end: j})
			i = j
		}
	}
	return toks, nil
}

// delimited reads the quoted string, literal or comment that starts at
// s[i]. Comments nest; a backslash quotes the next byte; CR and LF (the
// folding of a long field) are dropped.
func delimited(s string, i int) (token, int, error) {
	open := s[i]
	t := token{start: i}
	var closer byte
	switch open {
	case '"':
		t.kind, closer = tQuoted, '"'
	case '[':
		t.kind, closer = tLiteral, ']'
	default:
		t.kind, closer = tComment, ')'
	}
	var b strings.Builder
	depth := 1
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '\\':
			if j+1 >= len(s) {
				return token{}, 0, errSyntax
			}
			j++
			if s[j] != '\r' && s[j] != '\n' {
				b.WriteByte(s[j])
			}
			continue
		case c == '\r' || c == '\n':
			continue
		case open == '(' && c == '(':
			depth++
		case c == closer:
			depth--
			if depth == 0 {
				t.text, t.end = b.String(), j+1
				return t, j + 1, nil
			}
		}
		b.WriteByte(c)
	}
	return token{}, 0, errSyntax
}

// addrRef is one address found in a field: its addr-spec tokens and the
// span of the source they came from, which a rewrite replaces.
type addrRef struct {
	toks       []token
	start, end int
	commaAt    int // >= 0: a comma must be inserted here (two addresses without one)
}

// parseAddrList finds the addresses of an address-list field value:
// mailboxes (addr-spec or phrase <addr-spec>) separated by commas, and
// groups (name: mailbox, ...;), whose names are not addresses. Like
// qmail it takes two words in a row without '.' or '@' between them as
// two addresses, and text after '>' as another address.
func parseAddrList(toks []token) ([]addrRef, error) {
	var out []addrRef
	var item []token // words and specials of the current address, comments left out
	inGroup := false
	lastEnd := -1 // end of the previous address when no comma has followed it

	flush := func() {
		if len(item) == 0 {
			return
		}
		begin := 0
		for k := 1; k <= len(item); k++ {
			if k < len(item) && !(item[k].word() && item[k-1].word()) {
				continue
			}
			ref := addrRef{toks: item[begin:k], start: item[begin].start, end: item[k-1].end, commaAt: lastEnd}
			out = append(out, ref)
			lastEnd = ref.end
			begin = k
		}
		item = nil
	}

	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tComment:
		case t.is(','):
			flush()
			lastEnd = -1
		case t.is(';'):
			if !inGroup {
				return nil, errSyntax
			}
			flush()
			inGroup, lastEnd = false, -1
		case t.is(':'):
			if inGroup {
				return nil, errSyntax
			}
			item, inGroup, lastEnd = nil, true, -1 // the group's name
		case t.is('<'):
			j := i + 1
			var addr []token
			for ; j < len(toks) && !toks[j].is('>'); j++ {
				if toks[j].is('<') {
					return nil, errSyntax
				}
				if toks[j].kind != tComment {
					addr = append(addr, toks[j])
				}
			}
			if j == len(toks) {
				return nil, errSyntax
			}
			ref := addrRef{toks: addr, start: toks[j].start, end: toks[j].start, commaAt: lastEnd}
			if len(addr) > 0 {
				ref.start, ref.end = addr[0].start, addr[len(addr)-1].end
			}
			out = append(out, ref)
			item, lastEnd = nil, toks[j].end
			i = j
		case t.is('>'):
			return nil, errSyntax
		default:
			item = append(item, t)
		}
	}
	flush()
	if inGroup {
		return nil, errSyntax
	}
	return out, nil
}

// rewriter holds what qmail-inject appends to incomplete addresses.
type rewriter struct {
	defaultHost   []token // tokens of control/defaulthost
	defaultDomain []token // of control/defaultdomain
	plusDomain    []token // of control/plusdomain
}

func newRewriter(defaultHost, defaultDomain, plusDomain string) rewriter {
	return rewriter{
		defaultHost:   domainTokens(defaultHost),
		defaultDomain: domainTokens(defaultDomain),
		plusDomain:    domainTokens(plusDomain),
	}
}

// domainTokens splits a host name from a control file or the
// environment; one that does not parse is taken as one atom.
func domainTokens(s string) []token {
	toks, err := tokenize(s)
	if err != nil || len(toks) == 0 {
		return []token{{kind: tAtom, text: s}}
	}
	for i := range toks {
		toks[i].start, toks[i].end = 0, 0
	}
	return toks
}

var (
	atTok  = token{kind: tSpecial, ch: '@'}
	dotTok = token{kind: tSpecial, ch: '.'}
)

// rewrite completes one addr-spec as qmail-inject does (qmail-header(5)):
// it drops a source route and a trailing '.' or '@', adds @defaulthost
// to an address without a host, replaces a host's trailing '+' by
// .plusdomain, and adds .defaultdomain to a host without a dot. <> and
// <user@[]> stay as they are. changed reports whether anything was done.
func (rw rewriter) rewrite(a []token) (out []token, changed bool) {
	n := len(a)
	if n == 0 || (n >= 2 && a[n-1].kind == tLiteral && a[n-1].text == "" && a[n-2].is('@')) {
		return a, false
	}
	out = append([]token(nil), a...)
	for len(out) > 0 && out[0].is('@') { // <@relay,@relay:user@host>: qmail drops the route
		k := 0
		for k < len(out) && !out[k].is(':') {
			k++
		}
		if k == len(out) {
			return nil, true
		}
		out, changed = out[k+1:], true
	}
	// <joe@.> → <joe@> → <joe>. qmail drops one '.' and then one '@';
	// quail drops them all, so that a rewritten address is complete.
	for len(out) > 0 && (out[len(out)-1].is('.') || out[len(out)-1].is('@')) {
		out, changed = out[:len(out)-1], true
	}
	if len(out) == 0 {
		return nil, true
	}
	at := -1
	for i, t := range out {
		if t.is('@') {
			at = i
		}
	}
	if at < 0 {
		out = append(append(out, atTok), rw.defaultHost...)
		at, changed = len(out)-len(rw.defaultHost)-1, true
	}
	if last := &out[len(out)-1]; last.kind == tAtom && strings.HasSuffix(last.text, "+") {
		last.text = strings.TrimSuffix(last.text, "+")
		if last.text == "" {
			out = out[:len(out)-1]
		}
		if prev := out[len(out)-1]; !prev.is('@') && !prev.is('.') {
			out = append(out, dotTok)
		}
		out, changed = append(out, rw.plusDomain...), true
	}
	for _, t := range out[at+1:] {
		if t.is('.') || t.kind == tLiteral {
			return out, changed
		}
	}
	return append(append(out, dotTok), rw.defaultDomain...), true
}

// unquote is an address as the envelope carries it: quoted strings
// without their quotes, literals in brackets (qmail's token822_unquote).
func unquote(a []token) string {
	var b strings.Builder
	for _, t := range a {
		switch t.kind {
		case tSpecial:
			b.WriteByte(t.ch)
		case tLiteral:
			b.WriteString("[" + t.text + "]")
		case tAtom, tQuoted:
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// render is an addr-spec as a header carries it.
func render(a []token) string {
	var b strings.Builder
	for _, t := range a {
		switch t.kind {
		case tSpecial:
			b.WriteByte(t.ch)
		case tLiteral:
			b.WriteString("[" + escape(t.text, "[]\\") + "]")
		case tQuoted:
			b.WriteString(`"` + escape(t.text, `"\`) + `"`)
		case tAtom:
			if atomNeedsQuotes(t.text) {
				b.WriteString(`"` + escape(t.text, `"\`) + `"`)
			} else {
				b.WriteString(t.text)
			}
		}
	}
	return b.String()
}

func escape(s, chars string) string {
	if !strings.ContainsAny(s, chars) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// atomNeedsQuotes reports whether an atom (which came with backslash
// escapes) holds characters that only a quoted string may carry.
func atomNeedsQuotes(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || isSpace(c) || strings.IndexByte(specials+`"()[]\`, c) >= 0 {
			return true
		}
	}
	return false
}

// atext is what RFC 5322 3.2.3 allows in an atom besides letters and
// digits.
const atext = "!#$%&'*+-/=?^_`{|}~"

// localNeedsQuotes reports whether a local part must be quoted to be an
// RFC 5322 dot-atom (qmail's quote_need): empty, a character outside
// atext, 8-bit, or a leading, trailing or doubled dot.
func localNeedsQuotes(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && strings.IndexByte(atext, c) < 0 {
			return true
		}
	}
	return false
}

// mailbox makes the tokens of local@host from raw strings, the local
// part as one word (qmail's quote2, which quotes the part before the
// last '@' when it needs it). hasHost false leaves the '@' out.
func mailbox(local, host string, hasHost bool) ([]token, error) {
	kind := tAtom
	if localNeedsQuotes(local) {
		kind = tQuoted
	}
	toks := []token{{kind: kind, text: local}}
	if local == "" && !hasHost {
		return nil, nil
	}
	if !hasHost {
		return toks, nil
	}
	h, err := tokenize(host)
	if err != nil {
		return nil, err
	}
	for _, t := range h {
		if t.kind == tComment || (t.kind == tSpecial && t.ch != '.') {
			return nil, errSyntax
		}
	}
	return append(append(toks, atTok), h...), nil
}

// argAddress reads an address given on the command line (a recipient,
// or the sender of -f) as qmail does: split at the last '@', the local
// part taken literally. quail also takes <addr> and reads "" and "<>"
// as the null address.
func argAddress(s string) ([]token, error) {
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return nil, nil
	}
	if strings.ContainsAny(s, "\x00\r\n") {
		return nil, errSyntax
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		return mailbox(s[:at], s[at+1:], true)
	}
	return mailbox(s, "", false)
}
