package dotqmail

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var when = time.Date(2026, 1, 5, 9, 7, 3, 0, time.UTC) // a Monday

func TestEnv(t *testing.T) {
	t.Parallel()
	a := Args{
		User: "joe", Home: "/home/joe", Local: "joe-list-bob", Dash: "-", Ext: "list-bob",
		Host: "mail.example.com", Sender: "alice@example.org",
		NewSender: "joe-list-owner@mail.example.com", Default: "bob", HasDefault: true,
		Now: when.In(time.FixedZone("X", 5*3600)), // UFLINE is in UTC whatever the zone
	}
	want := []string{
		"SENDER=alice@example.org",
		"NEWSENDER=joe-list-owner@mail.example.com",
		"RECIPIENT=joe-list-bob@mail.example.com",
		"USER=joe",
		"HOME=/home/joe",
		"LOCAL=joe-list-bob",
		"HOST=mail.example.com",
		"HOST2=mail.example",
		"HOST3=mail",
		"HOST4=mail",
		"EXT=list-bob",
		"EXT2=bob",
		"EXT3=",
		"EXT4=",
		"DEFAULT=bob",
		"DTLINE=Delivered-To: joe-list-bob@mail.example.com\n",
		"RPLINE=Return-Path: <alice@example.org>\n",
		"UFLINE=From alice@example.org Mon Jan 05 09:07:03 2026\n",
	}
	if got := Env(a); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// envMap is Env as a map, failing on a name given twice.
func envMap(t *testing.T, a Args) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range Env(a) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("malformed %q", kv)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("%s set twice", k)
		}
		m[k] = v
	}
	return m
}

func TestEnvDefaultOnlyWhenSet(t *testing.T) {
	t.Parallel()
	if v, ok := envMap(t, Args{Default: "x"})["DEFAULT"]; ok {
		t.Errorf("DEFAULT=%q set without HasDefault", v)
	}
	if v, ok := envMap(t, Args{HasDefault: true})["DEFAULT"]; !ok || v != "" {
		t.Errorf("DEFAULT = %q, %v; want set and empty", v, ok)
	}
}

func TestEnvHostAndExt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, ext string
		want      []string // HOST2-4, EXT2-4
	}{
		{"a.b.c.d.e", "a-b-c-d", []string{"a.b.c.d", "a.b.c", "a.b", "b-c-d", "c-d", "d"}},
		{"localhost", "a", []string{"localhost", "localhost", "localhost", "", "", ""}},
		{"example.com", "a-", []string{"example", "example", "example", "", "", ""}},
		{".", "-a", []string{"", "", "", "a", "", ""}},
		{"a..b", "a--b", []string{"a.", "a", "a", "-b", "b", ""}},
		{"", "", []string{"", "", "", "", "", ""}},
	}
	for _, tt := range tests {
		m := envMap(t, Args{Host: tt.host, Ext: tt.ext})
		got := []string{m["HOST2"], m["HOST3"], m["HOST4"], m["EXT2"], m["EXT3"], m["EXT4"]}
		if !slices.Equal(got, tt.want) {
			t.Errorf("host %q ext %q: got %q, want %q", tt.host, tt.ext, got, tt.want)
		}
	}
}

func TestEnvTrickyAddresses(t *testing.T) {
	t.Parallel()
	m := envMap(t, Args{Local: "joe\nX-Evil: 1", Host: "exa\nmple.com", Sender: "", Now: when})
	check := func(name, want string) {
		t.Helper()
		if m[name] != want {
			t.Errorf("%s = %q, want %q", name, m[name], want)
		}
	}
	check("RECIPIENT", "joe\nX-Evil: 1@exa\nmple.com") // not cleaned
	check("LOCAL", "joe\nX-Evil: 1")
	check("DTLINE", "Delivered-To: joe_X-Evil: 1@exa_mple.com\n")
	check("SENDER", "")
	check("NEWSENDER", "")
	check("RPLINE", "Return-Path: <>\n")
	check("UFLINE", "From MAILER-DAEMON Mon Jan 05 09:07:03 2026\n")
}

func TestRPLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ sender, want string }{
		{"", "Return-Path: <>\n"},
		{"bob@example.org", "Return-Path: <bob@example.org>\n"},
		{"postmaster", "Return-Path: <postmaster>\n"},
		{"#@[]", "Return-Path: <#@[]>\n"},
		{"a.b+c=d/e!#$%&'*?^_`{|}~@x", "Return-Path: <a.b+c=d/e!#$%&'*?^_`{|}~@x>\n"},
		{"a b@x", "Return-Path: <\"a b\"@x>\n"},
		{"a\nb@x", "Return-Path: <\"a\\_b\"@x>\n"},
		{"a\rb@x", "Return-Path: <\"a\\\rb\"@x>\n"},
		{`a"b@x`, `Return-Path: <"a\"b"@x>` + "\n"},
		{`a\b@x`, `Return-Path: <"a\\b"@x>` + "\n"},
		{"@x", "Return-Path: <\"\"@x>\n"},
		{".a@x", "Return-Path: <\".a\"@x>\n"},
		{"a.@x", "Return-Path: <\"a.\"@x>\n"},
		{"a..b@x", "Return-Path: <\"a..b\"@x>\n"},
		{"a@b@x", "Return-Path: <\"a@b\"@x>\n"},
		{"a(b)@x", "Return-Path: <\"a(b)\"@x>\n"},
		{"a,b;c:d<e>f[g]h@x", "Return-Path: <\"a,b;c:d<e>f[g]h\"@x>\n"},
		{"\xc3\xa9@x", "Return-Path: <\"\xc3\xa9\"@x>\n"},
		{"a\x7f@x", "Return-Path: <\"a\x7f\"@x>\n"},
		{"bob@host with space\n", "Return-Path: <bob@host with space_>\n"}, // the domain is never quoted
		{"no at but space", "Return-Path: <\"no at but space\">\n"},
	}
	for _, tt := range tests {
		if got := RPLine(tt.sender); got != tt.want {
			t.Errorf("RPLine(%q) = %q, want %q", tt.sender, got, tt.want)
		}
	}
}

func TestUFLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sender string
		t      time.Time
		want   string
	}{
		{"bob@example.org", when, "From bob@example.org Mon Jan 05 09:07:03 2026\n"},
		{"", when, "From MAILER-DAEMON Mon Jan 05 09:07:03 2026\n"},
		{"a b\tc\nd@x", when, "From a-b-c-d@x Mon Jan 05 09:07:03 2026\n"},
		{"\xff\xfe@x", when, "From \xff\xfe@x Mon Jan 05 09:07:03 2026\n"}, // bytes kept as they are
		{"x", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), "From x Fri Dec 31 23:59:59 1999\n"},
		{"x", time.Date(2027, 2, 28, 0, 0, 0, 0, time.FixedZone("W", -3600)), "From x Sun Feb 28 01:00:00 2027\n"},
	}
	for _, tt := range tests {
		if got := UFLine(tt.sender, tt.t); got != tt.want {
			t.Errorf("UFLine(%q, %v) = %q, want %q", tt.sender, tt.t, got, tt.want)
		}
	}
}

func TestDTLine(t *testing.T) {
	t.Parallel()
	if got, want := DTLine("Joe-List", "Example.COM"), "Delivered-To: Joe-List@Example.COM\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := DTLine("a\n\nb", "c\n"), "Delivered-To: a__b@c_\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
