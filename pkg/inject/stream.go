package inject

import (
	"bytes"
	"io"
)

// limitWriter counts what passes and refuses, with ErrTooBig, a write
// that would take the total over limit (0: no limit). Nothing of that
// write goes through.
type limitWriter struct {
	w        io.Writer
	n, limit int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.limit > 0 && l.n+int64(len(p)) > l.limit {
		return 0, ErrTooBig
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// crlfWriter turns CRLF line ends into LF as the message passes: the
// queue holds LF-terminated lines, and qmail-remote adds the CR itself.
// Every CR right before an LF goes (CR CR LF is a CRLF text converted
// twice); other CRs stay. CRs that end one write wait for the next to
// see what follows them; Flush writes those that end the input.
type crlfWriter struct {
	w   io.Writer
	crs int // CRs held back at the end of the last write
	buf []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	out := c.buf[:0]
	for _, b := range p {
		switch {
		case b == '\r':
			c.crs++
			continue
		case b != '\n':
			for ; c.crs > 0; c.crs-- {
				out = append(out, '\r')
			}
		}
		c.crs = 0
		out = append(out, b)
	}
	c.buf = out
	if len(out) > 0 {
		if _, err := c.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes the CRs held back at the end of the input.
func (c *crlfWriter) Flush() error {
	if c.crs == 0 {
		return nil
	}
	_, err := c.w.Write(bytes.Repeat([]byte{'\r'}, c.crs))
	c.crs = 0
	return err
}
