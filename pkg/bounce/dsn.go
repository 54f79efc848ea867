package bounce

import (
	"bytes"
	"io"
	stdtextproto "net/textproto"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/quail-mta/quail/pkg/maildate"
)

// Status codes used when a report names none (RFC 3463).
const (
	statusPermanent = "5.0.0" // other or undefined permanent failure
	statusExpired   = "4.4.7" // delivery time expired (RFC 3463 3.5)
)

// expiredText is what qmail-send appends to a report when it gives up
// after queuelifetime.
const expiredText = "I'm not going to try again; this message has been in the queue too long."

// remoteSaid starts the remote server's reply in qmail-remote's reports.
const remoteSaid = "Remote host said: "

// qmailStatus matches the "(#5.1.1)" qmail's programs put in their texts.
var qmailStatus = regexp.MustCompile(`\(#([245]\.[0-9]{1,3}\.[0-9]{1,3})\)`)

// enhancedStatus matches an RFC 2034 enhanced status code at the start of
// the text of an SMTP reply line.
var enhancedStatus = regexp.MustCompile(`^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[ \t]|$)`)

// status picks the RFC 3463 status of a failure report: the last "(#x.y.z)"
// in it (qmail's own classification); else the enhanced code of the
// remote server's reply, when its class agrees with the reply code; else
// 4.4.7 when qmail-send gave up because the message was too old; else
// 5.0.0.
func status(text string) string {
	if m := qmailStatus.FindAllStringSubmatch(text, -1); m != nil {
		return m[len(m)-1][1]
	}
	if reply := remoteReply(text); len(reply) > 0 && len(reply[0]) > 4 {
		if m := enhancedStatus.FindStringSubmatch(reply[0][4:]); m != nil && m[1][0] == reply[0][0] {
			return m[1]
		}
	}
	if strings.Contains(text, expiredText) {
		return statusExpired
	}
	return statusPermanent
}

// remoteReply returns the lines of the remote server's reply quoted in a
// qmail-remote report: the rest of the line after the last "Remote host
// said: ", and the lines after it that start with a three-digit code.
func remoteReply(text string) []string {
	i := strings.LastIndex(text, remoteSaid)
	if i < 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(text[i+len(remoteSaid):], "\n"), "\n")
	n := 1
	for n < len(lines) && isReplyLine(lines[n]) {
		n++
	}
	return lines[:n]
}

func isReplyLine(s string) bool {
	return len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && (len(s) == 3 || s[3] == ' ' || s[3] == '-')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// diagnostic is the Diagnostic-Code field (RFC 3464 2.3.6): the remote
// server's reply when the report quotes one, else the whole report. Lines
// are joined by spaces; the header writer folds the result.
func diagnostic(text string) string {
	if reply := remoteReply(text); reply != nil {
		return "smtp; " + fieldText(strings.Join(reply, " "))
	}
	return "x-qmail; " + fieldText(strings.Join(strings.Split(strings.TrimSuffix(text, "\n"), "\n"), " "))
}

// fieldText makes s safe as a delivery-status field value, which must be
// US-ASCII without control characters: any other byte becomes '?'.
func fieldText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\t' {
			b[i] = ' '
		} else if c < 32 || c > 126 {
			b[i] = '?'
		}
	}
	return strings.TrimSpace(string(b))
}

// deliveryStatus writes the message/delivery-status body (RFC 3464 2.1):
// the per-message fields, then one group per recipient, the groups
// separated by empty lines.
func (p *Params) deliveryStatus(w io.Writer) error {
	var b bytes.Buffer
	var msg fields
	msg.add("Reporting-MTA", "dns; "+fieldText(p.BounceHost)) // RFC 3464 2.2.2
	if !p.Arrival.IsZero() {
		msg.add("Arrival-Date", maildate.Format(p.Arrival)) // RFC 3464 2.2.5
	}
	if err := textproto.WriteHeader(&b, msg.header()); err != nil {
		return err
	}
	for _, f := range p.Failures {
		text := normalize(f.Text)
		var rcpt fields
		rcpt.add("Final-Recipient", "rfc822; "+fieldText(f.Recipient)) // RFC 3464 2.3.2
		rcpt.add("Action", "failed")                                   // RFC 3464 2.3.3
		rcpt.add("Status", status(text))                               // RFC 3464 2.3.4
		rcpt.add("Diagnostic-Code", diagnostic(text))                  // RFC 3464 2.3.6
		if err := textproto.WriteHeader(&b, rcpt.header()); err != nil {
			return err
		}
	}
	// Each group came with the empty line that ends a header; the last
	// one is not needed before the boundary.
	_, err := w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\r\n")))
	return err
}

// fields collects header fields in the order they are to be written.
type fields [][2]string

func (fs *fields) add(k, v string) { *fs = append(*fs, [2]string{k, v}) }

// header turns fs into a go-message header. That header writes its
// fields last-added first, so they go in reversed. A name the header
// would re-case (Message-Id for Message-ID) goes in raw, unfolded: those
// fields are short.
func (fs fields) header() textproto.Header {
	var h textproto.Header
	for i := len(fs) - 1; i >= 0; i-- {
		k, v := fs[i][0], fs[i][1]
		if stdtextproto.CanonicalMIMEHeaderKey(k) == k {
			h.Add(k, v)
		} else {
			h.AddRaw([]byte(k + ": " + v + "\r\n"))
		}
	}
	return h
}
