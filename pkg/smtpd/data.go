package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MaxLine is the longest text line RFC 5321 allows in a message, without
// its CRLF (1000 octets with it).
const MaxLine = 998

// maxHops is qmail's loop limit: a message that already carries this many
// Received or Delivered-To header lines is refused.
const maxHops = 100

// errBareLF means the client ended a line with LF alone. qmail answers
// that with its 451 smtplf reply and drops the connection: a bare LF is
// never taken as a line end, so no "\n.\n" can end DATA early (SMTP
// smuggling).
var errBareLF = errors.New("bare LF in DATA")

// dataResult is what reading one DATA stream found.
type dataResult struct {
	size     int64 // bytes stored (LF line ends, dots unstuffed)
	tooBig   bool  // more than the limit: nothing after the limit was written
	longLine bool  // a line longer than MaxLine
	hops     int   // Received and Delivered-To header lines
}

// readData copies the DATA stream from r to w the way qmail-smtpd stores
// it, until the CRLF "." CRLF that ends it: CRLF becomes LF, a CR not
// followed by LF is kept, a leading dot is removed from each line. It
// stops writing once more than limit bytes would be stored (limit <= 0:
// no limit) but reads on to the end, so the client hears the refusal and
// the session goes on. Write errors are remembered, not returned: the
// caller learns of them from the queue program's exit status, after the
// client has sent everything.
func readData(r *bufio.Reader, w io.Writer, limit int64) (dataResult, error) {
	var (
		res      dataResult
		start    = true // at the start of a line
		header   = true // still in the header
		lineLen  int    // octets of the current line so far
		carryCR  bool   // the previous chunk ended in a CR held back
		out      = w    // nil once writing stopped
		nl       = []byte{'\n'}
		cr       = []byte{'\r'}
		hopWords = [...][]byte{[]byte("received"), []byte("delivered")}
	)
	store := func(p []byte) {
		if out == nil || len(p) == 0 {
			return
		}
		if limit > 0 && res.size+int64(len(p)) > limit {
			res.tooBig, out = true, nil
			return
		}
		res.size += int64(len(p))
		if _, err := out.Write(p); err != nil {
			out = nil
		}
	}
	for {
		chunk, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return res, err
		}
		complete := err == nil // chunk ends in LF
		if start {
			if complete && bytes.Equal(chunk, []byte(".\r\n")) {
				return res, nil
			}
			if header {
				for _, word := range hopWords {
					if len(chunk) >= len(word) && bytes.EqualFold(chunk[:len(word)], word) {
						res.hops++
					}
				}
			}
			if len(chunk) > 0 && chunk[0] == '.' {
				chunk = chunk[1:]
			}
		}
		if !complete {
			// Part of a long line. A CR at its end may pair with an LF
			// in the next chunk, so it is held back until then.
			if carryCR {
				store(cr)
				lineLen++
			}
			carryCR = len(chunk) > 0 && chunk[len(chunk)-1] == '\r'
			if carryCR {
				chunk = chunk[:len(chunk)-1]
			}
			lineLen += len(chunk)
			if lineLen > MaxLine {
				res.longLine = true
			}
			store(chunk)
			start = false
			continue
		}
		// chunk ends in LF: it must be CRLF, possibly split from a CR
		// held back at the end of the previous chunk.
		body := chunk[:len(chunk)-1]
		switch {
		case len(body) > 0 && body[len(body)-1] == '\r':
			if carryCR {
				store(cr)
				lineLen++
			}
			body = body[:len(body)-1]
		case len(body) == 0 && carryCR:
		default:
			return res, errBareLF
		}
		carryCR = false
		lineLen += len(body)
		if lineLen > MaxLine {
			res.longLine = true
		}
		if header && lineLen == 0 {
			header = false
		}
		store(body)
		store(nl)
		start, lineLen = true, 0
	}
}
