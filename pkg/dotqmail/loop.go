package dotqmail

import (
	"bufio"
	"errors"
	"io"
)

// Looping reports whether the message's header, read from r up to its
// first empty line, has a line byte-identical to dtline (DTLine, with
// its '\n'): qmail-local's loop detection. The caller then fails with
// ErrLooping.
//
// As in qmail, a last line without '\n' is not compared, and only a line
// that is exactly "\n" ends the header. Memory stays bounded whatever
// the input: lines longer than dtline are skipped without being kept,
// and reading stops after MaxHeader bytes (the message then counts as
// not looping; see MaxHeader). A read error is temporary.
func Looping(r io.Reader, dtline string) (bool, error) {
	return looping(r, dtline, max(4096, len(dtline)+1), MaxHeader)
}

// looping is Looping with its buffer size (at least len(dtline)+1) and
// header cap as parameters, for tests.
func looping(r io.Reader, dtline string, bufSize int, maxHeader int64) (bool, error) {
	br := bufio.NewReaderSize(r, bufSize)
	var n int64
	for n < maxHeader {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		long := false
		for errors.Is(err, bufio.ErrBufferFull) && n < maxHeader {
			long = true // longer than dtline: drain it
			line, err = br.ReadSlice('\n')
			n += int64(len(line))
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return false, nil // over MaxHeader
		case err == io.EOF:
			return false, nil
		case err != nil:
			return false, &Error{text: "Unable to read message: " + SysText(err) + ". (#4.3.0)", err: err}
		case long:
			continue
		case len(line) <= 1:
			return false, nil // end of the header
		case string(line) == dtline:
			return true, nil
		}
	}
	return false, nil
}
