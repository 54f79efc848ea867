package dotqmail

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

const dt = "Delivered-To: joe@example.com\n"

func TestLooping(t *testing.T) {
	t.Parallel()
	long := "X-Long: " + strings.Repeat("y", 100000) + "\n"
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"first line", dt + "Subject: hi\n\nbody\n", true},
		{"later line", "Received: x\nDelivered-To: other@example.com\n" + dt + "\nbody\n", true},
		{"absent", "Delivered-To: other@example.com\nSubject: hi\n\nbody\n", false},
		{"in the body only", "Subject: hi\n\n" + dt, false},
		{"empty message", "", false},
		{"header without body", "Subject: hi\n" + dt, true},
		{"last line without newline", "Subject: hi\n" + strings.TrimSuffix(dt, "\n"), false},
		{"case differs", "delivered-to: joe@example.com\n", false},
		{"trailing space", "Delivered-To: joe@example.com \n", false},
		{"CRLF line is not identical", strings.TrimSuffix(dt, "\n") + "\r\n", false},
		{"a CRLF empty line does not end the header", "Subject: hi\r\n\r\n" + dt, true},
		{"a space-only line does not end the header", "Subject: hi\n \n" + dt, true},
		{"longer line with the same start", strings.TrimSuffix(dt, "\n") + "x\n", false},
		{"after a very long line", long + dt, true},
		{"very long line holding the text", "X: " + strings.Repeat("z", 10000) + dt, false},
		{"after many very long lines", strings.Repeat(long, 5) + dt + "\n", true},
		// Lines that fill the 4096-byte buffer exactly: what is left of
		// them is not a line of its own.
		{"long line whose rest is a newline", strings.Repeat("x", 4096) + "\n" + dt, true},
		{"long line whose rest is the Delivered-To line", strings.Repeat("x", 4096) + dt, false},
		{"very long body line", "Subject: x\n\n" + long + dt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range []io.Reader{strings.NewReader(tt.header), iotest.OneByteReader(strings.NewReader(tt.header))} {
				got, err := Looping(r, dt)
				if err != nil || got != tt.want {
					t.Fatalf("got %v, %v; want %v", got, err, tt.want)
				}
			}
		})
	}
}

func TestLoopingErrorText(t *testing.T) {
	t.Parallel()
	if ErrLooping.Error() != "This message is looping: it already has my Delivered-To line. (#5.4.6)" || ErrLooping.Temporary() || ErrLooping.ExitCode() != 100 {
		t.Errorf("ErrLooping = %q, temporary %v, exit %d", ErrLooping.Error(), ErrLooping.Temporary(), ErrLooping.ExitCode())
	}
	r := io.MultiReader(strings.NewReader("Subject: x\n"), iotest.ErrReader(syscall.EIO))
	_, err := Looping(r, dt)
	var e *Error
	if !errors.As(err, &e) || e.Error() != "Unable to read message: input/output error. (#4.3.0)" || !e.Temporary() {
		t.Errorf("read error: %v", err)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("%v does not wrap EIO", err)
	}
}

// endless is a reader of one repeated pattern that counts what it gave.
type endless struct {
	pattern string
	n       int64
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[(e.n+int64(i))%int64(len(e.pattern))]
	}
	e.n += int64(len(p))
	return len(p), nil
}

// TestLoopingBounded feeds endless headers: Looping must stop after
// MaxHeader bytes, whether the lines are short or one never ends.
func TestLoopingBounded(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{"X: y\n", "x"} {
		r := &endless{pattern: pattern}
		got, err := Looping(r, dt)
		if got || err != nil {
			t.Errorf("%q: got %v, %v; want false, nil", pattern, got, err)
		}
		if r.n < MaxHeader || r.n > MaxHeader+2*4096 {
			t.Errorf("%q: read %d bytes, want just over MaxHeader (%d)", pattern, r.n, MaxHeader)
		}
	}
	// A Delivered-To line past the cap is not seen; just before, it is.
	before := strings.Repeat("X: y\n", 100)
	if got, _ := looping(strings.NewReader(before+dt), dt, 64, int64(len(before))); got {
		t.Error("a line starting at the cap was read")
	}
	if got, _ := looping(strings.NewReader(before+dt), dt, 64, int64(len(before)+1)); !got {
		t.Error("a line starting just before the cap was not read")
	}
}

func TestLoopingLongDTLine(t *testing.T) {
	t.Parallel()
	// A Delivered-To line longer than the usual buffer still matches.
	d := DTLine(strings.Repeat("j", 10000), "example.com")
	got, err := Looping(strings.NewReader("Subject: x\n"+d+"\n"), d)
	if err != nil || !got {
		t.Errorf("got %v, %v; want true", got, err)
	}
}
