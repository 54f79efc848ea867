package pwhash

import (
	"bytes"
	"strings"
	"testing"
)

// fuzzMaxRounds replaces MaxRounds while fuzzing: the fuzzer easily turns
// "rounds=5000" into "rounds=5000000", which is legal but takes a second or
// more, and would starve the search. The MaxRounds check itself is covered
// by TestVerifyErrors and TestVerifyAcceptsMaxRounds.
const fuzzMaxRounds = 5000

// FuzzVerify checks, for any stored string and password, that Verify does
// not panic, that it reports true only for a hash that crypt(3) would
// reproduce byte for byte, and that a hash made by HashWith (with a salt
// taken from the fuzzed string) verifies for its password and not for
// another. Seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, hash string, password []byte) {
		ok, err := verify(hash, password, fuzzMaxRounds)
		if ok && err != nil {
			t.Fatalf("verify = true with error %v", err)
		}
		if ok {
			p, _, err := parse(hash, fuzzMaxRounds)
			if err != nil {
				t.Fatalf("verified a hash that does not parse: %v", err)
			}
			sum := compute(password, p)
			if again := p.format(&sum); again != hash {
				t.Fatalf("verified %q but crypt(3) would write %q", hash, again)
			}
		}

		// Round trip through HashWith.
		salt := fuzzSalt(hash)
		pw := password[:min(len(password), MaxPasswordLen)]
		rounds := specMinRounds
		if len(hash)%4 == 0 {
			rounds = specDefaultRounds // the form without "rounds="
		}
		h, err := HashWith(pw, salt, rounds)
		if err != nil {
			t.Fatalf("HashWith(%q, %q, %d): %v", pw, salt, rounds, err)
		}
		if ok, err := Verify(h, pw); !ok || err != nil {
			t.Fatalf("Verify(HashWith(%q, %q, %d) = %q) = %v, %v; want true, nil", pw, salt, rounds, h, ok, err)
		}
		wrong := append(bytes.Clone(pw), 0)
		if len(pw) > 0 {
			wrong = bytes.Clone(pw)
			wrong[len(wrong)-1] ^= 1
		}
		if ok, err := Verify(h, wrong); ok || err != nil {
			t.Fatalf("Verify(%q, wrong password %q) = %v, %v; want false, nil", h, wrong, ok, err)
		}
	})
}

// fuzzSalt derives a usable salt (up to 20 bytes, so sometimes truncated)
// from arbitrary input.
func fuzzSalt(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 20; i++ {
		if strings.IndexByte(badSaltBytes, s[i]) < 0 {
			b.WriteByte(s[i])
		}
	}
	if b.Len() == 0 || strings.HasPrefix(b.String(), "rounds=") {
		return "fuzz" + b.String() // HashWith refuses salts that read as a rounds field
	}
	return b.String()
}
