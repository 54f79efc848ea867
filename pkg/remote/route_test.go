package remote

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/quail-mta/quail/pkg/control"
)

func TestParseRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want SMTPRoute
		bad  bool
	}{
		{line: "example.com:relay.example.net", want: SMTPRoute{"example.com", "relay.example.net", 25}},
		{line: "Example.COM:Relay.example.net:2525", want: SMTPRoute{"example.com", "relay.example.net", 2525}},
		{line: ".example.com:[192.0.2.7]", want: SMTPRoute{".example.com", "[192.0.2.7]", 25}},
		{line: ":192.0.2.7:587", want: SMTPRoute{"", "192.0.2.7", 587}},
		{line: "example.com:", want: SMTPRoute{"example.com", "", 25}},
		{line: "v6.example:[2001:db8::1]:26", want: SMTPRoute{"v6.example", "[2001:db8::1]", 26}},
		{line: "example.com", bad: true},
		{line: "example.com:relay:port", bad: true},
		{line: "example.com:relay:0", bad: true},
		{line: "example.com:relay:70000", bad: true},
		{line: "example.com:[2001:db8::1", bad: true},
		{line: "example.com:[not-ip]", bad: true},
		{line: "example.com:[192.0.2.1]x", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseRoute(tc.line)
		if (err != nil) != tc.bad {
			t.Errorf("ParseRoute(%q) error %v, want bad=%v", tc.line, err, tc.bad)
			continue
		}
		if !tc.bad && got != tc.want {
			t.Errorf("ParseRoute(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestRoutesMatch(t *testing.T) {
	t.Parallel()
	rs := Routes{
		{"a.example.com", "exact", 25},
		{".example.com", "suffix", 25},
		{".com", "com", 25},
		{"skip.example.com", "", 25},
		{"", "default", 25},
		{"a.example.com", "second", 25},
	}
	for _, tc := range []struct{ domain, relay string }{
		{"a.example.com", "exact"},
		{"b.example.com", "suffix"},
		{"x.b.example.com", "suffix"},
		{"example.com", "com"},
		{"skip.example.com", ""},
		{"example.org", "default"},
	} {
		rt, ok := rs.Match(tc.domain)
		if !ok || rt.Relay != tc.relay {
			t.Errorf("Match(%q) = %+v %v, want relay %q", tc.domain, rt, ok, tc.relay)
		}
	}
	if _, ok := rs[:4].Match("example.org"); ok {
		t.Error("matched without a default route")
	}
}

// fakeDNS answers from maps; a name in temp fails temporarily.
type fakeDNS struct {
	mx   map[string][]*net.MX
	ip   map[string][]string
	temp map[string]bool
}

func (f fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if f.temp[name] {
		return nil, &net.DNSError{Err: "timeout", Name: name, IsTimeout: true}
	}
	mx, ok := f.mx[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	out := make([]*net.MX, len(mx))
	for i, m := range mx {
		c := *m
		out[i] = &c
	}
	return out, nil
}

func (f fakeDNS) LookupIPAddr(_ context.Context, name string) ([]net.IPAddr, error) {
	if f.temp[name] {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	ips, ok := f.ip[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

var dns = fakeDNS{
	mx: map[string][]*net.MX{
		"example.org": {{Host: "mx3.example.org.", Pref: 30}, {Host: "mx1.example.org.", Pref: 10}, {Host: "mx2a.example.org.", Pref: 20}, {Host: "mx2b.example.org.", Pref: 20}, {Host: "gone.example.org.", Pref: 5}},
		"self.test":   {{Host: "backup.test.", Pref: 20}, {Host: "me.test.", Pref: 10}},
		"selfb.test":  {{Host: "mx.selfb.test.", Pref: 10}, {Host: "me.test.", Pref: 20}, {Host: "mx3.selfb.test.", Pref: 30}},
		"nullmx.test": {{Host: ".", Pref: 0}},
		"temp.test":   {{Host: "dead.test.", Pref: 10}},
	},
	ip: map[string][]string{
		"mx1.example.org":  {"2001:db8::1", "192.0.2.1"},
		"mx2a.example.org": {"192.0.2.21"},
		"mx2b.example.org": {"192.0.2.22"},
		"mx3.example.org":  {"192.0.2.3"},
		"amx.test":         {"192.0.2.50"},
		"relay.test":       {"192.0.2.60", "2001:db8::60"},
		"me.test":          {"198.51.100.1"},
		"backup.test":      {"192.0.2.99"},
		"mx.selfb.test":    {"192.0.2.70"},
		"mx3.selfb.test":   {"192.0.2.71"},
		"ownip.test":       {"198.51.100.1"},
	},
	temp: map[string]bool{"dnstemp.test": true, "dead.test": true},
}

func router() Router {
	return Router{
		Resolver:   dns,
		LocalAddrs: func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("198.51.100.1")}, nil },
		Shuffle:    func(n int, swap func(i, j int)) {},
	}
}

func addrs(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Addr.String())
	}
	return out
}

func ctlDir(t *testing.T, routes string) control.Dir {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	if routes != "" {
		if err := os.WriteFile(filepath.Join(root, "control", "smtproutes"), []byte(routes), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return control.New(root)
}

func TestRoute(t *testing.T) {
	t.Parallel()
	ctl := ctlDir(t, "# routes\nrouted.test:relay.test:2525\n.sub.test:[192.0.2.80]\nexception.example.org:\nliteral.test:192.0.2.81\n")
	tests := []struct {
		domain string
		want   []string
		fail   string // the failure report text, when it fails
		temp   bool
	}{
		{domain: "example.org", want: []string{"[2001:db8::1]:25", "192.0.2.1:25", "192.0.2.21:25", "192.0.2.22:25", "192.0.2.3:25"}},
		{domain: "Example.ORG.", want: []string{"[2001:db8::1]:25", "192.0.2.1:25", "192.0.2.21:25", "192.0.2.22:25", "192.0.2.3:25"}},
		{domain: "amx.test", want: []string{"192.0.2.50:25"}},
		{domain: "routed.test", want: []string{"192.0.2.60:2525", "[2001:db8::60]:2525"}},
		{domain: "a.sub.test", want: []string{"192.0.2.80:25"}},
		{domain: "literal.test", want: []string{"192.0.2.81:25"}},
		{domain: "[192.0.2.9]", want: []string{"192.0.2.9:25"}},
		{domain: "192.0.2.10", want: []string{"192.0.2.10:25"}},
		{domain: "[IPv6:2001:db8::5]", want: []string{"[2001:db8::5]:25"}},
		{domain: "self.test", fail: errLocalMX},
		{domain: "selfb.test", want: []string{"192.0.2.70:25"}},
		{domain: "ownip.test", fail: errLocalMX},
		{domain: "nxdomain.test", fail: "Sorry, I couldn't find any host named nxdomain.test. (#5.1.2)\n"},
		{domain: "dnstemp.test", fail: errDNSTemp, temp: true},
		{domain: "temp.test", fail: errDNSTemp, temp: true},
		{domain: "nullmx.test", fail: "Sorry, nullmx.test says it accepts no mail (null MX). (#5.1.10)\n"},
	}
	for _, tc := range tests {
		got, err := router().Route(context.Background(), ctl, tc.domain)
		if tc.fail != "" {
			var f *Failure
			if !errors.As(err, &f) || f.Text != tc.fail || f.Temporary() != tc.temp {
				t.Errorf("Route(%q) = %v, %v; want failure %q temp=%v", tc.domain, addrs(got), err, tc.fail, tc.temp)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(addrs(got), tc.want) {
			t.Errorf("Route(%q) = %v, %v; want %v", tc.domain, addrs(got), err, tc.want)
		}
	}
	// The exception routes by MX, which fails in the fake DNS.
	if _, err := router().Route(context.Background(), ctl, "exception.example.org"); err == nil {
		t.Error("exception: want the MX lookup of exception.example.org, got a route")
	}
	if _, err := router().Route(context.Background(), ctlDir(t, "bad line\n"), "example.org"); err == nil || err.Error() != "control/smtproutes:1: want domain:relay[:port]" {
		t.Errorf("bad smtproutes: %v", err)
	}
}

// TestRouteShuffle checks that equal preferences come in both orders and
// never before a better preference.
func TestRouteShuffle(t *testing.T) {
	t.Parallel()
	r := router()
	r.Shuffle = nil
	seen := map[string]bool{}
	for range 200 {
		got, err := r.Route(context.Background(), ctlDir(t, ""), "example.org")
		if err != nil {
			t.Fatal(err)
		}
		a := addrs(got)
		if a[0] != "[2001:db8::1]:25" || a[1] != "192.0.2.1:25" || a[4] != "192.0.2.3:25" {
			t.Fatalf("order %v", a)
		}
		seen[a[2]] = true
	}
	if len(seen) != 2 {
		t.Errorf("equal preferences always in one order: %v", seen)
	}
}

func TestTLSRequiredFor(t *testing.T) {
	t.Parallel()
	list := []string{"bank.example", ".gov.example"}
	for _, tc := range []struct {
		domain string
		want   bool
	}{{"bank.example", true}, {"BANK.example.", true}, {"x.bank.example", false}, {"a.gov.example", true}, {"gov.example", false}, {"other.example", false}} {
		if got := TLSRequiredFor(list, tc.domain); got != tc.want {
			t.Errorf("TLSRequiredFor(%q) = %v", tc.domain, got)
		}
	}
	if !TLSRequiredFor([]string{"*"}, "any.example") {
		t.Error("* does not match")
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	ctl := ctlDir(t, "")
	write := func(name, v string) {
		if err := os.WriteFile(ctl.Path(name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("me", "mail.example.net\n")
	write("timeoutconnect", "7\n")
	write("tlsrequired", "# strict\n.example.org\n")
	cfg, err := LoadConfig(ctl, "a.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HeloHost != "mail.example.net" || cfg.ConnectTimeout.Seconds() != 7 || cfg.Timeout.Seconds() != 1200 || cfg.TLS != TLSRequired {
		t.Errorf("cfg %+v", cfg)
	}
	write("timeoutremote", "20s\n")
	if _, err := LoadConfig(ctl, "a.example.org"); err == nil {
		t.Error("bad timeoutremote accepted")
	} else if r := Failed(err); r.Message != (Report{TempFail, TextControl}) {
		t.Errorf("Failed = %+v", r)
	}
}
