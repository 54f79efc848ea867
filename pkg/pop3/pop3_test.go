package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/testutil"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, verb, arg string
	}{
		{"USER joe", "USER", "joe"},
		{"user   joe", "USER", "joe"},
		{"pass pass word 1", "PASS", "pass word 1"},
		{"PASS  trailing ", "PASS", "trailing "},
		{"QUIT", "QUIT", ""},
		{"", "", ""},
		{" USER joe", "", "USER joe"},
		{"apop joe@example.test 0123", "APOP", "joe@example.test 0123"},
		{"u\u017fer joe", "U\u017fER", "joe"}, // a long s is not an S
		{"\x92", "\x92", ""},
	} {
		verb, arg := ParseCommand([]byte(tc.line))
		if verb != tc.verb || string(arg) != tc.arg {
			t.Errorf("ParseCommand(%q) = %q, %q; want %q, %q", tc.line, verb, arg, tc.verb, tc.arg)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		n    int64
		rest string
	}{
		{"1", 1, ""},
		{"12 5", 12, " 5"},
		{"0", 0, ""},
		{"x", -1, "x"},
		{"", -1, ""},
		{"-1", -1, "-1"},
		{"99999999999999999999999", 1 << 31, ""},
		{"7abc", 7, "abc"},
	} {
		n, rest := ParseNumber([]byte(tc.arg))
		if n != tc.n || string(rest) != tc.rest {
			t.Errorf("ParseNumber(%q) = %d, %q; want %d, %q", tc.arg, n, rest, tc.n, tc.rest)
		}
	}
}

func TestReader(t *testing.T) {
	in := "USER joe\r\nPASS x\nNOOP\r\r\n" + strings.Repeat("y", MaxLine+10) + "\r\nQUIT\r\npartial"
	for _, chunk := range []int{1, 3, 0} {
		r := NewReader(strings.NewReader(in), chunk)
		var got []string
		for {
			line, err := r.ReadLine()
			if errors.Is(err, ErrLineTooLong) {
				got = append(got, "<too long>")
				continue
			}
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				break
			}
			got = append(got, string(line))
		}
		want := []string{"USER joe", "PASS x", "NOOP\r", "<too long>", "QUIT"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("chunk %d: lines %q, want %q", chunk, got, want)
		}
	}
}

// TestReaderByteWise: with chunk 1 the Reader never reads past the line
// it returns, so what follows stays in the input for another reader.
func TestReaderByteWise(t *testing.T) {
	src := strings.NewReader("PASS secret\r\nSTAT\r\nLIST\r\n")
	r := NewReader(src, 1)
	line, err := r.ReadLine()
	if err != nil || string(line) != "PASS secret" {
		t.Fatalf("%q, %v", line, err)
	}
	if len(r.Buffered()) != 0 {
		t.Errorf("buffered %q", r.Buffered())
	}
	rest, _ := io.ReadAll(src)
	if string(rest) != "STAT\r\nLIST\r\n" {
		t.Errorf("left in the input: %q", rest)
	}
	// Buffered and Discard with a larger chunk.
	r = NewReader(strings.NewReader("STLS\r\nUSER evil\r\n"), 0)
	if line, _ := r.ReadLine(); string(line) != "STLS" {
		t.Fatalf("%q", line)
	}
	if string(r.Buffered()) != "USER evil\r\n" || r.Discard() != 11 || len(r.Buffered()) != 0 {
		t.Error("Buffered/Discard")
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Errorf("after Discard: %v, want EOF", err)
	}
	// A read error comes after the lines already read.
	r = NewReader(iotest.TimeoutReader(strings.NewReader("A\r\nB\r\n")), 0)
	if l, err := r.ReadLine(); string(l) != "A" || err != nil {
		t.Errorf("%q %v", l, err)
	}
	if l, err := r.ReadLine(); string(l) != "B" || err != nil {
		t.Errorf("%q %v", l, err)
	}
	if _, err := r.ReadLine(); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("got %v, want the timeout", err)
	}
}

func sendMessage(t testing.TB, msg string, lines int64, bufSize int) string {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := WriteMessage(w, strings.NewReader(msg), make([]byte, bufSize), lines); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return out.String()
}

func TestWriteMessage(t *testing.T) {
	msg := "Subject: x\n.hidden: h\n\nbody\n.\n..two\nlast\r\nno end"
	for _, tc := range []struct {
		lines int64
		want  string
	}{
		{-1, "Subject: x\r\n..hidden: h\r\n\r\nbody\r\n..\r\n...two\r\nlast\r\nno end\r\n.\r\n"},
		{0, "Subject: x\r\n..hidden: h\r\n\r\n.\r\n"},
		{2, "Subject: x\r\n..hidden: h\r\n\r\nbody\r\n..\r\n.\r\n"},
		{100, "Subject: x\r\n..hidden: h\r\n\r\nbody\r\n..\r\n...two\r\nlast\r\nno end\r\n.\r\n"},
	} {
		for _, bs := range []int{1, 2, 7, 4096} {
			if got := sendMessage(t, msg, tc.lines, bs); got != tc.want {
				t.Errorf("lines %d buffer %d:\n got %q\nwant %q", tc.lines, bs, got, tc.want)
			}
		}
	}
	// CRLF-stored header ends at "\r\n\r\n" for TOP; an empty message
	// is just the terminator.
	if got := sendMessage(t, "A: b\r\n\r\nbody\r\nmore\r\n", 1, 3); got != "A: b\r\n\r\nbody\r\n.\r\n" {
		t.Errorf("CRLF message, TOP 1: %q", got)
	}
	if got := sendMessage(t, "", -1, 16); got != ".\r\n" {
		t.Errorf("empty message: %q", got)
	}
	if got := sendMessage(t, "\n", -1, 16); got != "\r\n.\r\n" {
		t.Errorf("one empty line: %q", got)
	}
}

// unstuff reverses WriteMessage's byte-stuffing and drops the terminator,
// as a client does (RFC 1939 3).
func unstuff(t testing.TB, sent string) string {
	t.Helper()
	if !strings.HasSuffix(sent, "\r\n.\r\n") && sent != ".\r\n" {
		t.Fatalf("response %q does not end in CRLF . CRLF", sent)
	}
	body := strings.TrimSuffix(sent, ".\r\n")
	var out strings.Builder
	for _, line := range strings.SplitAfter(body, "\r\n") {
		if strings.HasPrefix(line, ".") {
			if !strings.HasPrefix(line, "..") {
				t.Fatalf("unstuffed line %q inside %q", line, sent)
			}
			line = line[1:]
		}
		out.WriteString(line)
	}
	return out.String()
}

// FuzzWriteMessage checks WriteMessage against the RFC's rules on any
// stored message and read size: the client gets back the message with
// bare LFs made CRLF (and a CRLF after an unterminated last line); no
// line but the last is a lone "."; and MessageSize is exactly what the
// client gets.
func FuzzWriteMessage(f *testing.F) {
	f.Add([]byte("Subject: x\n\n.body\nend"), 3)
	f.Add([]byte("\r\n.\r\n"), 1)
	f.Add([]byte(".\n"), 1)
	f.Add([]byte("a\r\r\n\rb"), 2)
	f.Fuzz(func(t *testing.T, msg []byte, bufSize int) {
		if bufSize <= 0 || bufSize > 1<<16 {
			bufSize = 4096
		}
		sent := sendMessage(t, string(msg), -1, bufSize)
		got := unstuff(t, sent)
		var m strings.Builder
		for i, c := range msg {
			if c == '\n' && (i == 0 || msg[i-1] != '\r') {
				m.WriteByte('\r')
			}
			m.WriteByte(c)
		}
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			m.WriteString("\r\n")
		}
		want := m.String()
		if got != want {
			t.Fatalf("message %q: client gets %q, want %q", msg, got, want)
		}
		lines := strings.Split(strings.TrimSuffix(sent, "\r\n"), "\r\n")
		for i, l := range lines[:len(lines)-1] {
			if l == "." {
				t.Fatalf("message %q: line %d of the response ends it early: %q", msg, i, sent)
			}
		}
		size, err := MessageSize(bytes.NewReader(msg), make([]byte, bufSize))
		if err != nil || size != int64(len(got)) {
			t.Fatalf("message %q: MessageSize = %d, %v; the client gets %d", msg, size, err, len(got))
		}
	})
}

// FuzzReader feeds arbitrary input to the line reader: every line it
// returns is at most MaxLine long and holds no LF, and the lines and
// refused long lines account for the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte("USER joe\r\nPASS x\r\n"), 1)
	f.Add(bytes.Repeat([]byte("a"), 3000), 7)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		r := NewReader(bytes.NewReader(in), chunk)
		lines := 0
		for {
			line, err := r.ReadLine()
			if errors.Is(err, ErrLineTooLong) {
				lines++
				continue
			}
			if err != nil {
				break
			}
			lines++
			if len(line) > MaxLine || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %q", line)
			}
			verb, arg := ParseCommand(line)
			if strings.Contains(verb, " ") || len(verb)+len(arg) > len(line) || !bytes.EqualFold([]byte(verb), line[:len(verb)]) {
				t.Fatalf("ParseCommand(%q) = %q, %q", line, verb, arg)
			}
		}
		if want := bytes.Count(in, []byte("\n")); lines != want {
			t.Fatalf("%d lines (and refusals) from input with %d LFs", lines, want)
		}
	})
}

func TestPeerIP(t *testing.T) {
	f, _ := testutil.TCPPair(t, "tcp4")
	if ip := PeerIP(int(f.Fd())); ip != "127.0.0.1" {
		t.Errorf("PeerIP of a loopback connection = %q", ip)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if ip := PeerIP(int(r.Fd())); ip != "" {
		t.Errorf("PeerIP of a pipe = %q", ip)
	}
}

// TestSignalLogin: one byte on the pipe $POP3GRANTFD names; SignalLogin
// returns only once the reader has closed its end, or after
// loginAckWait; then the descriptor is closed and the variable gone;
// nothing is written to a descriptor that is not a pipe.
func TestSignalLogin(t *testing.T) {
	signal := func(t *testing.T) (r *os.File, done chan struct{}) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(w.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		t.Setenv(GrantEnv, strconv.Itoa(fd))
		done = make(chan struct{})
		go func() { SignalLogin(); close(done) }()
		return r, done
	}

	r, done := signal(t)
	b := make([]byte, 2)
	if n, err := r.Read(b); n != 1 || b[0] != 1 {
		t.Errorf("read %q, %v from the login pipe, want one byte", b[:n], err)
	}
	select {
	case <-done:
		t.Fatal("SignalLogin returned before the reader closed the pipe")
	case <-time.After(100 * time.Millisecond):
	}
	r.Close()
	select {
	case <-done:
	case <-time.After(4 * time.Second):
		t.Fatal("SignalLogin still waits after the reader closed the pipe")
	}
	if _, ok := os.LookupEnv(GrantEnv); ok {
		t.Errorf("%s still set", GrantEnv)
	}

	// A reader that never closes holds it up for loginAckWait only, and
	// then its end is closed.
	defer func(d time.Duration) { loginAckWait = d }(loginAckWait)
	loginAckWait = 50 * time.Millisecond
	r, done = signal(t)
	defer r.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("SignalLogin waits past loginAckWait")
	}
	if got, _ := io.ReadAll(r); string(got) != "\x01" { // EOF: the only writer was closed
		t.Errorf("read %q from the login pipe, want one byte", got)
	}

	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv(GrantEnv, strconv.Itoa(int(f.Fd())))
	SignalLogin()
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Error("SignalLogin wrote into a regular file")
	}
	for _, v := range []string{"", "x", "1", "-4"} {
		t.Setenv(GrantEnv, v)
		SignalLogin() // nothing to check but that it does not write to stdout or panic
	}
}
