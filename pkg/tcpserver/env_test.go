package tcpserver

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestIPString(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"::ffff:192.0.2.7":         "192.0.2.7", // from a dual-stack socket
		"::1":                      "::1",
		"2001:0DB8:0:0:0:0:0:0001": "2001:db8::1",
		"2001:db8:0:0:1:0:0:1":     "2001:db8::1:0:0:1", // the first of two equal runs
		"2001:db8:0:1:1:1:1:1":     "2001:db8:0:1:1:1:1:1",
		"fe80::1%eth0":             "fe80::1%eth0",
		"::":                       "::",
	} {
		if got := IPString(netip.MustParseAddr(in)); got != want {
			t.Errorf("IPString(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestBaseEnv(t *testing.T) {
	in := []string{"PATH=/bin", "TCPREMOTEHOST=stale", "PROTO=UDP", "TCPREMOTEHOSTX=kept", "TCPLOCALIP", "HOME=/", "TCPREMOTEINFO="}
	want := []string{"PATH=/bin", "TCPREMOTEHOSTX=kept", "TCPLOCALIP", "HOME=/"}
	if got := BaseEnv(in); !reflect.DeepEqual(got, want) {
		t.Errorf("BaseEnv = %q, want %q", got, want)
	}
}

func TestChildEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/"}
	f := Facts{
		Local:  netip.MustParseAddrPort("[::ffff:10.0.0.1]:25"),
		Remote: netip.MustParseAddrPort("192.0.2.7:40000"),
	}
	t.Run("unknowns are unset", func(t *testing.T) {
		got := ChildEnv(base, f, nil)
		want := []string{"PATH=/bin", "HOME=/", "PROTO=TCP", "TCPLOCALIP=10.0.0.1", "TCPLOCALPORT=25",
			"TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=40000"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
	t.Run("everything known, and rule variables", func(t *testing.T) {
		f := f
		f.LocalHost, f.HasLocalHost = "mx.example.com", true
		f.RemoteHost, f.HasRemoteHost = "client.example.org", true
		f.RemoteInfo, f.HasRemoteInfo = "", true // an identd ERROR: set, empty
		rule := []Var{{"RELAYCLIENT", ""}, {"PATH", "/usr/bin"}, {"TCPLOCALHOST", "override"}, {"RELAYCLIENT", "@x"}}
		got := ChildEnv(base, f, rule)
		want := []string{"PATH=/usr/bin", "HOME=/", "PROTO=TCP", "TCPLOCALIP=10.0.0.1", "TCPLOCALPORT=25",
			"TCPLOCALHOST=override", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=40000",
			"TCPREMOTEHOST=client.example.org", "TCPREMOTEINFO=", "RELAYCLIENT=@x"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		f := Facts{Local: netip.MustParseAddrPort("[::1]:25"), Remote: netip.MustParseAddrPort("[2001:db8:0:0::7]:1025")}
		got := strings.Join(ChildEnv(nil, f, nil), " ")
		if want := "PROTO=TCP TCPLOCALIP=::1 TCPLOCALPORT=25 TCPREMOTEIP=2001:db8::7 TCPREMOTEPORT=1025"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
	t.Run("base is not modified", func(t *testing.T) {
		b := []string{"PATH=/bin"}
		ChildEnv(b[:1:1], f, []Var{{"PATH", "/x"}})
		if b[0] != "PATH=/bin" {
			t.Errorf("base changed to %q", b)
		}
	})
}

func TestConnLine(t *testing.T) {
	f := Facts{
		Local:  netip.MustParseAddrPort("10.0.0.1:25"),
		Remote: netip.MustParseAddrPort("192.0.2.7:40000"),
	}
	if got, want := connLine("ok", 123, &f), "tcpserver: ok 123 :10.0.0.1:25 :192.0.2.7::40000\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f.LocalHost, f.HasLocalHost = "mx.example.com", true
	f.RemoteHost, f.HasRemoteHost = "a%b c", true
	f.RemoteInfo, f.HasRemoteInfo = "joe:x\x7f\xff", true
	if got, want := connLine("deny", 0, &f), "tcpserver: deny 0 mx.example.com:10.0.0.1:25 a?b?c:192.0.2.7:joe?x??:40000\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f.Local = netip.MustParseAddrPort("[::1]:25")
	f.RemoteInfo = strings.Repeat("u", 100)
	if got, want := connLine("ok", 9, &f), "tcpserver: ok 9 mx.example.com:??1:25 a?b?c:192.0.2.7:"+strings.Repeat("u", 100)+"...:40000\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f.RemoteInfo = strings.Repeat("u", 99)
	if got := connLine("ok", 9, &f); strings.Contains(got, "...") {
		t.Errorf("99 bytes were cut: %q", got)
	}
}

func TestLookPath(t *testing.T) {
	if p, err := lookPath("sh", "/nonexistent::/bin"); err != nil || p != "/bin/sh" {
		t.Errorf("lookPath(sh) = %q, %v", p, err)
	}
	if p, err := lookPath("./x/y", ""); err != nil || p != "./x/y" {
		t.Errorf("a name with a slash: %q, %v", p, err)
	}
	if _, err := lookPath("no-such-program-here", "/bin:/usr/bin"); err == nil || errText(err) != "file does not exist" {
		t.Errorf("missing program: %v (%q)", err, errText(err))
	}
	if _, err := lookPath("passwd", "/etc"); err == nil || errText(err) != "access denied" {
		t.Errorf("not executable: %v", err)
	}
}
