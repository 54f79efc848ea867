package inject

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// prepare runs the header half of an injection on in: the rewritten
// header and the envelope, or the error.
func prepare(in *injection, input []byte) (head []byte, sender string, rcpts []string, err error) {
	raw, err := readHeader(bufio.NewReader(bytes.NewReader(input)))
	if err != nil {
		return nil, "", nil, err
	}
	h, err := in.rewriteHeader(raw)
	if err != nil {
		return nil, "", nil, err
	}
	sender, err = in.sender(h)
	return h.out.Bytes(), sender, dedupe(h.rcpts), err
}

// FuzzHeader feeds arbitrary headers to the reader and rewriter: they
// must never panic, must write whole LF-terminated fields, and a header
// they wrote must come through a second time unchanged.
func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		"To: joe, \"Smith, Ann\" <ann@box>, (c) bob (Bob)\nCc: grp: a, b@c;\n\nbody\n",
		"Return-Path: <@r1,@r2:x@y>\r\nResent-To: a\r\nFrom: \"x\\\"y\" <z@[1.2.3.4]>\r\n\r\n",
		"From joe Mon Jan 1\nTo: a\n b\n\tc\n\n",
		"To: <>, <@x:>, a@, a@., a@+, \"\"@x, x@[]\n\n",
		"To: \"unterminated\nFrom: (comment\n\n",
		"no header here\n",
	} {
		f.Add([]byte(s))
	}
	cfg := Config{
		DefaultHost: "mail", DefaultDomain: "example.com", PlusDomain: "example.net", IDHost: "id.example.com",
		User: "u", Name: "N", SenderUser: "u", Now: testNow, Pid: 1,
	}
	newInjection := func() *injection {
		return &injection{opts: Options{Mode: HeaderOnly}, cfg: cfg, rw: newRewriter(cfg.DefaultHost, cfg.DefaultDomain, cfg.PlusDomain)}
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > 1<<16 {
			return
		}
		head, sender, rcpts, err := prepare(newInjection(), input)
		if err != nil {
			return
		}
		if len(head) == 0 || head[len(head)-1] != '\n' {
			t.Fatalf("header does not end with LF: %q", head)
		}
		if bytes.Contains(head, []byte("\n\n")) {
			t.Fatalf("blank line inside the header: %q", head)
		}
		for _, line := range strings.SplitAfter(string(head), "\n") {
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			if _, _, ok := fieldName([]byte(line)); !ok {
				t.Fatalf("not a field: %q in %q", line, head)
			}
		}
		for _, a := range append(rcpts, sender) {
			if strings.ContainsAny(a, "\r\n") {
				t.Fatalf("line break in envelope address %q", a)
			}
		}
		// The header written is complete: a second pass changes nothing.
		head2, _, _, err := prepare(newInjection(), append(head, '\n'))
		if err != nil {
			t.Fatalf("second pass: %v\n%q", err, head)
		}
		if !bytes.Equal(head, head2) {
			t.Fatalf("second pass differs:\n%q\n%q", head, head2)
		}
	})
}
