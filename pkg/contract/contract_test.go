package contract

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"control", "domains"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(root, "control", "me"), "mail.example.com\n")
	return New(root)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestAddDomain(t *testing.T) {
	s := newStore(t)
	write(t, s.controlPath("rcpthosts"), "# our own\nmail.example.com\n")
	write(t, s.controlPath("virtualdomains"), "# routes\nother.org:someone\n")
	err := s.AddDomain(Domain{Name: "Example.TEST", Quota: 1 << 30,
		IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"rcpthosts":      "# our own\nmail.example.com\nexample.test\n",
		"virtualdomains": "# routes\nother.org:someone\nexample.test:example.test\n",
		"quotas":         "example.test:1073741824\n",
		"contractips":    "example.test:192.0.2.1\nexample.test:2001:db8::1\n",
	} {
		if got := read(t, s.controlPath(file)); got != want {
			t.Errorf("control/%s = %q, want %q", file, got, want)
		}
	}
	for file, perm := range map[string]os.FileMode{"passwd": 0o644, "shadow": 0o600} {
		st, err := os.Stat(filepath.Join(s.domainDir("example.test"), file))
		if err != nil || st.Mode().Perm() != perm {
			t.Errorf("domains/example.test/%s: %v, mode %v; want %v", file, err, st.Mode(), perm)
		}
	}
	if err := s.AddDomain(Domain{Name: "example.test"}); !errors.Is(err, ErrExists) {
		t.Errorf("second AddDomain: err = %v, want ErrExists", err)
	}
	info, err := s.ShowDomain("example.test")
	if err != nil {
		t.Fatal(err)
	}
	if info.Quota != 1<<30 || len(info.IPs) != 2 || !info.Complete() || info.Users != 0 {
		t.Errorf("ShowDomain = %+v", info)
	}
	names, err := s.Domains()
	if err != nil || !reflect.DeepEqual(names, []string{"example.test"}) {
		t.Errorf("Domains = %v, %v", names, err)
	}
}

func TestAddDomainRefusals(t *testing.T) {
	s := newStore(t)
	write(t, s.controlPath("locals"), "mail.example.com\nlocal.example\n")
	write(t, s.controlPath("virtualdomains"), "routed.example:someone\n")
	for _, tc := range []struct{ domain, want string }{
		{"local.example", "is in control/locals"},
		{"mail.example.com", "is in control/locals"},
		{"routed.example", "control/virtualdomains:1 already routes routed.example"},
		{"bad_name.example", `'_' is not allowed`},
		{"nodot", "want a fully qualified name"},
		{"a..b", "empty or overlong label"},
		{"-a.example", "may not begin or end with '-'"},
		{"../etc", "empty or overlong label"},
		{"a/b.example", `'/' is not allowed`},
	} {
		err := s.AddDomain(Domain{Name: tc.domain})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddDomain(%q) err = %v, want %q", tc.domain, err, tc.want)
		}
	}
	if got := read(t, s.controlPath("rcpthosts")); got != "" {
		t.Errorf("refused domains reached rcpthosts: %q", got)
	}
}

// A crash can leave a domain half-made; adding it again finishes it, and
// show tells the admin.
func TestAddDomainFinishesHalfMade(t *testing.T) {
	s := newStore(t)
	if err := os.MkdirAll(s.domainDir("half.example"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(s.domainDir("half.example"), "passwd"), "")
	write(t, s.controlPath("virtualdomains"), "half.example:half.example\n")
	info, err := s.ShowDomain("half.example")
	if err != nil || info.Complete() {
		t.Fatalf("ShowDomain(half-made) = %+v, %v; want incomplete", info, err)
	}
	if err := s.AddDomain(Domain{Name: "half.example"}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s.controlPath("virtualdomains")); got != "half.example:half.example\n" {
		t.Errorf("virtualdomains = %q, want the entry once", got)
	}
	if got := read(t, s.controlPath("rcpthosts")); got != "half.example\n" {
		t.Errorf("rcpthosts = %q", got)
	}
}

func TestUsers(t *testing.T) {
	s := newStore(t)
	if err := s.AddUser("joe@nowhere.example", []byte("pw"), true); !errors.Is(err, ErrNoDomain) {
		t.Errorf("AddUser in a missing domain: err = %v, want ErrNoDomain", err)
	}
	if err := s.AddDomain(Domain{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("Joe@Example.test", []byte("s3cret pw"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("ann@example.test", []byte("other"), false); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("joe@example.test", []byte("x"), true); !errors.Is(err, ErrExists) {
		t.Errorf("AddUser twice: err = %v, want ErrExists", err)
	}
	names, err := s.Users("example.test")
	if err != nil || !reflect.DeepEqual(names, []string{"joe", "ann"}) {
		t.Errorf("Users = %v, %v", names, err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if st, err := os.Stat(filepath.Join(s.domainDir("example.test"), "joe", "Maildir", sub)); err != nil || !st.IsDir() {
			t.Errorf("Maildir/%s: %v", sub, err)
		}
	}
	u, err := s.LookupUser("JOE%example.test")
	if err != nil || u.Home != filepath.Join(s.domainDir("example.test"), "joe") {
		t.Errorf("LookupUser = %+v, %v", u, err)
	}
	for _, addr := range []string{"bob@example.test", "joe@other.example", "joe", "@example.test"} {
		if _, err := s.LookupUser(addr); !errors.Is(err, ErrNoUser) && !errors.Is(err, ErrNoDomain) {
			t.Errorf("LookupUser(%q) err = %v, want ErrNoUser or ErrNoDomain", addr, err)
		}
	}
	joe, _ := s.Credential(u)
	if string(joe.Secret) != "s3cret pw" || !strings.HasPrefix(joe.Hash, "$6$") {
		t.Errorf("joe's credential = %+v", joe)
	}
	annU, _ := s.LookupUser("ann@example.test")
	ann, _ := s.Credential(annU)
	if ann.Secret != nil {
		t.Errorf("ann (no APOP) has a secret stored")
	}

	// passwd keeps APOP unless told, --no-apop drops it, --apop brings it back.
	if err := s.SetPassword("joe@example.test", []byte("new pw"), nil); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Credential(u); string(c.Secret) != "new pw" || c.Hash == joe.Hash {
		t.Errorf("after SetPassword(nil): %+v", c)
	}
	no := false
	if err := s.SetPassword("joe@example.test", []byte("newer"), &no); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Credential(u); c.Secret != nil {
		t.Errorf("after SetPassword(apop=false) the secret is still stored")
	}
	if err := s.SetPassword("bob@example.test", []byte("x"), nil); !errors.Is(err, ErrNoUser) {
		t.Errorf("SetPassword(unknown) err = %v", err)
	}

	if err := s.DelDomain("example.test", false); err == nil || !strings.Contains(err.Error(), "still has 2 users") {
		t.Errorf("DelDomain with users: err = %v", err)
	}
	if err := s.DelUser("joe@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.domainDir("example.test"), "joe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("joe's mailbox still there: %v", err)
	}
	if sh := read(t, filepath.Join(s.domainDir("example.test"), "shadow")); strings.Contains(sh, "joe:") {
		t.Errorf("joe still in shadow: %q", sh)
	}
	if err := s.DelUser("joe@example.test"); !errors.Is(err, ErrNoUser) {
		t.Errorf("DelUser twice: err = %v", err)
	}
	if err := s.DelDomain("example.test", true); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rcpthosts", "virtualdomains", "quotas", "contractips"} {
		if got := read(t, s.controlPath(f)); strings.Contains(got, "example.test") {
			t.Errorf("control/%s still names the domain: %q", f, got)
		}
	}
	if err := s.DelDomain("example.test", true); !errors.Is(err, ErrNoDomain) {
		t.Errorf("DelDomain twice: err = %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, pw := range []string{"", "a\x00b", "line\nbreak", "tab\t", "del\x7f", strings.Repeat("x", 257)} {
		if CheckPassword([]byte(pw)) == nil {
			t.Errorf("CheckPassword(%q) accepted", pw)
		}
	}
	for _, pw := range []string{"x", "with space", "ünïcödé", "colon:and$dollar", strings.Repeat("x", 256)} {
		if err := CheckPassword([]byte(pw)); err != nil {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "1K": 1024, "1k": 1024, "2KB": 2048, "500M": 500 << 20,
		"2G": 2 << 30, "2GiB": 2 << 30, "1T": 1 << 40, " 3M ": 3 << 20,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5G", "1X", "99999999999T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, accepted", in, got)
		}
	}
}

func TestParseShadowErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"joe:$6$x$y\n", "f:1: want NAME:HASH:SECRET"},
		{"joe:plain:\n", "f:1: user joe: hash is not in crypt"},
		{"joe:$6$x$y:!!!\n", "f:1: user joe: secret is not base64"},
		{"joe:$6$x$y:\n# c\njoe:$6$x$y:\n", "f:3: user joe listed twice"},
		{"Joe:$6$x$y:\n", "f:1: user \"Joe\": must be lower case"},
	} {
		if _, err := ParseShadow("f", []byte(tc.in)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseShadow(%q) err = %v, want %q", tc.in, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"joe\n", "f:1: want NAME:DIR"},
		{"joe:/abs\n", "f:1: directory \"/abs\""},
		{"joe:../x\n", "f:1: directory \"../x\""},
		{"joe:a/../../x\n", "f:1: directory"},
		{"joe:joe\njoe:joe2\n", "f:2: user joe listed twice"},
	} {
		if _, err := ParsePasswd("f", []byte(tc.in)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParsePasswd(%q) err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("joe:joe\nann:a/ann\n"))
	f.Add([]byte("# comment\n\nx:y:z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mb, err := ParsePasswd("passwd", data)
		if err != nil {
			return
		}
		again, err := ParsePasswd("passwd", FormatPasswd(mb))
		if err != nil || !reflect.DeepEqual(again, mb) {
			t.Fatalf("round trip of %q: %v, %v != %v", data, err, again, mb)
		}
	})
}

func FuzzParseShadow(f *testing.F) {
	f.Add([]byte("joe:$6$rounds=5000$salt$hash:c2VjcmV0\nann:$6$s$h:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := ParseShadow("shadow", data)
		if err != nil {
			return
		}
		again, err := ParseShadow("shadow", FormatShadow(creds))
		if err != nil || !reflect.DeepEqual(again, creds) {
			t.Fatalf("round trip of %q: %v, %v != %v", data, err, again, creds)
		}
	})
}
