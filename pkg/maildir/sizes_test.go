package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// crlfModel is the plain definition of Dovecot's virtual size: each LF
// not preceded by CR counts two.
func crlfModel(b []byte) int64 {
	n := int64(len(b))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	return n
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		in       string
		crlf     int64
		endsInLF bool
	}{
		{"", 0, false},
		{"\n", 2, true},
		{"a\nb\n", 6, true},
		{"a\r\nb\r\n", 6, true},
		{"a\rb", 3, false},
		{"\r\n\n\r\r\n", 7, true},
		{"no newline", 10, false},
	} {
		// Every way of cutting the input into two writes must agree,
		// a CR at the end of one write and its LF at the start of the
		// next included.
		for cut := 0; cut <= len(tc.in); cut++ {
			var c Counter
			c.Write([]byte(tc.in[:cut]))
			c.Write([]byte(tc.in[cut:]))
			if c.Size() != int64(len(tc.in)) || c.CRLFSize() != tc.crlf || c.EndsInLF() != tc.endsInLF {
				t.Errorf("%q cut at %d: size %d crlf %d endsInLF %v; want %d %d %v",
					tc.in, cut, c.Size(), c.CRLFSize(), c.EndsInLF(), len(tc.in), tc.crlf, tc.endsInLF)
			}
		}
	}
}

func FuzzCounter(f *testing.F) {
	f.Add([]byte("a\r\nb\n"), 2)
	f.Add([]byte("\r"), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var c Counter
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		c.Write(b[:cut])
		c.Write(b[cut:])
		if c.CRLFSize() != crlfModel(b) || c.Size() != int64(len(b)) {
			t.Fatalf("%q: crlf %d size %d, want %d %d", b, c.CRLFSize(), c.Size(), crlfModel(b), len(b))
		}
		if c.EndsInLF() != (len(b) > 0 && b[len(b)-1] == '\n') {
			t.Fatalf("%q: EndsInLF %v", b, c.EndsInLF())
		}
	})
}

func TestNameSizes(t *testing.T) {
	for _, tc := range []struct {
		unique string
		s, w   int64
	}{
		{"1700000000.M1P2Q3.host", -1, -1},
		{"1700000000.M1P2Q3.host,S=120,W=124", 120, 124},
		{"1700000000.M1P2Q3.host,W=124,S=120", 120, 124},
		{"1700000000.M1P2Q3.host,S=120", 120, -1},
		{"1700000000.M1P2Q3.host,S=12x,W=-1", -1, -1},
		{"1700000000.M1P2Q3.host,S=,W=99999999999999999999", -1, -1},
		{"1700000000.M1P2Q3.host,X=1,S=5", 5, -1},
	} {
		s, w := NameSizes(tc.unique)
		if s != tc.s || w != tc.w {
			t.Errorf("NameSizes(%q) = %d, %d; want %d, %d", tc.unique, s, w, tc.s, tc.w)
		}
	}
}

// TestDeliverSizesInName: what Deliver puts in the name is the file's
// size and its CRLF size, for messages with and without CRs; W= is left
// out when the last line has no LF.
func TestDeliverSizesInName(t *testing.T) {
	dir := newMaildir(t)
	prefix := []byte("Return-Path: <>\n")
	for _, body := range []string{
		"",
		"Subject: a\n\nbody\n",
		"Subject: b\r\n\r\nbody\r\nmixed\n",
		strings.Repeat("0123456789\r", 10000) + "\n",
		"no final newline",
	} {
		d, err := Deliver(dir, strings.NewReader(body), prefix)
		if err != nil {
			t.Fatal(err)
		}
		content, err := os.ReadFile(filepath.Join(dir, d.Name))
		if err != nil {
			t.Fatal(err)
		}
		unique, _ := SplitName(filepath.Base(d.Name))
		s, w := NameSizes(unique)
		wantW := crlfModel(content)
		if !bytes.HasSuffix(content, []byte("\n")) {
			wantW = -1
		}
		if s != int64(len(content)) || w != wantW {
			t.Errorf("body %.20q: name %s gives S=%d W=%d, want %d %d", body, d.Name, s, w, len(content), wantW)
		}
		if !strings.HasSuffix(d.Name, ",S="+strconv.Itoa(len(content))+map[bool]string{true: ",W=" + strconv.FormatInt(wantW, 10), false: ""}[wantW >= 0]) {
			t.Errorf("name %s", d.Name)
		}
	}
	// The tmp file is gone and Scan reads the names back.
	checkEmpty(t, dir, "tmp")
	msgs, err := Scan(dir)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("Scan: %d messages, %v", len(msgs), err)
	}
}
