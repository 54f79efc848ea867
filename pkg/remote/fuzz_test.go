package remote

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzReadReply feeds arbitrary peer output to the reply parser: it must
// not panic, must keep within its limits, and a reply it accepts must
// be well formed.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 ok\r\n",
		"250-a\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
		"220\r\n",
		"550 bad\x00text\r\n",
		"250-a\r\n251 b\r\n",
		"2x0 no\r\n",
		"250-unterminated",
		"421 bare lf\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 64)
		for {
			r, err := readReply(br)
			if err != nil {
				return
			}
			if r.Code < 0 || r.Code > 999 {
				t.Fatalf("code %d", r.Code)
			}
			if len(r.Text) > maxReplyText+1 || strings.ContainsAny(r.Text, "\r\x00") || !strings.HasSuffix(r.Text, "\n") && len(r.Text) < maxReplyText {
				t.Fatalf("text %q", r.Text)
			}
			if len(r.Lines) == 0 || len(r.Lines) > maxReplyLines {
				t.Fatalf("%d lines", len(r.Lines))
			}
		}
	})
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, text string
		code     int
		lines    []string
		bad      bool
	}{
		{in: "250 ok\r\n", code: 250, text: "250 ok\n", lines: []string{"ok"}},
		{in: "250-a\r\n250-PIPELINING\r\n250 SIZE 100\r\n", code: 250, text: "250-a\n250-PIPELINING\n250 SIZE 100\n", lines: []string{"a", "PIPELINING", "SIZE 100"}},
		{in: "220\r\n", code: 220, text: "220\n", lines: []string{""}},
		{in: "550 a\x00b\r\n", code: 550, text: "550 a?b\n", lines: []string{"a\x00b"}},
		{in: "250-a\r\n251 b\r\n", bad: true},
		{in: "2x0 no\r\n", bad: true},
		{in: "250+x\r\n", bad: true},
		{in: "250-a\r\n", bad: true},
	}
	for _, tc := range tests {
		r, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if tc.bad {
			continue
		}
		if r.Code != tc.code || r.Text != tc.text || strings.Join(r.Lines, "|") != strings.Join(tc.lines, "|") {
			t.Errorf("%q: got %+v", tc.in, r)
		}
	}
	long := "250 " + strings.Repeat("x", 10000) + "\r\n250 next\r\n"
	br := bufio.NewReaderSize(strings.NewReader(long), 16)
	r, err := readReply(br)
	if err != nil || r.Code != 250 || !strings.HasPrefix(r.Text, "250 xxx") || len(r.Text) > maxReplyText {
		t.Errorf("long line: %d bytes, %v", len(r.Text), err)
	}
	if r, err := readReply(br); err != nil || r.Text != "250 next\n" {
		t.Errorf("after long line: %+v %v", r, err)
	}
}
