package maildir

import (
	"bytes"
	"strconv"
	"strings"
)

// Counter measures a message as it is written: its size and its size
// with every bare LF (one not preceded by CR) counted as CRLF, which is
// Dovecot's "virtual size" and what a POP3 server sends for it. Write
// never fails; a Counter is an io.Writer so it can sit beside the file in
// a copy.
type Counter struct {
	n, bareLF int64
	last      byte
}

func (c *Counter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	lf := bytes.Count(p, lfBytes)
	if lf > 0 {
		lf -= bytes.Count(p, crlfBytes)
		if p[0] == '\n' && c.last == '\r' {
			lf--
		}
	}
	c.bareLF += int64(lf)
	c.n += int64(len(p))
	c.last = p[len(p)-1]
	return len(p), nil
}

var (
	lfBytes   = []byte{'\n'}
	crlfBytes = []byte{'\r', '\n'}
)

// Size is the number of bytes written.
func (c *Counter) Size() int64 { return c.n }

// CRLFSize is the size with every bare LF counted as CRLF: Dovecot's W=.
func (c *Counter) CRLFSize() int64 { return c.n + c.bareLF }

// EndsInLF reports whether the last byte written was LF. It is false
// for an empty message.
func (c *Counter) EndsInLF() bool { return c.n > 0 && c.last == '\n' }

// NameSizes reads the sizes a deliverer put in a message's unique name,
// Dovecot's convention: ",S=BYTES" is the file's size and ",W=BYTES" its
// size with CRLF line ends, each after the first ',' of the unique part
// (SplitName). Either is -1 when the name does not carry it or carries
// something other than a decimal number.
func NameSizes(unique string) (size, crlfSize int64) {
	size, crlfSize = -1, -1
	i := strings.IndexByte(unique, ',')
	if i < 0 {
		return
	}
	for _, field := range strings.Split(unique[i+1:], ",") {
		if len(field) < 3 || field[1] != '=' {
			continue
		}
		n, ok := parseDecimal(field[2:])
		if !ok {
			continue
		}
		switch field[0] {
		case 'S':
			size = n
		case 'W':
			crlfSize = n
		}
	}
	return
}

// parseDecimal accepts digits only, no sign, and values that fit in an
// int64.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// sizeSuffix is what Deliver appends to the unique name of a message it
// measured with c: ",S=size", and ",W=crlfsize" when the message is empty
// or ends in LF. A message whose last line has no LF gets no W=: a POP3
// server must then add a CRLF of its own, which W= cannot express, so a
// reader counts that message itself.
func sizeSuffix(c *Counter) string {
	b := make([]byte, 0, 48)
	b = append(b, ",S="...)
	b = strconv.AppendInt(b, c.Size(), 10)
	if c.Size() == 0 || c.EndsInLF() {
		b = append(b, ",W="...)
		b = strconv.AppendInt(b, c.CRLFSize(), 10)
	}
	return string(b)
}
