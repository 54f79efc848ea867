package bounce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Failure is one recipient that could not be delivered to, with the
// report its delivery program gave.
type Failure struct {
	Recipient string
	// Text is the report: lines ended by "\n". As read back by Parse it
	// is empty or ends with "\n", and holds no empty line (see Format).
	Text string
}

// Format returns the entry qmail-send appends to bounce/N for one
// permanent failure, byte for byte as qmail writes it:
//
//	"<" recipient ">:\n" text "\n"
//
// where a newline inside the recipient becomes "_", a text that does not
// end with a newline gets one, and every empty line inside the text
// disappears: the newline that would end it becomes "/", so the text
// "a\n\nb\n" is kept as "a\n/b\n". An entry therefore ends at its first
// empty line, which is what Parse relies on. The recipient is taken as
// given: qmail-send strips the virtualdomains prepend before calling this.
func Format(recipient, text string) []byte {
	text = normalize(text)
	b := make([]byte, 0, len(recipient)+len(text)+5)
	b = append(b, '<')
	for i := 0; i < len(recipient); i++ {
		c := recipient[i]
		if c == '\n' {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, ">:\n"...)
	b = append(b, text...)
	return append(b, '\n')
}

// normalize gives a report the shape it has in bounce/N: a final newline
// added, and the newline ending each empty line turned into "/". qmail
// walks back from the second-to-last byte, so the byte before each
// position is still unchanged when it is looked at (a run of empty lines
// becomes a run of slashes), and the text counts as preceded by the
// newline of the recipient line.
func normalize(text string) string {
	if text == "" {
		return ""
	}
	b := []byte(text)
	if b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' && (i == 0 || b[i-1] == '\n') {
			b[i] = '/'
		}
	}
	return string(b)
}

// Append writes one failure to w (bounce/N opened for appending) in
// qmail's format; see Format. The entry goes out in a single write, as
// qmail-send's does, so a crash leaves at worst the last entry cut short.
func Append(w io.Writer, recipient, text string) error {
	_, err := w.Write(Format(recipient, text))
	if err != nil {
		return fmt.Errorf("append to bounce file: %w", err)
	}
	return nil
}

// ErrMalformed means a bounce file holds bytes Parse cannot read as
// failure entries.
var ErrMalformed = errors.New("malformed bounce file")

// Parse reads the failure entries of a bounce/N file, as written by
// Append or by qmail-send. An entry is a line "<recipient>:", then the
// report's lines up to the first empty line; extra empty lines between
// entries are skipped. The last entry may lack its closing empty line or
// its final newline (bounce/N is not crash-proof: a crash can cut the
// last append short); it is returned as far as it goes.
//
// When some bytes cannot be read as entries Parse returns the entries
// before them and an error wrapping ErrMalformed; the entries returned
// are good, so a caller may still bounce them.
func Parse(data []byte) ([]Failure, error) {
	var out []Failure
	line := 1
	for len(data) > 0 {
		// Skip empty lines between entries.
		if data[0] == '\n' {
			data = data[1:]
			line++
			continue
		}
		head, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok || len(head) < 3 || head[0] != '<' || !bytes.HasSuffix(head, []byte(">:")) {
			return out, fmt.Errorf("%w: line %d does not start an entry with <recipient>:", ErrMalformed, line)
		}
		f := Failure{Recipient: string(head[1 : len(head)-2])}
		line++
		// The report runs to the first empty line.
		end := bytes.Index(rest, []byte("\n\n"))
		switch {
		case len(rest) > 0 && rest[0] == '\n':
			end = 0 // empty report: the entry is "<r>:\n\n"
		case end < 0:
			end = len(rest)
		default:
			end++ // keep the report's last newline
		}
		f.Text = string(rest[:end])
		line += strings.Count(f.Text, "\n")
		data = rest[end:]
		if f.Text != "" && !strings.HasSuffix(f.Text, "\n") {
			f.Text += "\n" // cut short at the end of the file
		}
		out = append(out, f)
	}
	return out, nil
}
