package pop3

import (
	"bytes"
	"errors"
	"io"
)

// ErrLineTooLong is returned by ReadLine for a line longer than MaxLine;
// the line has been read and thrown away up to its LF.
var ErrLineTooLong = errors.New("command line too long")

// Reader reads command lines. Unlike bufio.Reader it can be told to read
// at most a few bytes at a time: qmail-popup reads the plain connection
// one byte per read, so that when a login hands the connection's
// descriptor to qmail-pop3d, every command the client pipelined behind
// PASS is still in the socket for qmail-pop3d to read, and nothing sent
// after STLS is ever read as plain text.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int
	chunk      int
	err        error
}

// NewReader reads lines from r, asking for at most chunk bytes per read
// (0 or anything above MaxLine means MaxLine).
func NewReader(r io.Reader, chunk int) *Reader {
	if chunk <= 0 || chunk > MaxLine {
		chunk = MaxLine
	}
	return &Reader{r: r, buf: make([]byte, MaxLine), chunk: chunk}
}

// ReadLine returns the next line without its LF and without one CR
// before the LF (qmail accepts a bare LF as a line end; so does quail).
// The slice is valid until the next call. A final line without LF is not
// a command: at the end of the input ReadLine returns io.EOF.
func (r *Reader) ReadLine() ([]byte, error) {
	draining := false
	for {
		if i := bytes.IndexByte(r.buf[r.start:r.end], '\n'); i >= 0 {
			line := r.buf[r.start : r.start+i]
			r.start += i + 1
			if draining {
				return nil, ErrLineTooLong
			}
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if r.err != nil {
			return nil, r.err
		}
		if r.start > 0 {
			copy(r.buf, r.buf[r.start:r.end])
			r.end -= r.start
			r.start = 0
		}
		if r.end == len(r.buf) {
			// No LF in MaxLine bytes: drop them and read on to the LF.
			draining = true
			r.end = 0
		}
		n, err := r.r.Read(r.buf[r.end:min(len(r.buf), r.end+r.chunk)])
		r.end += n
		if err != nil {
			r.err = err // after the lines already read
		}
	}
}

// Buffered returns the bytes read from the input but not yet returned as
// lines. They stay in the Reader.
func (r *Reader) Buffered() []byte { return r.buf[r.start:r.end] }

// Discard drops the buffered bytes and returns how many there were.
func (r *Reader) Discard() int {
	n := r.end - r.start
	r.start, r.end = 0, 0
	return n
}
