package inject

import (
	"mime"
	"strings"
	"testing"
)

// What qEncode writes, the standard library's decoder reads back.
func TestQEncode(t *testing.T) {
	dec := new(mime.WordDecoder)
	for _, s := range []string{"Jürgen Müller", "日本語の名前", "a b_c=d?e", strings.Repeat("é", 60), "plain*ascii+name/-!"} {
		got := qEncode(s)
		back, err := dec.DecodeHeader(got)
		if err != nil || back != s {
			t.Errorf("qEncode(%q) = %q, decodes to %q, %v", s, got, back, err)
		}
		for _, w := range strings.Fields(got) {
			if len(w) > 75 {
				t.Errorf("encoded word %q longer than 75", w)
			}
		}
	}
}
