package remote

import (
	"bufio"
	"io"
)

// Outbound DATA. The message goes out as RFC 5321 4.5.2 wants it, in two
// steps, in this order: first every line ending is made CRLF (a bare LF,
// a bare CR and CRLF all end one line), then a line that starts with "."
// gets another "." in front. Doing it in this order means that no bare CR
// or LF in a queued message can form "<LF>.<CR><LF>" or any other
// sequence a peer might take for the end of data (SMTP smuggling): the
// only end of data the peer sees is the final CRLF.CRLF we add.
//
// A last line without a line ending gets CRLF, where qmail-remote refused
// the whole message ("SMTP cannot transfer messages with partial final
// lines. (#5.6.2)").

// stuffer rewrites a message into its DATA form.
type stuffer struct {
	w         *bufio.Writer
	lineStart bool // the next byte begins a line
	cr        bool // a CR was seen and its line ending not yet written
	n         int64
	eightBit  bool
	err       error // first write error
}

func newStuffer(w io.Writer) *stuffer {
	return &stuffer{w: bufio.NewWriterSize(w, 32*1024), lineStart: true}
}

func (s *stuffer) Write(p []byte) (int, error) {
	for _, c := range p {
		if s.cr {
			s.cr = false
			s.put('\r')
			s.put('\n')
			s.lineStart = true
			if c == '\n' {
				continue
			}
		}
		switch {
		case c == '\r':
			s.cr = true
			continue
		case c == '\n':
			s.put('\r')
			s.put('\n')
			s.lineStart = true
			continue
		case c == '.' && s.lineStart:
			s.put('.') // RFC 5321 4.5.2: double a leading period
		case c >= 0x80:
			s.eightBit = true
		}
		s.put(c)
		s.lineStart = false
	}
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}

func (s *stuffer) put(c byte) {
	s.n++
	if err := s.w.WriteByte(c); err != nil && s.err == nil {
		s.err = err
	}
}

// Close ends the last line if needed and, when dot, writes the end of
// data; it flushes and returns the first write error.
func (s *stuffer) Close(dot bool) error {
	if s.cr {
		s.cr = false
		s.put('\r')
		s.put('\n')
		s.lineStart = true
	}
	if !s.lineStart {
		s.put('\r')
		s.put('\n')
		s.lineStart = true
	}
	if dot {
		_, _ = s.w.WriteString(".\r\n")
	}
	return s.w.Flush()
}

// measure returns the size of the message in its DATA form (without the
// final ".\r\n") and whether it holds 8-bit bytes, for SIZE= and BODY=.
func measure(msg io.ReaderAt, size int64) (wire int64, eightBit bool, err error) {
	s := newStuffer(io.Discard)
	if _, err := io.Copy(s, io.NewSectionReader(msg, 0, size)); err != nil {
		return 0, false, err
	}
	_ = s.Close(false)
	return s.n, s.eightBit, nil
}

// writeData streams msg to w in its DATA form, final dot included. An
// error reading msg comes back as a *readError.
func writeData(w io.Writer, msg io.ReaderAt, size int64) error {
	s := newStuffer(w)
	buf := make([]byte, 32*1024)
	if _, err := io.CopyBuffer(onlyWriter{s}, readErrReader{io.NewSectionReader(msg, 0, size)}, buf); err != nil {
		return err
	}
	return s.Close(true)
}

// readError is a failure to read the queued message, not the peer's.
type readError struct{ err error }

func (e *readError) Error() string { return "reading message: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

type readErrReader struct{ r io.Reader }

func (r readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses the buffer.
type onlyWriter struct{ io.Writer }
