package checkpw

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/contract"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		login, secret, stamp string
		err                  error
	}{
		{"joe@x.example\x00pw\x00<1.2@h>\x00", "joe@x.example", "pw", "<1.2@h>", nil},
		{"joe\x00pw\x00", "joe", "pw", "", nil},
		{"joe\x00pw\x00stamp", "joe", "pw", "stamp", nil},
		{"joe\x00pw\x00\x00extra", "joe", "pw", "", nil},
		{"\x00\x00", "", "", "", nil},
		{"joe\x00pw", "", "", "", ErrMisuse},
		{"joe", "", "", "", ErrMisuse},
		{"", "", "", "", ErrMisuse},
		{strings.Repeat("a", 513), "", "", "", ErrBad},
	} {
		r, err := ParseRequest([]byte(tc.in))
		if !errors.Is(err, tc.err) {
			t.Errorf("ParseRequest(%q) err = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if string(r.Login) != tc.login || string(r.Secret) != tc.secret || string(r.Timestamp) != tc.stamp {
			t.Errorf("ParseRequest(%q) = %q %q %q", tc.in, r.Login, r.Secret, r.Timestamp)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("joe@x.example\x00pw\x00<1.2@h>\x00"))
	f.Add([]byte("a\x00b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if len(b) > MaxInput {
			t.Fatalf("accepted %d bytes", len(b))
		}
		for _, field := range [][]byte{r.Login, r.Secret, r.Timestamp} {
			if strings.ContainsRune(string(field), 0) {
				t.Fatalf("field %q holds a NUL", field)
			}
		}
	})
}

func apop(stamp, pw string) string {
	s := md5.Sum([]byte(stamp + pw))
	return hex.EncodeToString(s[:])
}

func cram(challenge, pw string) string {
	m := hmac.New(md5.New, []byte(pw))
	m.Write([]byte(challenge))
	return hex.EncodeToString(m.Sum(nil))
}

func newStore(t *testing.T) *contract.Store {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	os.MkdirAll(filepath.Join(root, "domains"), 0o755)
	s := contract.New(root)
	if err := s.AddDomain(contract.Domain{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("joe@example.test", []byte("s3cret"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("ann@example.test", []byte("plain only"), false); err != nil {
		t.Fatal(err)
	}
	// A password that looks like a digest must still work as a password.
	if err := s.AddUser("hex@example.test", []byte("0123456789abcdef0123456789abcdef"), true); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	s := newStore(t)
	const stamp = "<4242.1700000000@mail.example.test>"
	for _, tc := range []struct {
		name                 string
		login, secret, stamp string
		ok                   bool
	}{
		{"plain", "joe@example.test", "s3cret", stamp, true},
		{"plain, upper-case login", "JOE@Example.TEST", "s3cret", "", true},
		{"plain, percent login", "joe%example.test", "s3cret", "", true},
		{"plain, wrong", "joe@example.test", "s3cret!", stamp, false},
		{"plain, case matters", "joe@example.test", "S3CRET", "", false},
		{"apop", "joe@example.test", apop(stamp, "s3cret"), stamp, true},
		{"apop, upper-case hex", "joe@example.test", strings.ToUpper(apop(stamp, "s3cret")), stamp, true},
		{"apop, wrong password", "joe@example.test", apop(stamp, "guess"), stamp, false},
		{"apop, other timestamp", "joe@example.test", apop("<1.1@x>", "s3cret"), stamp, false},
		{"apop, no timestamp", "joe@example.test", apop(stamp, "s3cret"), "", false},
		{"cram", "joe@example.test", cram(stamp, "s3cret"), stamp, true},
		{"cram, challenge second", "joe@example.test", stamp, cram(stamp, "s3cret"), true},
		{"cram, wrong", "joe@example.test", cram(stamp, "nope"), stamp, false},
		{"apop for an account without the secret", "ann@example.test", apop(stamp, "plain only"), stamp, false},
		{"cram for an account without the secret", "ann@example.test", cram(stamp, "plain only"), stamp, false},
		{"plain for that account", "ann@example.test", "plain only", stamp, true},
		{"hex-looking password as password", "hex@example.test", "0123456789abcdef0123456789abcdef", stamp, true},
		{"unknown user", "bob@example.test", "s3cret", "", false},
		{"unknown domain", "joe@other.example", "s3cret", "", false},
		{"no domain", "joe", "s3cret", "", false},
		{"empty login", "", "s3cret", "", false},
		{"NUL cannot hide in a login", "joe@example.test\x00x", "s3cret", "", false},
		{"newline in login", "joe@example.test\n", "s3cret", "", false},
		{"control byte in password", "joe@example.test", "s3cret\x01", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Check(s, Request{[]byte(tc.login), []byte(tc.secret), []byte(tc.stamp)})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !strings.HasSuffix(u.Home, "/domains/example.test/"+strings.SplitN(strings.ToLower(tc.login), "@", 2)[0]) && !strings.Contains(tc.login, "%") {
					t.Errorf("home = %s", u.Home)
				}
				return
			}
			if !errors.Is(err, ErrBad) {
				t.Fatalf("err = %v, want ErrBad", err)
			}
		})
	}
}

// Trouble reading the database is temporary, never a login and never a
// "bad password" that would make a client forget a good one.
func TestCheckTemporary(t *testing.T) {
	s := newStore(t)
	shadow := filepath.Join(s.Root(), "domains", "example.test", "shadow")
	if err := os.WriteFile(shadow, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Check(s, Request{[]byte("joe@example.test"), []byte("s3cret"), nil})
	if err == nil || errors.Is(err, ErrBad) {
		t.Fatalf("corrupt shadow: err = %v, want a temporary error", err)
	}
	if !strings.Contains(err.Error(), "domains/example.test/shadow:1") {
		t.Errorf("error %q does not name the file and line", err)
	}
}
