package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the code produces")

// original is a message as qmail-queue stores it.
const original = `Received: (qmail 4242 invoked by uid 1000); 14 Nov 2023 19:26:40 -0000
From: Alice <alice@example.org>
To: bob@example.net, carol@example.com
Subject: lunch?
Message-ID: <1699990000.4242@example.org>

Shall we?
`

// doubleOriginal is a bounce as queued, to be double-bounced.
const doubleOriginal = `Received: (qmail 99 invoked for bounce); 14 Nov 2023 19:26:40 -0000
Date: 14 Nov 2023 19:26:40 -0000
From: MAILER-DAEMON@mx.example.com
To: nobody@example.net
Subject: failure notice

Hi. This is the qmail-send program at mx.example.com.
`

func params(sender, orig string, failures ...Failure) Params {
	return Params{
		Sender:       sender,
		Failures:     failures,
		BounceHost:   "mx.example.com",
		Date:         time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC),
		Arrival:      time.Date(2023, 11, 14, 19, 26, 40, 0, time.UTC),
		Original:     strings.NewReader(orig),
		OriginalSize: int64(len(orig)),
		MessageID:    "<1700000000.0123456789abcdef.qmail-send@mx.example.com>",
		Boundary:     "qmail-bounce-boundary-0",
	}
}

// part is what a test expects of one part of a parsed bounce.
type part struct {
	contentType string
	contains    []string
}

// rcptStatus is what a test expects of one per-recipient group.
type rcptStatus struct {
	final, status, diagnostic string
}

func TestBuildGolden(t *testing.T) {
	bigBody := strings.Repeat("All work and no play makes Jack a dull boy.\n", 3000)
	for _, tc := range []struct {
		name     string
		p        Params
		env      Envelope
		parts    [3]part
		statuses []rcptStatus
	}{
		{
			name: "single",
			p: params("alice@example.org", original,
				Failure{"bob@example.net", "Sorry, no mailbox here by that name. (#5.1.1)\n"}),
			env: Envelope{Sender: "", Recipient: "alice@example.org", Kind: Single},
			parts: [3]part{
				{"text/plain", []string{"I'm afraid I wasn't able", "<bob@example.net>:\n", "--- Below this line is a copy of the message.\n"}},
				{"message/delivery-status", nil},
				{"message/rfc822", []string{"Return-Path: <alice@example.org>\n" + original}},
			},
			statuses: []rcptStatus{{"rfc822; bob@example.net", "5.1.1", "x-qmail; Sorry, no mailbox here by that name. (#5.1.1)"}},
		},
		{
			name: "double",
			p: params("", doubleOriginal,
				Failure{"alice@example.org", "192.0.2.9 does not like recipient.\nRemote host said: 550 5.1.1 <alice@example.org>: Recipient address rejected\nGiving up on 192.0.2.9.\n"}),
			env: Envelope{Sender: "#@[]", Recipient: "postmaster@mx.example.com", Kind: Double},
			parts: [3]part{
				{"text/plain", []string{"but the bounce bounced!\n\n<alice@example.org>:", "--- Below this line is the original bounce.\n"}},
				{"message/delivery-status", nil},
				{"message/rfc822", []string{"Return-Path: <>\n" + doubleOriginal}},
			},
			statuses: []rcptStatus{{"rfc822; alice@example.org", "5.1.1", "smtp; 550 5.1.1 <alice@example.org>: Recipient address rejected"}},
		},
		{
			name: "overcap",
			p: params("owner-@lists.example.org-@[]", original+bigBody,
				Failure{"bob@example.net", "Sorry, no mailbox here by that name. (#5.1.1)\n"}),
			env: Envelope{Sender: "", Recipient: "owner-@lists.example.org", Kind: Single},
			parts: [3]part{
				{"text/plain", []string{fmt.Sprintf("--- Below this line is the header of the message (it is %d bytes, too large to return in full).\n", len(original+bigBody))}},
				{"message/delivery-status", nil},
				{"text/rfc822-headers", []string{"Return-Path: <owner-@lists.example.org>\nReceived:", "Message-ID: <1699990000.4242@example.org>\n"}},
			},
			statuses: []rcptStatus{{"rfc822; bob@example.net", "5.1.1", "x-qmail; Sorry, no mailbox here by that name. (#5.1.1)"}},
		},
		{
			name: "multi",
			p: params("alice@example.org", original,
				Failure{"bob@example.net", "192.0.2.7 does not like recipient.\nRemote host said: 550-5.1.1 The email account that you tried to reach does not exist. Please try\n550-5.1.1 double-checking the recipient's email address for typos or\n550 5.1.1 unnecessary spaces.\nGiving up on 192.0.2.7.\n"},
				Failure{"carol@example.com", "Connected to 192.0.2.8 but sender was rejected.\nRemote host said: 553 sorry, your envelope sender is in my badmailfrom list\n"},
				Failure{"dave@example.com", "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\nI'm not going to try again; this message has been in the queue too long.\n"},
				Failure{"erin@example.com", "I'm not going to try again; this message has been in the queue too long.\n"},
				Failure{"frank@example.com", "first paragraph\n\nsecond paragraph\n"},
				Failure{"grüße@example.de", "Remote host said: 550 Benutzer unbekannt\n"}),
			env: Envelope{Sender: "", Recipient: "alice@example.org", Kind: Single},
			parts: [3]part{
				{"text/plain", []string{"<frank@example.com>:\nfirst paragraph\n/second paragraph\n\n", "<grüße@example.de>:"}},
				{"message/delivery-status", nil},
				{"message/rfc822", []string{"Return-Path: <alice@example.org>\n" + original}},
			},
			statuses: []rcptStatus{
				{"rfc822; bob@example.net", "5.1.1", "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550 5.1.1 unnecessary spaces."},
				{"rfc822; carol@example.com", "5.0.0", "smtp; 553 sorry, your envelope sender is in my badmailfrom list"},
				{"rfc822; dave@example.com", "4.4.1", "x-qmail; Sorry, I wasn't able to establish an SMTP connection. (#4.4.1) I'm not going to try again; this message has been in the queue too long."},
				{"rfc822; erin@example.com", "4.4.7", "x-qmail; I'm not going to try again; this message has been in the queue too long."},
				{"rfc822; frank@example.com", "5.0.0", "x-qmail; first paragraph /second paragraph"},
				{"rfc822; gr????e@example.de", "5.0.0", "smtp; 550 Benutzer unbekannt"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			env, err := Build(&out, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if env != tc.env {
				t.Errorf("envelope %+v, want %+v", env, tc.env)
			}
			golden(t, tc.name, out.Bytes())
			checkStructure(t, out.Bytes(), tc.parts, tc.statuses)
		})
	}
}

// golden compares got with testdata/name.golden, or rewrites that file
// under -update. On a mismatch it leaves testdata/name.got to diff.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	gotPath := filepath.Join("testdata", name+".got")
	if !bytes.Equal(got, want) {
		os.WriteFile(gotPath, got, 0o644)
		t.Errorf("output differs from %s; see %s", path, gotPath)
		return
	}
	os.Remove(gotPath)
}

// checkStructure parses a bounce back with go-message and checks it is a
// multipart/report of the three expected parts, with one delivery-status
// group per failure.
func checkStructure(t *testing.T, raw []byte, parts [3]part, statuses []rcptStatus) {
	t.Helper()
	if bytes.Contains(raw, []byte("\r")) {
		t.Error("bounce holds a CR: the queue wants LF line ends")
	}
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, mp, _ := m.Header.ContentType()
	if mt != "multipart/report" || mp["report-type"] != "delivery-status" {
		t.Errorf("Content-Type %s %v, want multipart/report; report-type=delivery-status", mt, mp)
	}
	for _, k := range []string{"Date", "From", "To", "Subject", "Message-Id", "Mime-Version"} {
		if m.Header.Get(k) == "" {
			t.Errorf("no %s field", k)
		}
	}
	if s := m.Header.Get("Subject"); s != "failure notice" {
		t.Errorf("Subject %q", s)
	}
	mr := m.MultipartReader()
	if mr == nil {
		t.Fatal("not multipart")
	}
	for i, want := range parts {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		ct, _, _ := p.Header.ContentType()
		if ct != want.contentType {
			t.Errorf("part %d: Content-Type %s, want %s", i+1, ct, want.contentType)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		for _, s := range want.contains {
			if !bytes.Contains(body, []byte(s)) {
				t.Errorf("part %d lacks %q:\n%s", i+1, s, body)
			}
		}
		if i == 1 {
			checkStatus(t, body, statuses)
		}
		if i == 2 && want.contentType == "message/rfc822" && !bytes.HasPrefix(body, []byte("Return-Path: <")) {
			t.Errorf("part 3 does not start with Return-Path:\n%s", body)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after 3 parts: %v, want EOF", err)
	}
}

func checkStatus(t *testing.T, body []byte, want []rcptStatus) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	msg, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("per-message fields: %v", err)
	}
	if got := msg.Get("Reporting-Mta"); got != "dns; mx.example.com" {
		t.Errorf("Reporting-MTA %q", got)
	}
	if got := msg.Get("Arrival-Date"); got != "14 Nov 2023 19:26:40 -0000" {
		t.Errorf("Arrival-Date %q", got)
	}
	for i, w := range want {
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("recipient %d: %v", i+1, err)
		}
		got := rcptStatus{h.Get("Final-Recipient"), h.Get("Status"), h.Get("Diagnostic-Code")}
		if got != w {
			t.Errorf("recipient %d:\n got %q\nwant %q", i+1, got, w)
		}
		if a := h.Get("Action"); a != "failed" {
			t.Errorf("recipient %d: Action %q", i+1, a)
		}
	}
	if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("more delivery-status groups than failures: %q", rest)
	}
}

func TestTripleBounce(t *testing.T) {
	var out bytes.Buffer
	p := params("#@[]", original, Failure{"postmaster@mx.example.com", "no\n"})
	env, err := Build(&out, p)
	if !errors.Is(err, ErrTripleBounce) {
		t.Errorf("error %v, want ErrTripleBounce", err)
	}
	if out.Len() != 0 || env != (Envelope{}) {
		t.Errorf("wrote %d bytes and envelope %+v for a discarded bounce", out.Len(), env)
	}
}

func TestEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, sender, dbTo, dbHost string
		want                       Envelope
		err                        error
	}{
		{"single", "alice@example.org", "", "", Envelope{"", "alice@example.org", Single}, nil},
		{"verp", "owner-@lists.example.org-@[]", "", "", Envelope{"", "owner-@lists.example.org", Single}, nil},
		{"double defaults", "", "", "", Envelope{"#@[]", "postmaster@mx.example.com", Double}, nil},
		{"double controls", "", "bounces", "admin.example.com", Envelope{"#@[]", "bounces@admin.example.com", Double}, nil},
		{"bare verp mark", "-@[]", "", "", Envelope{"#@[]", "postmaster@mx.example.com", Double}, nil},
		{"triple", "#@[]", "", "", Envelope{}, ErrTripleBounce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Sender: tc.sender, BounceHost: "mx.example.com", DoubleBounceTo: tc.dbTo, DoubleBounceHost: tc.dbHost}
			got, err := p.Envelope()
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("Envelope() = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"Sorry, no mailbox here by that name. (#5.1.1)\n", "5.1.1"},
		{"a (#4.4.1)\nb (#5.4.6)\n", "5.4.6"},
		{"Remote host said: 550 5.7.1 spam\n", "5.7.1"},
		{"Remote host said: 550-5.2.2 full\n550 5.2.2 full\n", "5.2.2"},
		{"Remote host said: 550 4.2.2 class disagrees\n", "5.0.0"},
		{"Remote host said: 550 5.1.1x not a code\n", "5.0.0"},
		{"Remote host said: 452 4.2.2 over quota\n" + expiredText + "\n", "4.2.2"},
		{expiredText + "\n", "4.4.7"},
		{"", "5.0.0"},
	} {
		if got := status(tc.text); got != tc.want {
			t.Errorf("status(%q) = %s, want %s", tc.text, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"a.b+c@example.org", "a.b+c@example.org"},
		{"john smith@example.org", `"john smith"@example.org`},
		{`a"b@example.org`, `"a\"b"@example.org`},
		{".a@example.org", `".a"@example.org`},
		{"a..b@example.org", `"a..b"@example.org`},
		{"@example.org", `""@example.org`},
		{"a@b@example.org", `"a@b"@example.org`},
		{"postmaster", "postmaster"},
		{"", ""},
	} {
		if got := quoteAddress(tc.in); got != tc.want {
			t.Errorf("quoteAddress(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestNoCap checks a negative MaxOriginal returns any size whole, and that
// the original is streamed: the reader refuses reads of more than 64 KiB.
func TestNoCap(t *testing.T) {
	body := strings.Repeat("x", 1000) + "\n"
	orig := original + strings.Repeat(body, 5000) // ~5 MB
	p := params("alice@example.org", orig, Failure{"bob@example.net", "no\n"})
	p.Original = smallReads{strings.NewReader(orig)}
	p.MaxOriginal = -1
	var out bytes.Buffer
	if _, err := Build(&out, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("Return-Path: <alice@example.org>\n"+orig+"\n--")) {
		t.Error("original not returned whole")
	}
}

type smallReads struct{ r io.ReaderAt }

func (s smallReads) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > 64<<10 {
		return 0, fmt.Errorf("read of %d bytes: the original is not streamed", len(p))
	}
	return s.r.ReadAt(p, off)
}

func TestShortOriginal(t *testing.T) {
	p := params("alice@example.org", original, Failure{"bob@example.net", "no\n"})
	p.OriginalSize += 10 // the file is shorter than said
	if _, err := Build(io.Discard, p); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want ErrUnexpectedEOF", err)
	}
}

func TestEightBit(t *testing.T) {
	orig := "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\n\nGrüße\n"
	p := params("alice@example.org", orig, Failure{"bob@example.net", "no\n"})
	var out bytes.Buffer
	if _, err := Build(&out, p); err != nil {
		t.Fatal(err)
	}
	want := "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nReturn-Path: <alice@example.org>\n" + orig
	if !bytes.Contains(out.Bytes(), []byte(want)) {
		t.Errorf("8-bit original not labelled 8bit:\n%s", out.Bytes())
	}
}

func TestScanHeader(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		want  int64
	}{
		{"A: 1\nB: 2\n\nbody\n", 100, 10},
		{"A: 1\r\nB: 2\r\n\r\nbody\r\n", 100, 12},
		{"\nbody\n", 100, 0},
		{"A: 1\nB: 22222222\n\nbody\n", 8, 5}, // cut at the limit, after a whole line
		{"AAAAAAAAAAAA", 8, 0},
	} {
		r := io.NewSectionReader(strings.NewReader(tc.in), 0, min(tc.limit, int64(len(tc.in))))
		n, _, err := scanHeader(r)
		if err != nil || n != tc.want {
			t.Errorf("scanHeader(%q, %d) = %d, %v; want %d", tc.in, tc.limit, n, err, tc.want)
		}
	}
}

func TestLFWriter(t *testing.T) {
	var out bytes.Buffer
	lf := &lfWriter{w: &out}
	for _, s := range []string{"a\r\nb\r", "\nc\r", "d\r\n", "\r"} {
		lf.Write([]byte(s))
	}
	lf.flush()
	if got, want := out.String(), "a\nb\nc\rd\n\r"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzBuild builds bounces from arbitrary reports and originals: Build
// must not fail or panic, and go-message must read the result as three
// parts.
func FuzzBuild(f *testing.F) {
	f.Add("bob@example.net", "Remote host said: 550 5.1.1 no\n", "Subject: x\n\nbody\n", int64(0))
	f.Add("", "", "", int64(-1))
	f.Add("a\nb", "\n\n\x00\xff", "no header at all", int64(5))
	f.Fuzz(func(t *testing.T, rcpt, text, orig string, limit int64) {
		p := params("alice@example.org", orig, Failure{rcpt, text})
		p.Boundary = "" // random, as in production: the original cannot guess it
		p.MaxOriginal = limit
		var out bytes.Buffer
		if _, err := Build(&out, p); err != nil {
			t.Fatal(err)
		}
		m, err := message.Read(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		mr := m.MultipartReader()
		for i := range 3 {
			if _, err := mr.NextPart(); err != nil {
				t.Fatalf("part %d: %v\n%q", i+1, err, out.Bytes())
			}
		}
	})
}
