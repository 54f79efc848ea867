package dotqmail

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzParse feeds arbitrary .qmail files, modes and default deliveries
// to Parse. It must not panic; a failure must be one of Parse's
// temporary errors; and every instruction must be one its line could
// have given. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("./Maildir/\n"), uint16(0o644), "./Mailbox")
	f.Fuzz(func(t *testing.T, content []byte, mode uint16, def string) {
		ins, err := Parse(content, fs.FileMode(mode)&fs.ModePerm, def)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !e.Temporary() || e.ExitCode() != 111 {
				t.Fatalf("error %v is not a temporary *Error", err)
			}
			if ins != nil {
				t.Fatalf("instructions %q with error %v", ins, err)
			}
			return
		}
		src := content
		if len(src) == 0 {
			src = []byte(def)
		}
		if lines := bytes.Count(src, []byte("\n")) + 1; len(ins) > lines {
			t.Fatalf("%d instructions from %d lines", len(ins), lines)
		}
		for _, in := range ins {
			if strings.ContainsAny(in.Arg, "\n\x00") || strings.HasSuffix(in.Arg, " ") || strings.HasSuffix(in.Arg, "\t") {
				t.Fatalf("%q: bad argument", in)
			}
			switch in.Kind {
			case Maildir, Mbox:
				if in.Arg[0] != '.' && in.Arg[0] != '/' || (in.Kind == Maildir) != strings.HasSuffix(in.Arg, "/") {
					t.Fatalf("%q: not a file line", in)
				}
			case Program:
				if !bytes.Contains(src, []byte("|"+in.Arg)) {
					t.Fatalf("%q: no such line", in)
				}
			case Forward:
				if !bytes.Contains(src, []byte(in.Arg)) {
					t.Fatalf("%q: no such line", in)
				}
			default:
				t.Fatalf("%q: unknown kind", in)
			}
		}
	})
}

// loopingModel is qmail's bouncexf over an in-memory header.
func loopingModel(h []byte, dtline string) bool {
	for {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			return false
		}
		line := h[:i+1]
		h = h[i+1:]
		if len(line) <= 1 {
			return false
		}
		if string(line) == dtline {
			return true
		}
	}
}

// FuzzLooping compares Looping with a plain in-memory model of qmail's
// loop check, with the smallest buffer allowed when small is set (so
// that long lines take the draining path) and with one-byte reads.
// Seeds are in testdata/fuzz/FuzzLooping.
func FuzzLooping(f *testing.F) {
	f.Add([]byte("Subject: x\nDelivered-To: a@b\n\nbody\n"), "a", false)
	f.Fuzz(func(t *testing.T, header []byte, local string, small bool) {
		dtline := DTLine(local, "b")
		want := loopingModel(header, dtline)
		size := max(4096, len(dtline)+1)
		if small {
			size = len(dtline) + 1
		}
		got, err := looping(bytes.NewReader(header), dtline, size, MaxHeader)
		if err != nil || got != want {
			t.Fatalf("looping = %v, %v; model says %v", got, err, want)
		}
		got, err = looping(iotest.OneByteReader(bytes.NewReader(header)), dtline, size, MaxHeader)
		if err != nil || got != want {
			t.Fatalf("one byte at a time: %v, %v; model says %v", got, err, want)
		}
	})
}
