package pop3

import (
	"bufio"
	"bytes"
	"io"

	"github.com/quail-mta/quail/pkg/maildir"
)

// Terminator ends a multi-line response (RFC 1939 3).
const Terminator = ".\r\n"

// WriteMessage sends the stored message read from r as the body of a
// multi-line response, the terminating ".\r\n" included:
//
//   - every LF not preceded by CR is sent as CRLF (Maildir messages are
//     stored with LF line ends; a stored CRLF is sent as it is, not as
//     qmail-pop3d's CR CR LF);
//   - a line starting with "." gets one more (RFC 1939 3, byte-stuffing);
//   - a last line without LF gets a CRLF, so that the terminator is a line
//     of its own;
//   - nothing else is added: unlike qmail-pop3d, no empty line before the
//     terminator, so the client gets the message as stored.
//
// With bodyLines >= 0 (TOP) only the header, the empty line that ends it
// and the first bodyLines lines of the body are sent. A line consisting
// of CR alone ends the header too. buf is the read buffer (any size); the
// message is never held whole.
func WriteMessage(w *bufio.Writer, r io.Reader, buf []byte, bodyLines int64) error {
	var (
		atStart   = true // the next byte starts a line
		last      byte   // last byte of the current line so far
		lineLen   int    // bytes of the current line so far
		inHeader  = true
		bodyCount int64
	)
	for {
		n, rerr := r.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			if atStart {
				if !inHeader && bodyLines >= 0 {
					if bodyCount == bodyLines {
						return finish(w, atStart)
					}
					bodyCount++
				}
				if p[0] == '.' {
					w.WriteByte('.')
				}
				atStart = false
			}
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				w.Write(p)
				lineLen += len(p)
				last = p[len(p)-1]
				break
			}
			w.Write(p[:i])
			if i > 0 {
				lineLen += i
				last = p[i-1]
			}
			if lineLen > 0 && last == '\r' {
				w.WriteByte('\n')
				lineLen--
			} else {
				w.Write(crlf)
			}
			if lineLen == 0 {
				inHeader = false
			}
			atStart, lineLen, last = true, 0, 0
			p = p[i+1:]
		}
		if rerr == io.EOF {
			return finish(w, atStart)
		}
		if rerr != nil {
			return rerr
		}
	}
}

var crlf = []byte{'\r', '\n'}

func finish(w *bufio.Writer, atStart bool) error {
	if !atStart {
		w.Write(crlf)
	}
	_, err := w.WriteString(Terminator)
	return err
}

// MessageSize reads a stored message and returns the octets WriteMessage
// sends for it, less the byte-stuffing and the terminator: the size RFC
// 1939 asks LIST and STAT to give.
func MessageSize(r io.Reader, buf []byte) (int64, error) {
	var c maildir.Counter
	if _, err := io.CopyBuffer(&c, onlyReader{r}, buf); err != nil {
		return 0, err
	}
	return SentSize(c.CRLFSize(), c.Size() > 0 && !c.EndsInLF()), nil
}

// SentSize is the size WriteMessage sends for a message of crlfSize
// octets with CRLF line ends (maildir.Counter.CRLFSize, a name's W=),
// which needs a CRLF added when its last line has no LF.
func SentSize(crlfSize int64, unterminated bool) int64 {
	if unterminated {
		return crlfSize + 2
	}
	return crlfSize
}

// onlyReader hides any WriteTo method, so that CopyBuffer uses buf.
type onlyReader struct{ io.Reader }
