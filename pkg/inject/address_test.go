package inject

import (
	"testing"
)

func testRewriter() rewriter {
	return newRewriter("mail", "example.com", "example.net")
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want string // kinds and texts
		err  bool
	}{
		{in: `joe@example.com`, want: `a(joe) @ a(example) . a(com)`},
		{in: `"Joe \"J\" Smith" <joe@x>`, want: `q(Joe "J" Smith) < a(joe) @ a(x) >`},
		{in: "(a (nested) comment) joe", want: `c(a (nested) comment) a(joe)`},
		{in: "joe@[192.0.2.1]", want: `a(joe) @ l(192.0.2.1)`},
		{in: "\"folded\n quoted\"", want: `q(folded quoted)`},
		{in: `a\@b`, want: `a(a@b)`},
		{in: "grp: a, b;", want: `a(grp) : a(a) , a(b) ;`},
		{in: `"unterminated`, err: true},
		{in: `(unterminated`, err: true},
		{in: `[unterminated`, err: true},
		{in: `stray)`, err: true},
		{in: `stray]`, err: true},
		{in: `trailing\`, err: true},
	}
	for _, tc := range tests {
		toks, err := tokenize(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("tokenize(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if got := showTokens(toks); got != tc.want {
			t.Errorf("tokenize(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func showTokens(toks []token) string {
	s := ""
	for i, t := range toks {
		if i > 0 {
			s += " "
		}
		switch t.kind {
		case tAtom:
			s += "a(" + t.text + ")"
		case tQuoted:
			s += "q(" + t.text + ")"
		case tLiteral:
			s += "l(" + t.text + ")"
		case tComment:
			s += "c(" + t.text + ")"
		case tSpecial:
			s += string(t.ch)
		}
	}
	return s
}

func TestRewrite(t *testing.T) {
	rw := testRewriter()
	tests := []struct{ in, want string }{
		{"joe", "joe@mail.example.com"},                      // no host: @defaulthost, then .defaultdomain
		{"joe@box", "joe@box.example.com"},                   // no dot: .defaultdomain
		{"joe@box.example.org", "joe@box.example.org"},       // complete
		{"joe@box+", "joe@box.example.net"},                  // trailing +: .plusdomain
		{"joe@+", "joe@example.net"},                         // just +: plusdomain
		{"joe@box.", "joe@box.example.com"},                  // trailing dot dropped, then no dot
		{"joe@", "joe@mail.example.com"},                     // trailing @ dropped
		{"joe@.", "joe@mail.example.com"},                    // both
		{"@relay1,@relay2:joe@x.org", "joe@x.org"},           // source route dropped
		{"joe@[192.0.2.1]", "joe@[192.0.2.1]"},               // literal: no domain added
		{"joe@[]", "joe@[]"},                                 // left alone, as in qmail
		{`"joe smith"@x.org`, `"joe smith"@x.org`},           // quoted local part kept
		{`"joe smith"`, `"joe smith"@mail.example.com`},      // and completed
		{"a@b@c", "a@b@c.example.com"},                       // the host is after the last @
		{"joe.smith", "joe.smith@mail.example.com"},          // dots in the local part are not a host
		{"d\u00e9j\u00e0@x", "d\u00e9j\u00e0@x.example.com"}, // 8-bit atoms pass
	}
	for _, tc := range tests {
		toks, err := tokenize(tc.in)
		if err != nil {
			t.Fatalf("tokenize(%q): %v", tc.in, err)
		}
		var addr []token
		for _, tk := range toks {
			if tk.kind != tComment {
				addr = append(addr, tk)
			}
		}
		got, _ := rw.rewrite(addr)
		if r := render(got); r != tc.want {
			t.Errorf("rewrite(%q) = %q, want %q", tc.in, r, tc.want)
		}
	}
	if got, changed := rw.rewrite(nil); got != nil || changed {
		t.Errorf("rewrite(<>) = %v, %v; want <> unchanged", got, changed)
	}
	// A defaulthost ending in + takes plusdomain (qmail-inject(8)).
	plus := newRewriter("box+", "example.com", "example.net")
	toks, _ := tokenize("joe")
	if got, _ := plus.rewrite(toks); render(got) != "joe@box.example.net" {
		t.Errorf("defaulthost box+: %q", render(got))
	}
}

func TestArgAddress(t *testing.T) {
	rw := testRewriter()
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "joe", want: "joe@mail.example.com"},
		{in: "joe@example.org", want: "joe@example.org"},
		{in: "<joe@example.org>", want: "joe@example.org"},
		{in: "", want: ""},
		{in: "<>", want: ""},
		{in: "joe smith@example.org", want: "joe smith@example.org"}, // local part taken literally
		{in: "a@b@example.org", want: "a@b@example.org"},
		{in: "joe@box", want: "joe@box.example.com"},
		{in: "joe@box+", want: "joe@box.example.net"},
		{in: "joe@[192.0.2.1]", want: "joe@[192.0.2.1]"},
		{in: "joe@ex(ample.org", err: true},
		{in: "joe@exa<mple.org", err: true},
		{in: "joe\n@example.org", err: true},
	}
	for _, tc := range tests {
		toks, err := argAddress(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("argAddress(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		got, _ := rw.rewrite(toks)
		if s := unquote(got); s != tc.want {
			t.Errorf("argAddress(%q) = %q, want %q", tc.in, s, tc.want)
		}
	}
}

func TestQuoteAddress(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"joe@example.org":    "joe@example.org",
		"joe smith@x.org":    `"joe smith"@x.org`,
		`a"b@x.org`:          `"a\"b"@x.org`,
		"joe-@x.org-@[]":     `"joe-@x.org-"@[]`, // as qmail's quote2
		".joe@x.org":         `".joe"@x.org`,
		"first.last@x.org":   "first.last@x.org",
		"first..last@x.org":  `"first..last"@x.org`,
		"noat":               "noat",
		"@example.org":       `""@example.org`,
		"#@[]":               "#@[]",
		"user+tag@x.example": "user+tag@x.example",
	} {
		if got := quoteAddress(in); got != want {
			t.Errorf("quoteAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
