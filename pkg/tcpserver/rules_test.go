package tcpserver

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/cdb"
	"github.com/quail-mta/quail/pkg/testutil"
)

func TestRuleKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Client
		want []string
	}{
		{"ip only", Client{IP: "1.2.3.4"},
			[]string{"1.2.3.4", "1.2.3.", "1.2.", "1.", ""}},
		{"host", Client{IP: "1.2.3.4", Host: "h.example.com", HasHost: true},
			[]string{"1.2.3.4", "=h.example.com", "1.2.3.", "1.2.", "1.", "=.example.com", "=.com", "=", ""}},
		{"info and host", Client{IP: "1.2.3.4", Host: "h.example.com", HasHost: true, Info: "joe", HasInfo: true},
			[]string{"joe@1.2.3.4", "joe@=h.example.com", "1.2.3.4", "=h.example.com", "1.2.3.", "1.2.", "1.", "=.example.com", "=.com", "=", ""}},
		{"info without host", Client{IP: "10.0.0.1", Info: "joe", HasInfo: true},
			[]string{"joe@10.0.0.1", "10.0.0.1", "10.0.0.", "10.0.", "10.", ""}},
		{"empty info is still info", Client{IP: "10.0.0.1", HasInfo: true},
			[]string{"@10.0.0.1", "10.0.0.1", "10.0.0.", "10.0.", "10.", ""}},
		{"empty host is still a host", Client{IP: "10.0.0.1", HasHost: true},
			[]string{"10.0.0.1", "=", "10.0.0.", "10.0.", "10.", "=", ""}},
		{"ipv6", Client{IP: "2001:db8::1"},
			[]string{"2001:db8::1", "2001:db8::", "2001:db8:", "2001:", ""}},
		{"host with trailing dot", Client{IP: "1.2.3.4", Host: "a.", HasHost: true},
			[]string{"1.2.3.4", "=a.", "1.2.3.", "1.2.", "1.", "=.", "=", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RuleKeys(tc.c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RuleKeys(%+v)\n got %q\nwant %q", tc.c, got, tc.want)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want Rule
	}{
		{"allow", "", Rule{}},
		{"deny", "D\x00", Rule{Deny: true}},
		{"vars", "+RELAYCLIENT=\x00+FOO=bar baz\x00", Rule{Env: []Var{{"RELAYCLIENT", ""}, {"FOO", "bar baz"}}}},
		{"deny with vars", "D\x00+A=1\x00", Rule{Deny: true, Env: []Var{{"A", "1"}}}},
		{"value with =", "+A=b=c\x00", Rule{Env: []Var{{"A", "b=c"}}}},
		{"no = is ignored", "+A\x00+B=2\x00", Rule{Env: []Var{{"B", "2"}}}},
		{"empty name is ignored", "+=x\x00", Rule{}},
		{"unknown kind is ignored", "Xjunk\x00+A=1\x00", Rule{Env: []Var{{"A", "1"}}}},
		{"unterminated tail is ignored", "+A=1\x00+B=2", Rule{Env: []Var{{"A", "1"}}}},
		{"empty instructions", "\x00\x00D\x00", Rule{Deny: true}},
		{"repeated variable kept in order", "+A=1\x00+A=2\x00", Rule{Env: []Var{{"A", "1"}, {"A", "2"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseRule([]byte(tc.data)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseRule(%q) = %+v, want %+v", tc.data, got, tc.want)
			}
		})
	}
}

// writeCDB builds a rules database from key/value pairs, in order.
func writeCDB(t *testing.T, pairs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.cdb")
	w, err := cdb.Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := w.Add([]byte(pairs[i]), []byte(pairs[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLookupOrder puts every candidate key in a database and removes the
// winner one at a time: each time the next key in tcpserver's order must
// win.
func TestLookupOrder(t *testing.T) {
	c := Client{IP: "10.1.2.3", Host: "mx.mail.example.com", HasHost: true, Info: "joe", HasInfo: true}
	order := []string{
		"joe@10.1.2.3", "joe@=mx.mail.example.com", "10.1.2.3", "=mx.mail.example.com",
		"10.1.2.", "10.1.", "10.", "=.mail.example.com", "=.example.com", "=.com", "=", "",
	}
	for i := range order {
		var pairs []string
		// Insert in reverse so that file order cannot explain the result.
		for j := len(order) - 1; j >= i; j-- {
			pairs = append(pairs, order[j], "+KEY="+order[j]+"\x00")
		}
		pairs = append(pairs, "unrelated", "D\x00", "10.1.2.30", "D\x00", "=x.mx.mail.example.com", "D\x00")
		path := writeCDB(t, pairs...)
		r, err := LookupFile(path, false, c)
		if err != nil {
			t.Fatal(err)
		}
		want := Rule{Env: []Var{{"KEY", order[i]}}}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("with keys %q: got %+v, want %+v", order[i:], r, want)
		}
	}
}

func TestLookupFirstRecordWins(t *testing.T) {
	path := writeCDB(t, "1.2.3.4", "+N=first\x00", "1.2.3.4", "D\x00")
	r, err := LookupFile(path, false, Client{IP: "1.2.3.4"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Deny || len(r.Env) != 1 || r.Env[0].Value != "first" {
		t.Errorf("got %+v, want the first record's rule", r)
	}
}

func TestLookupNoMatchAllows(t *testing.T) {
	path := writeCDB(t, "1.2.3.4", "D\x00")
	r, err := LookupFile(path, false, Client{IP: "5.6.7.8"})
	if err != nil || r.Deny || r.Env != nil {
		t.Errorf("got %+v, %v; want an empty allow", r, err)
	}
}

func TestLookupMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.cdb")
	if _, err := LookupFile(path, false, Client{IP: "1.2.3.4"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file without -X: err %v, want not-exist", err)
	}
	r, err := LookupFile(path, true, Client{IP: "1.2.3.4"})
	if err != nil || r.Deny || r.Env != nil {
		t.Errorf("missing file with -X: %+v, %v; want an empty allow", r, err)
	}
	// -X forgives only a missing file.
	bad := filepath.Join(t.TempDir(), "short.cdb")
	os.WriteFile(bad, []byte("short"), 0o644)
	if _, err := LookupFile(bad, true, Client{IP: "1.2.3.4"}); err == nil {
		t.Error("a corrupt file with -X: no error")
	}
}

// tcprules compiles rules text with the real tcprules.
func tcprules(t *testing.T, text string) string {
	t.Helper()
	bin := testutil.NeedTool(t, "tcprules", "ucspi-tcp")
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.cdb")
	cmd := exec.Command(bin, path, filepath.Join(dir, "rules.tmp"))
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcprules: %v\n%s", err, out)
	}
	return path
}

const sampleRules = `# a comment
joe@127.0.0.1:allow,WHO="joe"
127.0.0.1:allow,RELAYCLIENT=""
127.:allow,RELAYCLIENT="",QMAILQUEUE="/var/qmail/bin/qmail-scan"
10.0.0.10-20:deny
10.0.1-2.:allow,NET=/one-or-two/
192.168.:allow,A="1",B="two words",C=""
=mx.example.com:allow,HOST="exact"
=.example.com:allow,HOST="suffix"
bob@=mx.example.com:allow,WHO="bob"
=:allow,NAMED="yes"
:allow,DEFAULT="x=y"
`

// TestLookupTcprules checks our lookup against tcprulescheck, ucspi-tcp's
// own reading of the same database, for a range of clients.
func TestLookupTcprules(t *testing.T) {
	path := tcprules(t, sampleRules)
	check := testutil.NeedTool(t, "tcprulescheck", "ucspi-tcp")
	for _, c := range []Client{
		{IP: "127.0.0.1"},
		{IP: "127.0.0.1", Info: "joe", HasInfo: true},
		{IP: "127.0.0.1", Info: "ann", HasInfo: true},
		{IP: "127.0.0.2"},
		{IP: "10.0.0.9"}, {IP: "10.0.0.10"}, {IP: "10.0.0.15"}, {IP: "10.0.0.20"}, {IP: "10.0.0.21"},
		{IP: "10.0.1.7"}, {IP: "10.0.2.7"}, {IP: "10.0.3.7"},
		{IP: "192.168.4.4"},
		{IP: "8.8.8.8", Host: "mx.example.com", HasHost: true},
		{IP: "8.8.8.8", Host: "mx.example.com", HasHost: true, Info: "bob", HasInfo: true},
		{IP: "8.8.8.8", Host: "a.b.example.com", HasHost: true},
		{IP: "8.8.8.8", Host: "other.org", HasHost: true},
		{IP: "127.0.0.5", Host: "mx.example.com", HasHost: true},
		{IP: "127.0.0.1", Host: "mx.example.com", HasHost: true},
		{IP: "8.8.8.8"},
	} {
		db, err := cdb.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, key, found, err := lookup(db, c)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := describe(r, key, found)
		want := tcprulescheckSays(t, check, path, c)
		if got != want {
			t.Errorf("%+v:\n got %q\nwant %q (tcprulescheck)", c, got, want)
		}
	}
}

// describe writes a lookup result the way tcprulescheck prints one.
func describe(r Rule, key string, found bool) string {
	var b strings.Builder
	if found {
		b.WriteString("rule " + key + ":\n")
	} else {
		b.WriteString("default:\n")
	}
	// tcprulescheck stops at "D", which tcprules writes first.
	for _, v := range r.Env {
		if !r.Deny {
			b.WriteString("set environment variable " + v.Name + "=" + v.Value + "\n")
		}
	}
	if r.Deny {
		b.WriteString("deny connection\n")
	} else {
		b.WriteString("allow connection\n")
	}
	return b.String()
}

func tcprulescheckSays(t *testing.T, check, path string, c Client) string {
	t.Helper()
	cmd := exec.Command(check, path)
	cmd.Env = []string{"TCPREMOTEIP=" + c.IP}
	if c.HasHost {
		cmd.Env = append(cmd.Env, "TCPREMOTEHOST="+c.Host)
	}
	if c.HasInfo {
		cmd.Env = append(cmd.Env, "TCPREMOTEINFO="+c.Info)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("tcprulescheck: %v", err)
	}
	return out.String()
}

// TestTcprulesValues pins the byte format tcprules writes, which
// ParseRule reads.
func TestTcprulesValues(t *testing.T) {
	path := tcprules(t, "1.2.3.4:deny\n1.2.3.5:allow\n1.2.3.6:allow,A=\"x\",B=/y z/,C=\"\"\n1.2.3.7:deny,D=\"d\"\n")
	db, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for key, want := range map[string]string{
		"1.2.3.4": "D\x00",
		"1.2.3.5": "",
		"1.2.3.6": "+A=x\x00+B=y z\x00+C=\x00",
		"1.2.3.7": "D\x00+D=d\x00",
	} {
		data, ok, err := db.Get([]byte(key))
		if err != nil || !ok || string(data) != want {
			t.Errorf("%s: %q %v %v, want %q", key, data, ok, err, want)
		}
	}
}
