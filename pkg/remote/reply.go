package remote

import (
	"bufio"
	"errors"
	"fmt"
)

// maxReplyText is how much of one reply is kept for the report, as
// qmail-remote keeps (HUGESMTPTEXT).
const maxReplyText = 5000

// maxReplyLines bounds a multi-line reply, so a peer cannot keep us
// reading one reply for ever (the timeout bounds each read, not the sum).
const maxReplyLines = 1000

// SMTP reply code thresholds (RFC 5321 4.2.1): the first digit says it.
const (
	codeGreeting    = 220 // RFC 5321 4.3.2: the only good greeting
	codeOK          = 250
	codeTempFailMin = 400
	codePermFailMin = 500
	codeTLSReady    = 220
)

// errBadReply is a reply line that does not start with three digits.
var errBadReply = errors.New("malformed SMTP reply")

// reply is one SMTP reply, possibly of several lines.
type reply struct {
	Code int
	// Text is every line of the reply as the peer sent it, code
	// included, CR removed, each line ended by "\n", NUL made "?",
	// cut at maxReplyText bytes: what qmail prints after
	// "Remote host said: ".
	Text string
	// Lines are the texts after "ddd-" / "ddd " of each line, for
	// reading EHLO keywords. Each is at most 512 bytes.
	Lines []string
}

// said is the "Remote host said: " line(s) of a report, or "".
func (r reply) said() string {
	if r.Text == "" {
		return ""
	}
	return "Remote host said: " + r.Text
}

// readReply reads one reply: lines "ddd-text" continue it, the line
// "ddd text" (or "ddd" alone) ends it (RFC 5321 4.2.1). Every line must
// carry the same code. A line longer than the buffer is read to its end
// and its tail dropped.
func readReply(br *bufio.Reader) (reply, error) {
	var r reply
	text := make([]byte, 0, 128)
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return r, fmt.Errorf("%w: more than %d lines", errBadReply, maxReplyLines)
		}
		line, err := readLine(br)
		if err != nil {
			return r, err
		}
		for _, c := range line {
			if len(text) >= maxReplyText {
				break
			}
			switch c {
			case '\r', '\n':
			case 0:
				text = append(text, '?')
			default:
				text = append(text, c)
			}
		}
		if len(text) < maxReplyText {
			text = append(text, '\n')
		}
		line = trimCR(line)
		if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return r, fmt.Errorf("%w: %q", errBadReply, truncate(line, 40))
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n == 0 {
			r.Code = code
		} else if code != r.Code {
			return r, fmt.Errorf("%w: code %d inside a %d reply", errBadReply, code, r.Code)
		}
		rest := ""
		if len(line) > 4 {
			rest = string(truncate(line[4:], 512))
		}
		r.Lines = append(r.Lines, rest)
		if len(line) == 3 || line[3] == ' ' {
			r.Text = string(text)
			return r, nil
		}
	}
}

// readLine reads up to and including LF; the part of an overlong line
// beyond the reader's buffer is read and dropped.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	keep := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	if err != nil {
		return nil, err
	}
	return append(keep, '\n'), nil
}

func trimCR(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
