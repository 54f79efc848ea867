package send

import (
	"fmt"
	"io"
	"strings"
)

// logger writes qmail-send's log lines (reference §2.8): one per event,
// no timestamp (multilog adds one), free text through safe.
type logger struct{ w io.Writer }

func (l logger) printf(format string, args ...any) {
	fmt.Fprintf(l.w, format+"\n", args...)
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
