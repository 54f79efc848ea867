package dotqmail

import (
	"strconv"
	"strings"
	"time"
)

// Args are qmail-local's operands and what the delivery has learnt about
// the recipient: everything Env needs.
type Args struct {
	User   string // the account
	Home   string // its home directory
	Local  string // the whole local part, e.g. "joe-list"
	Dash   string // "" or "-"
	Ext    string // the extension, e.g. "list"
	Host   string // the domain
	Sender string // the envelope sender, "" for a bounce

	NewSender  string    // from NewSender
	Default    string    // from the Choice: DEFAULT, set only when HasDefault
	HasDefault bool      //
	Now        time.Time // the start of the delivery, for UFLINE
}

// Env is the environment qmail-local adds for delivery programs, as
// NAME=value strings; programs also inherit qmail-local's own. The
// values are not cleaned: they come from the message's envelope and are
// the attacker's to choose.
func Env(a Args) []string {
	env := []string{
		"SENDER=" + a.Sender,
		"NEWSENDER=" + a.NewSender,
		"RECIPIENT=" + a.Local + "@" + a.Host,
		"USER=" + a.User,
		"HOME=" + a.Home,
		"LOCAL=" + a.Local,
		"HOST=" + a.Host,
		"HOST2=" + hostPrefix(a.Host, 1),
		"HOST3=" + hostPrefix(a.Host, 2),
		"HOST4=" + hostPrefix(a.Host, 3),
		"EXT=" + a.Ext,
		"EXT2=" + extSuffix(a.Ext, 1),
		"EXT3=" + extSuffix(a.Ext, 2),
		"EXT4=" + extSuffix(a.Ext, 3),
	}
	if a.HasDefault {
		env = append(env, "DEFAULT="+a.Default)
	}
	return append(env,
		"DTLINE="+DTLine(a.Local, a.Host),
		"RPLINE="+RPLine(a.Sender),
		"UFLINE="+UFLine(a.Sender, a.Now),
	)
}

// hostPrefix is host without its last n dot-separated parts: HOST2 cuts
// at the last dot, HOST3 at the one before, and so on; when the dots run
// out it stops shrinking.
func hostPrefix(host string, n int) string {
	for range n {
		if i := strings.LastIndexByte(host, '.'); i >= 0 {
			host = host[:i]
		}
	}
	return host
}

// extSuffix is ext after its first n dashes: EXT2 follows the first,
// EXT3 the second, and so on; "" when there are not that many.
func extSuffix(ext string, n int) string {
	for range n {
		i := strings.IndexByte(ext, '-')
		if i < 0 {
			return ""
		}
		ext = ext[i+1:]
	}
	return ext
}

// DTLine is the Delivered-To line qmail-local adds to every delivery and
// looks for to detect loops: "Delivered-To: LOCAL@HOST\n", with any
// newline in the address turned into '_'.
func DTLine(local, host string) string {
	return "Delivered-To: " + strings.ReplaceAll(local+"@"+host, "\n", "_") + "\n"
}

// RPLine is the Return-Path line put on top of Maildir and mbox
// deliveries: "Return-Path: <SENDER>\n", the part of the sender before
// its last '@' quoted as RFC 821 wants when needed, and any newline
// turned into '_'.
func RPLine(sender string) string {
	return "Return-Path: <" + strings.ReplaceAll(quoteAddr(sender), "\n", "_") + ">\n"
}

var (
	weekdays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	months   = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// UFLine is the mbox separator line: "From SENDER DATE\n", with spaces,
// tabs and newlines in the sender turned into '-', MAILER-DAEMON for the
// empty sender, and the date in UTC as qmail's myctime writes it:
// "Thu Jan 05 09:07:03 2026" (asctime's layout, the day zero-padded).
func UFLine(sender string, t time.Time) string {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	t = t.UTC()
	b := make([]byte, 0, len(sender)+32)
	b = append(b, "From "...)
	for i := 0; i < len(sender); i++ {
		switch c := sender[i]; c {
		case ' ', '\t', '\n':
			b = append(b, '-')
		default:
			b = append(b, c)
		}
	}
	b = append(b, ' ')
	b = append(b, weekdays[t.Weekday()]...)
	b = append(b, ' ')
	b = append(b, months[t.Month()-1]...)
	b = append(b, ' ')
	b = two(b, t.Day())
	b = append(b, ' ')
	b = two(b, t.Hour())
	b = append(b, ':')
	b = two(b, t.Minute())
	b = append(b, ':')
	b = two(b, t.Second())
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(t.Year()), 10)
	b = append(b, '\n')
	return string(b)
}

func two(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

// quoteAddr is qmail's quote2: the part before the last '@' (the whole
// address when there is none) is quoted when it needs to be; the empty
// address stays empty.
func quoteAddr(addr string) string {
	if addr == "" {
		return ""
	}
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return quoteLocal(addr)
	}
	return quoteLocal(addr[:i]) + addr[i:]
}

// atomOK marks the bytes that may stand unquoted in a local part
// (qmail's quote.c table): letters, digits and !#$%&'*+-/=?^_`{|}~ and '.'.
var atomOK = func() (ok [128]bool) {
	for c := '0'; c <= '9'; c++ {
		ok[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		ok[c] = true
		ok[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-/=?^_`{|}~." {
		ok[c] = true
	}
	return ok
}()

// quoteLocal quotes a local part unless it is a dot-atom: not empty, only
// atomOK bytes, and no leading, trailing or doubled dot. Quoting
// backslash-escapes CR, LF, '"' and '\'.
func quoteLocal(s string) string {
	need := s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..")
	for i := 0; i < len(s) && !need; i++ {
		need = s[i] >= 128 || !atomOK[s[i]]
	}
	if !need {
		return s
	}
	b := make([]byte, 0, 2*len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n', '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}
