package inject

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/quail-mta/quail/pkg/maildate"
)

// MaxHeader is the most header quail reads: the header is held in memory
// to be rewritten (the body never is), so a larger one is refused.
const MaxHeader = 1 << 20

// role says what qmail-inject does with a field it knows.
type role int

const (
	roleNone       role = iota
	roleRcpt            // To, Cc, Bcc, Apparently-To: rewritten, recipients with -h/-H/-t
	roleResentRcpt      // Resent-To, -Cc, -Bcc: the same in resent mode
	roleReturnPath      // Return-Path: rewritten, sets the envelope sender
	roleAddr            // From, Sender, Reply-To, ...: rewritten only
)

type fieldInfo struct {
	role   role
	drop   bool // removed from the message (Bcc, Resent-Bcc, Return-Path, Content-Length)
	resent bool // its presence means the message is being resent
}

// fieldInfoOf describes the fields qmail-inject knows (qmail's hfield.c),
// by lower-case name. A switch rather than a map: no start-up cost.
func fieldInfoOf(name string) fieldInfo {
	switch name {
	case "to", "cc", "apparently-to":
		return fieldInfo{role: roleRcpt}
	case "bcc":
		return fieldInfo{role: roleRcpt, drop: true}
	case "resent-to", "resent-cc":
		return fieldInfo{role: roleResentRcpt, resent: true}
	case "resent-bcc":
		return fieldInfo{role: roleResentRcpt, resent: true, drop: true}
	case "return-path":
		return fieldInfo{role: roleReturnPath, drop: true}
	case "from", "sender", "reply-to", "return-receipt-to", "errors-to":
		return fieldInfo{role: roleAddr}
	case "resent-from", "resent-sender", "resent-reply-to":
		return fieldInfo{role: roleAddr, resent: true}
	case "resent-date", "resent-message-id":
		return fieldInfo{resent: true}
	case "content-length":
		return fieldInfo{drop: true}
	}
	return fieldInfo{}
}

// fieldName returns the lower-cased name of a header line that is a
// valid field: a name of printable ASCII without spaces, optional blanks,
// then a colon (qmail's hfield_valid). colon is the colon's index.
func fieldName(line []byte) (name string, colon int, ok bool) {
	colon = bytes.IndexByte(line, ':')
	if colon < 0 {
		return "", 0, false
	}
	n := bytes.TrimRight(line[:colon], " \t")
	if len(n) == 0 {
		return "", 0, false
	}
	for _, c := range n {
		if c <= ' ' || c >= 0x7f {
			return "", 0, false
		}
	}
	return strings.ToLower(string(n)), colon, true
}

// rawHeader is a message's header as read: whole fields (continuation
// lines included, each line ending in LF), and what follows it.
type rawHeader struct {
	fields  [][]byte
	hasBody bool   // a body follows (after a blank line, or the whole input when there was no header)
	body    []byte // the first body line, already read, when the input had no header
	size    int    // bytes read
}

// readHeader reads the header: lines up to the first empty one (LF or
// CRLF), at most MaxHeader bytes. A first line that is not a field means
// the input has no header and is all body. A later line that is neither
// a field nor a continuation is an error (qmail would start the body
// there). An mbox "From " line becomes an MBOX-Line field, as in qmail.
func readHeader(br *bufio.Reader) (*rawHeader, error) {
	h := &rawHeader{}
	for {
		line, err := readLine(br, MaxHeader-h.size)
		if err != nil && err != io.EOF {
			return nil, err
		}
		if len(line) == 0 {
			return h, nil
		}
		h.size += len(line)
		raw := line
		eof := line[len(line)-1] != '\n'
		if eof {
			line = append(line, '\n')
		}
		line = crlfToLF(line)
		switch {
		case len(line) == 1:
			h.hasBody = true
			return h, nil
		case (line[0] == ' ' || line[0] == '\t') && len(h.fields) > 0:
			last := len(h.fields) - 1
			h.fields[last] = append(h.fields[last], line...)
		case bytes.HasPrefix(line, []byte("From ")):
			h.fields = append(h.fields, append([]byte("MBOX-Line: "), line...))
		default:
			if _, _, ok := fieldName(line); !ok {
				if len(h.fields) == 0 {
					h.hasBody, h.body = true, raw
					return h, nil
				}
				return nil, permf("invalid header field: %s", printable(line))
			}
			h.fields = append(h.fields, line)
		}
		if eof {
			return h, nil
		}
	}
}

var errHeaderTooBig = permf("message header exceeds %d bytes", MaxHeader)

// readLine reads one line with its LF (none at the end of input), or
// errHeaderTooBig when it would take more than budget bytes.
func readLine(br *bufio.Reader, budget int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > budget {
			return nil, errHeaderTooBig
		}
		line = append(line, frag...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return line, io.EOF
		case err != nil:
			return nil, tempf("read error: %v", err)
		}
		return line, nil
	}
}

// crlfToLF drops the CRs before each LF of b (CRLF line ends, and the
// CR CR LF of a text converted twice).
func crlfToLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\r\n")) {
		return b
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == '\n' {
			out = bytes.TrimRight(out, "\r")
		}
		out = append(out, c)
	}
	return out
}

// printable shows a header line in one line of an error message.
func printable(b []byte) string {
	const max = 200
	s := strings.TrimRight(string(b), "\n")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
}

// header is a header rewritten, with what it says about the envelope.
type header struct {
	out        bytes.Buffer // fields to queue: added ones first, then the kept ones
	rcpts      []string     // header recipients (the Resent- ones in resent mode)
	returnPath *string      // the sender a Return-Path field gives
}

// rewriteHeader processes the fields of h as qmail-inject does: drops,
// rewrites addresses, collects recipients and the Return-Path sender,
// and adds the fields the message lacks.
func (in *injection) rewriteHeader(h *rawHeader) (*header, error) {
	out := &header{}
	var kept [][]byte
	seen := map[string]bool{}
	resent := false
	var rcpts, resentRcpts []string
	var badRcpt, badResentRcpt []byte // a recipient field that did not parse
	for _, f := range h.fields {
		name, colon, _ := fieldName(f)
		info := fieldInfoOf(name)
		switch {
		case name == "from" && in.cfg.Letters.DropFrom,
			name == "message-id" && in.cfg.Letters.DropMessageID,
			name == "return-path" && in.cfg.Letters.IgnoreReturnPath:
			continue
		}
		seen[name] = true
		resent = resent || info.resent
		switch info.role {
		case roleRcpt, roleResentRcpt:
			nf, addrs, err := in.rewriteField(f, colon)
			switch {
			case err != nil && info.role == roleRcpt:
				badRcpt = f
			case err != nil:
				badResentRcpt = f
			case info.role == roleRcpt:
				f, rcpts = nf, append(rcpts, addrs...)
			default:
				f, resentRcpts = nf, append(resentRcpts, addrs...)
			}
		case roleReturnPath:
			if out.returnPath != nil || in.opts.SenderSet {
				break
			}
			_, addrs, err := in.rewriteField(f, colon)
			if err != nil {
				return nil, permf("unable to parse this line: %s", printable(f))
			}
			if len(addrs) > 0 {
				s := addrs[0]
				if s != "" && in.cfg.Letters.VERPRecipient {
					s += "-@[]"
				}
				out.returnPath = &s
			}
		case roleAddr:
			if nf, _, err := in.rewriteField(f, colon); err == nil {
				f = nf
			}
		}
		if !info.drop {
			kept = append(kept, f)
		}
	}
	out.rcpts = rcpts
	bad := badRcpt
	if resent {
		out.rcpts, bad = resentRcpts, badResentRcpt
	}
	if bad != nil && in.headerRecipients() {
		return nil, permf("unable to parse the addresses of this line: %s", printable(bad))
	}
	in.addFields(&out.out, seen, resent)
	for _, f := range kept {
		out.out.Write(f)
	}
	return out, nil
}

// rewriteField rewrites the addresses of one address-list field and
// returns it with the addresses as the envelope would carry them. The
// field keeps its text (comments, names, folding) except the addresses
// that change.
func (in *injection) rewriteField(f []byte, colon int) ([]byte, []string, error) {
	value := string(f[colon+1:])
	toks, err := tokenize(value)
	if err != nil {
		return nil, nil, err
	}
	refs, err := parseAddrList(toks)
	if err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	b.Write(f[:colon+1])
	pos := 0
	addrs := make([]string, 0, len(refs))
	for _, r := range refs {
		if r.commaAt >= 0 {
			b.WriteString(value[pos:r.commaAt])
			b.WriteByte(',')
			pos = r.commaAt
		}
		nt, changed := in.rw.rewrite(r.toks)
		if changed {
			b.WriteString(value[pos:r.start])
			b.WriteString(render(nt))
			pos = r.end
		}
		addrs = append(addrs, unquote(nt))
	}
	b.WriteString(value[pos:])
	// An address taken out may leave a bare CR before the LF.
	return crlfToLF([]byte(b.String())), addrs, nil
}

// addFields writes the fields a message lacks, as qmail-inject does: in
// resent mode (any Resent- field) the Resent- variants.
func (in *injection) addFields(w *bytes.Buffer, seen map[string]bool, resent bool) {
	prefix := ""
	if resent {
		prefix = "Resent-"
	}
	lc := strings.ToLower(prefix)
	if !seen[lc+"date"] {
		fmt.Fprintf(w, "%sDate: %s\n", prefix, maildate.Format(in.cfg.Now))
	}
	if !seen[lc+"message-id"] {
		fmt.Fprintf(w, "%sMessage-ID: %s\n", prefix, in.messageID())
	}
	if !seen[lc+"from"] {
		fmt.Fprintf(w, "%sFrom: %s\n", prefix, in.defaultFrom())
	}
	if !seen[lc+"to"] && !seen[lc+"cc"] {
		fmt.Fprintf(w, "%sCc: recipient list not shown: ;\n", prefix)
	}
}

// messageID is qmail's <YYYYMMDDHHMMSS.PID.qmail@idhost>, in UTC.
func (in *injection) messageID() string {
	return fmt.Sprintf("<%s.%d.qmail@%s>", in.cfg.Now.UTC().Format("20060102150405"), in.cfg.Pid, in.cfg.IDHost)
}

// defaultFrom is the From address of a message that has none: the
// user's address, with the personal name as "Name" <addr>, or as a
// comment when QMAILINJECT has c. A name outside ASCII is encoded
// (RFC 2047); control characters in it become spaces.
func (in *injection) defaultFrom() string {
	toks, err := mailbox(in.cfg.User, in.cfg.Host, in.cfg.Host != "")
	if err != nil {
		toks, _ = mailbox(in.cfg.User, "", false)
	}
	nt, _ := in.rw.rewrite(toks)
	addr := render(nt)
	name := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, in.cfg.Name)
	switch {
	case name == "":
		return addr
	case in.cfg.Letters.CommentFrom:
		return addr + " (" + escape(encodeName(name), `()\`) + ")"
	case needsEncoding(name):
		return encodeName(name) + " <" + addr + ">"
	default:
		return `"` + escape(name, `"\`) + `" <` + addr + ">"
	}
}

func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

func encodeName(s string) string {
	if !needsEncoding(s) {
		return s
	}
	return qEncode(s)
}

// qEncode is RFC 2047's Q encoding of a display name in UTF-8, split
// into encoded words of at most 75 characters and never inside a
// character. (Written here rather than taken from package mime, whose
// start-up tables every sendmail run would pay for.)
func qEncode(s string) string {
	const prefix, suffix, max = "=?utf-8?q?", "?=", 75
	var out, word strings.Builder
	flush := func() {
		if word.Len() == 0 {
			return
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(prefix + word.String() + suffix)
		word.Reset()
	}
	for _, r := range s {
		var enc strings.Builder
		switch {
		case r == ' ':
			enc.WriteByte('_')
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r)):
			enc.WriteRune(r)
		default:
			for _, b := range []byte(string(r)) {
				fmt.Fprintf(&enc, "=%02X", b)
			}
		}
		if len(prefix)+word.Len()+enc.Len()+len(suffix) > max {
			flush()
		}
		word.WriteString(enc.String())
	}
	flush()
	return out.String()
}
