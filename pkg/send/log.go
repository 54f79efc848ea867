package send

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// logger writes qmail-send's log lines (reference §2.8): one per event,
// no timestamp (multilog adds one), free text through safe. With buffer
// set, lines wait for flush, which the loop calls before it waits: the
// five or so lines of a message then cost the logger one write and one
// wake-up, not five.
type logger struct {
	w   io.Writer
	buf *bufio.Writer
}

func (l logger) printf(format string, args ...any) {
	if l.buf == nil {
		fmt.Fprintf(l.w, format+"\n", args...)
		return
	}
	// A line goes out whole: the log pipe may be shared with other
	// programs' stderr, and a write split mid-line could interleave.
	line := fmt.Appendf(nil, format+"\n", args...)
	if len(line) > l.buf.Available() {
		l.buf.Flush()
	}
	l.buf.Write(line)
}

// flush writes the lines buffered so far.
func (l logger) flush() {
	if l.buf != nil {
		l.buf.Flush()
	}
}

// safe is qmail-send's filter for free text in log lines: newline becomes
// '/', and bytes below 33, above 126 and '%' become '_'. A trailing
// newline is dropped first, as qmail's reports end with one.
func safe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			b.WriteByte('/')
		case c < 33 || c > 126 || c == '%':
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
