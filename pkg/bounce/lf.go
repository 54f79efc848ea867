package bounce

import "io"

// lfWriter turns the CRLF line ends go-message writes into the LF ends of
// qmail's queue. A CR at the end of one write is held until the next
// shows whether an LF follows. In verbatim mode bytes pass unchanged: the
// original message is copied as it was queued.
type lfWriter struct {
	w        io.Writer
	verbatim bool
	cr       bool // a CR held back from the last write
	buf      []byte
}

func (l *lfWriter) Write(p []byte) (int, error) {
	if l.verbatim {
		return l.w.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	out := l.buf[:0]
	if l.cr {
		l.cr = false
		if p[0] != '\n' {
			out = append(out, '\r')
		}
	}
	for i, c := range p {
		if c == '\r' {
			if i == len(p)-1 {
				l.cr = true
				continue
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		out = append(out, c)
	}
	l.buf = out
	if _, err := l.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes a CR held back.
func (l *lfWriter) flush() error {
	if !l.cr {
		return nil
	}
	l.cr = false
	_, err := l.w.Write([]byte{'\r'})
	return err
}
