package pwhash

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cryptSpec is crypt(3) as the spec describes it for a "$6$" setting:
// optional "rounds=N$" (clamped to [1000, 999999999], echoed in the output
// whenever present), then the salt up to the next '$' or the end, of which
// only the first 16 bytes count. The tests use it to run the published
// vectors and the cross-checks exactly as written.
func cryptSpec(t testing.TB, password []byte, setting string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(setting, schemePrefix)
	if !ok {
		t.Fatalf("setting %q does not start with $6$", setting)
	}
	p := params{rounds: specDefaultRounds}
	if num, ok := strings.CutPrefix(rest, roundsPrefix); ok {
		if digits, after, ok := strings.Cut(num, "$"); ok {
			n, err := strconv.Atoi(digits)
			if err != nil {
				t.Fatalf("setting %q: %v", setting, err)
			}
			p.rounds = min(max(n, specMinRounds), specMaxRounds)
			p.explicitRounds = true
			rest = after
		}
	}
	salt, _, _ := strings.Cut(rest, "$")
	p.salt = salt[:min(len(salt), maxSaltLen)]
	sum := compute(password, p)
	return p.format(&sum)
}

// drepperVectors are all SHA-512 test vectors of Drepper's "Unix crypt
// using SHA-256 and SHA-512" (setting, password, expected crypt output).
// They cover the default and explicit rounds, rounds below the minimum, a
// salt longer than 16 bytes, a salt of exactly 16 and a short one, and a
// password (84 bytes) longer than one 64-byte block.
var drepperVectors = []struct{ setting, password, want string }{
	{"$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
}

func TestDrepperVectors(t *testing.T) {
	for _, v := range drepperVectors {
		t.Run(v.setting, func(t *testing.T) {
			pw := []byte(v.password)
			if got := cryptSpec(t, pw, v.setting); got != v.want {
				t.Fatalf("crypt(%q, %q)\n got %s\nwant %s", v.password, v.setting, got, v.want)
			}
			ok, err := Verify(v.want, pw)
			if err != nil || !ok {
				t.Fatalf("Verify(vector, right password) = %v, %v; want true, nil", ok, err)
			}
			ok, err = Verify(v.want, append(pw, '!'))
			if err != nil || ok {
				t.Fatalf("Verify(vector, wrong password) = %v, %v; want false, nil", ok, err)
			}

			// HashWith reproduces the vector, except that it leaves out
			// "rounds=5000$" (the one rounds value it never writes).
			p, _, err := parse(v.want, MaxRounds)
			if err != nil {
				t.Fatal(err)
			}
			got, err := HashWith(pw, p.salt, p.rounds)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Replace(v.want, "$rounds=5000$", "$", 1); got != want {
				t.Fatalf("HashWith(%q, %q, %d)\n got %s\nwant %s", v.password, p.salt, p.rounds, got, want)
			}
		})
	}
}

// libxcryptVectors come from crypt(3) of libxcrypt 4.4.33 (Debian 12, via
// Python's crypt module): an empty salt, a 3-byte salt, and a password of
// MaxPasswordLen bytes, the longest libxcrypt accepts.
var libxcryptVectors = []struct{ password, hash string }{
	{"x", "$6$$KvRrc0bxRLyTUhO8OJOmRczh7oCol5BACiR8rmdfVzvuGgm8JmLDumsL/ah.jFtT.DswxoP9Nv3ByfU4j5hm/0"},
	{"x", "$6$rounds=1000$abc$zaWpAwySRl8PX4W2aEMJwxpN82bCKtDZP0RBdOD6W7BQlilBqAsWnAZuS10iUyJZneS8Ob1gxs1BZkqJi1nTi."},
	{strings.Repeat("x", 511), "$6$rounds=1000$abc$Vj3d/5d9oCHFt5rubeJgZLpJ0NN8VU.EBFskYA14K8KvKaBuSHIkMY6HFOppSVcX0hQNLF1/Rxycsq3N5f40N1"},
}

func TestLibxcryptVectors(t *testing.T) {
	for _, v := range libxcryptVectors {
		ok, err := Verify(v.hash, []byte(v.password))
		if err != nil || !ok {
			t.Errorf("Verify(%s, %d-byte password) = %v, %v; want true, nil", v.hash, len(v.password), ok, err)
		}
	}
}

var hashRE = regexp.MustCompile(`^\$6\$rounds=` + strconv.Itoa(DefaultRounds) + `\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$`)

func TestHash(t *testing.T) {
	pw := []byte("correct horse battery staple")
	h1, err := Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if !hashRE.MatchString(h) {
			t.Errorf("Hash = %q; want %s", h, hashRE)
		}
		if ok, err := Verify(h, pw); !ok || err != nil {
			t.Errorf("Verify(Hash(pw), pw) = %v, %v; want true, nil", ok, err)
		}
		if ok, err := Verify(h, []byte("correct horse battery stapler")); ok || err != nil {
			t.Errorf("Verify(Hash(pw), wrong) = %v, %v; want false, nil", ok, err)
		}
		if NeedsRehash(h) {
			t.Errorf("NeedsRehash(Hash(pw)) = true")
		}
	}
	if salt := len("$6$rounds=" + strconv.Itoa(DefaultRounds) + "$0123456789abcdef"); h1[:salt] == h2[:salt] {
		t.Errorf("two calls of Hash used the same salt: %s, %s", h1, h2)
	}
	if _, err := Hash(make([]byte, MaxPasswordLen+1)); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("Hash(too long) err = %v; want ErrPasswordTooLong", err)
	}
	if _, err := Hash(make([]byte, MaxPasswordLen)); err != nil {
		t.Errorf("Hash(MaxPasswordLen bytes) err = %v", err)
	}
}

func TestNewSalt(t *testing.T) {
	// 100 salts are 1600 characters; a uniform draw misses one of the 64
	// characters with probability about 64*(63/64)^1600 < 1e-9.
	seen := map[rune]int{}
	for range 100 {
		s, err := newSalt()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 16 || strings.Trim(s, cryptAlphabet) != "" {
			t.Fatalf("newSalt() = %q; want 16 characters of %s", s, cryptAlphabet)
		}
		for _, c := range s {
			seen[c]++
		}
	}
	if len(seen) != len(cryptAlphabet) {
		t.Errorf("100 salts use %d of the %d characters: %v", len(seen), len(cryptAlphabet), seen)
	}
}

func TestHashWith(t *testing.T) {
	pw := []byte("pw")
	rest := func(h string) string { // the hash without its last 86 bytes
		return h[:len(h)-encodedLen]
	}
	for _, tc := range []struct {
		salt   string
		rounds int
		prefix string
	}{
		{"saltstring", 5000, "$6$saltstring$"}, // 5000 is implied
		{"saltstring", 5001, "$6$rounds=5001$saltstring$"},
		{"saltstring", 1000, "$6$rounds=1000$saltstring$"},
		{"saltstring", 999, "$6$rounds=1000$saltstring$"}, // raised to the minimum
		{"saltstring", 0, "$6$rounds=1000$saltstring$"},
		{"saltstring", -7, "$6$rounds=1000$saltstring$"},
		{"0123456789abcdefXYZ", 1000, "$6$rounds=1000$0123456789abcdef$"}, // truncated
		{"a", 1000, "$6$rounds=1000$a$"},
		{"ä b*!", 1000, "$6$rounds=1000$ä b*!$"}, // the spec allows any byte but '$'
	} {
		h, err := HashWith(pw, tc.salt, tc.rounds)
		if err != nil {
			t.Errorf("HashWith(%q, %d): %v", tc.salt, tc.rounds, err)
			continue
		}
		if rest(h) != tc.prefix {
			t.Errorf("HashWith(%q, %d) = %s; want prefix %s", tc.salt, tc.rounds, h, tc.prefix)
		}
		if ok, err := Verify(h, pw); !ok || err != nil {
			t.Errorf("Verify(%s) = %v, %v; want true, nil", h, ok, err)
		}
	}

	for _, salt := range []string{"", "a$b", "$", "a:b", "a\nb", "a\x00b", "0123456789abcdefgh$", "rounds=1000rounds", "rounds="} {
		if _, err := HashWith(pw, salt, 1000); !errors.Is(err, ErrInvalidSalt) {
			t.Errorf("HashWith(salt %q) err = %v; want ErrInvalidSalt", salt, err)
		}
	}
	if _, err := HashWith(pw, "salt", MaxRounds+1); !errors.Is(err, ErrTooManyRounds) {
		t.Errorf("HashWith(MaxRounds+1) err = %v; want ErrTooManyRounds", err)
	}
	if _, err := HashWith(make([]byte, MaxPasswordLen+1), "salt", 1000); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("HashWith(too long) err = %v; want ErrPasswordTooLong", err)
	}
}

// mustNotPanic runs Verify and fails the test, rather than crashing it, if
// Verify panics.
func mustNotPanic(t *testing.T, hash string, pw []byte) (ok bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Verify(%q) panicked: %v", hash, r)
		}
	}()
	return Verify(hash, pw)
}

// verifyWithin runs Verify on another goroutine and fails the test if it
// has not returned within limit, so that a broken work bound fails the
// test quickly instead of hanging it for minutes.
func verifyWithin(t *testing.T, limit time.Duration, hash string, pw []byte) (ok bool, err error) {
	t.Helper()
	type result struct {
		ok    bool
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panic = recover()
			done <- r
		}()
		r.ok, r.err = Verify(hash, pw)
	}()
	select {
	case r := <-done:
		if r.panic != nil {
			t.Fatalf("Verify(%.80q) panicked: %v", hash, r.panic)
		}
		return r.ok, r.err
	case <-time.After(limit):
		t.Fatalf("Verify(%.80q, %d-byte password) still running after %v", hash, len(pw), limit)
		return false, nil
	}
}

func TestVerifyMutations(t *testing.T) {
	pw := []byte("correct horse")
	rounds1000, err := HashWith(pw, "mutationSalt", 1000)
	if err != nil {
		t.Fatal(err)
	}
	implied5000 := drepperVectors[0].want // "$6$saltstring$..."
	for _, tc := range []struct {
		hash string
		pw   []byte
	}{
		{rounds1000, pw},
		{implied5000, []byte(drepperVectors[0].password)},
	} {
		h := tc.hash
		if ok, err := mustNotPanic(t, h, tc.pw); !ok || err != nil {
			t.Fatalf("Verify(%s) = %v, %v; want true, nil", h, ok, err)
		}
		// Every proper prefix is malformed.
		for i := range len(h) {
			ok, err := mustNotPanic(t, h[:i], tc.pw)
			if ok || err == nil {
				t.Errorf("Verify(prefix %q) = %v, %v; want false and an error", h[:i], ok, err)
			}
		}
		// Every single-bit flip either fails to parse or does not match.
		for i := range len(h) {
			for bit := range 8 {
				b := []byte(h)
				b[i] ^= 1 << bit
				if ok, _ := mustNotPanic(t, string(b), tc.pw); ok {
					t.Errorf("Verify(%q), byte %d bit %d flipped, = true", b, i, bit)
				}
			}
		}
		// Additions around the hash are not crypt(3) output.
		for _, m := range []string{h + "\n", h + ".", " " + h, h + "$", "!" + h, "{SHA512-CRYPT}" + h} {
			if ok, err := mustNotPanic(t, m, tc.pw); ok || err == nil {
				t.Errorf("Verify(%q) = %v, %v; want false and an error", m, ok, err)
			}
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	dots := strings.Repeat(".", encodedLen)
	for _, tc := range []struct {
		hash string
		want error
	}{
		{"", ErrUnsupportedScheme},
		{"hunter2", ErrUnsupportedScheme},
		{"$1$abcdefgh$4bmvkABHUDQ.CnVNsHiuu/", ErrUnsupportedScheme},
		{"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", ErrUnsupportedScheme},
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF4p/JLE1", ErrUnsupportedScheme},
		{"$y$j9T$salt$hash", ErrUnsupportedScheme},
		{"{SHA512-CRYPT}$6$salt$" + dots, ErrUnsupportedScheme},
		{"!$6$salt$" + dots, ErrUnsupportedScheme},
		{"*", ErrUnsupportedScheme},
		{"$6", ErrUnsupportedScheme},
		{"$6$", ErrMalformedHash},
		{"$6$salt", ErrMalformedHash},
		{"$6$salt$", ErrMalformedHash},
		{"$6$salt$" + dots[1:], ErrMalformedHash},
		{"$6$salt$" + dots + ".", ErrMalformedHash},
		{"$6$salt$" + dots[1:] + "*", ErrMalformedHash},
		{"$6$salt$" + dots[1:] + "\xff", ErrMalformedHash},
		{"$6$salt$" + dots + "\n", ErrMalformedHash},
		{"$6$salt$" + dots + "$", ErrMalformedHash},
		{"$6$0123456789abcdefg$" + dots, ErrMalformedHash}, // 17-byte salt
		{"$6$sa:lt$" + dots, ErrMalformedHash},
		{"$6$sa\nlt$" + dots, ErrMalformedHash},
		{"$6$sa\x00lt$" + dots, ErrMalformedHash},
		{"$6$rounds=$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=5000", ErrMalformedHash},
		{"$6$rounds=5000$", ErrMalformedHash},
		{"$6$rounds=5000$salt", ErrMalformedHash},
		{"$6$rounds=abc$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=-5000$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=+5000$salt$" + dots, ErrMalformedHash},
		{"$6$rounds= 5000$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=5000 $salt$" + dots, ErrMalformedHash},
		{"$6$rounds=0x1388$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=05000$salt$" + dots, ErrMalformedHash}, // crypt(3) writes no leading zero
		{"$6$rounds=0$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=10$salt$" + dots, ErrMalformedHash}, // crypt(3) would write rounds=1000
		{"$6$rounds=999$salt$" + dots, ErrMalformedHash},
		{"$6$rounds=10000001$salt$" + dots, ErrTooManyRounds},
		{"$6$rounds=999999999$salt$" + dots, ErrTooManyRounds},
		{"$6$rounds=1000000000$salt$" + dots, ErrTooManyRounds},
		{"$6$rounds=9223372036854775807$salt$" + dots, ErrTooManyRounds},
		{"$6$rounds=18446744073709551617$salt$" + dots, ErrTooManyRounds},
		{"$6$rounds=" + strings.Repeat("9", 10000) + "$salt$" + dots, ErrTooManyRounds},
	} {
		// Rejection comes from parsing alone, with no hashing at all
		// (microseconds); the limit only catches a missing bound.
		ok, err := verifyWithin(t, time.Second, tc.hash, []byte("pw"))
		if ok || !errors.Is(err, tc.want) {
			t.Errorf("Verify(%.80q) = %v, %v; want false, %v", tc.hash, ok, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "salt$") {
			t.Errorf("error quotes the stored hash: %v", err)
		}
	}

	_, err := Verify("$1$abcdefgh$4bmvkABHUDQ.CnVNsHiuu/", []byte("pw"))
	if want := `pwhash: unsupported scheme "$1$" (only $6$ SHA-512-crypt)`; err == nil || err.Error() != want {
		t.Errorf("error for $1$ = %v; want %s", err, want)
	}
	_, err = Verify("plaintext-password-by-mistake", []byte("pw"))
	if err == nil || strings.Contains(err.Error(), "plaintext") {
		t.Errorf("error for a non-crypt string = %v; want one that does not quote it", err)
	}
}

func TestVerifyAcceptsMaxRounds(t *testing.T) {
	// The limit is inclusive; prove it with the (cheap) unexported form,
	// since MaxRounds itself costs seconds.
	h, err := HashWith([]byte("pw"), "salt", 2000)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := verify(h, []byte("pw"), 2000); !ok || err != nil {
		t.Errorf("verify at the limit = %v, %v; want true, nil", ok, err)
	}
	if ok, err := verify(h, []byte("pw"), 1999); ok || !errors.Is(err, ErrTooManyRounds) {
		t.Errorf("verify above the limit = %v, %v; want false, ErrTooManyRounds", ok, err)
	}
}

func TestVerifyLongPassword(t *testing.T) {
	long := bytes.Repeat([]byte("x"), MaxPasswordLen)
	h, err := HashWith(long, "salt", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(h, long); !ok || err != nil {
		t.Errorf("Verify(MaxPasswordLen) = %v, %v; want true, nil", ok, err)
	}
	// One byte more cannot match anything and is not even hashed (a
	// megabyte would otherwise mean hashing a terabyte).
	for _, n := range []int{MaxPasswordLen + 1, 1 << 20} {
		if ok, err := verifyWithin(t, time.Second, h, bytes.Repeat([]byte("x"), n)); ok || err != nil {
			t.Errorf("Verify(%d-byte password) = %v, %v; want false, nil", n, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	dots := strings.Repeat(".", encodedLen)
	for _, tc := range []struct {
		hash string
		want bool
	}{
		{"$6$rounds=" + strconv.Itoa(DefaultRounds) + "$salt$" + dots, false},
		{"$6$rounds=" + strconv.Itoa(DefaultRounds+1) + "$salt$" + dots, false},
		{"$6$rounds=" + strconv.Itoa(DefaultRounds-1) + "$salt$" + dots, true},
		{"$6$salt$" + dots, DefaultRounds > 5000},
		{"$1$abcdefgh$4bmvkABHUDQ.CnVNsHiuu/", true},
		{"garbage", true},
	} {
		if got := NeedsRehash(tc.hash); got != tc.want {
			t.Errorf("NeedsRehash(%.40s) = %v; want %v", tc.hash, got, tc.want)
		}
	}
}

// TestDummyCost checks that Dummy costs about what Verify of a Hash result
// costs, for a short and a long password. It compares the fastest of
// several runs, which noise on a busy machine only ever slows down.
func TestDummyCost(t *testing.T) {
	fastest := func(f func()) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 5 {
			start := time.Now()
			f()
			best = min(best, time.Since(start))
		}
		return best
	}
	for _, pw := range [][]byte{[]byte("short"), bytes.Repeat([]byte("long"), 100)} {
		h, err := Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		wrong := append(bytes.Clone(pw[1:]), 'x') // same length, wrong
		v := fastest(func() {
			if ok, _ := Verify(h, wrong); ok {
				t.Fatal("wrong password verified")
			}
		})
		d := fastest(func() { Dummy(wrong) })
		ratio := float64(d) / float64(v)
		t.Logf("%d-byte password: Verify %v, Dummy %v (ratio %.2f)", len(pw), v, d, ratio)
		if ratio < 0.5 || ratio > 2 {
			t.Errorf("%d-byte password: Dummy takes %v but Verify %v", len(pw), d, v)
		}
	}
	if ok, err := verify(dummyHash, []byte(""), MaxRounds); ok || err != nil {
		t.Errorf("verify(dummyHash) = %v, %v; want false, nil (it must parse)", ok, err)
	}
}

var benchPassword = []byte("hunter2-xkcd") // 12 bytes

func reportMillis(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/1e6, "ms/op")
}

// BenchmarkHash measures the cost of one hash at DefaultRounds; it is the
// figure DefaultRounds is tuned to (5-10 ms).
func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash(benchPassword); err != nil {
			b.Fatal(err)
		}
	}
	reportMillis(b)
}

// BenchmarkHashRounds compares other rounds counts, for retuning.
func BenchmarkHashRounds(b *testing.B) {
	for _, rounds := range []int{5000, DefaultRounds} {
		for _, pwLen := range []int{12, 64, MaxPasswordLen} {
			pw := bytes.Repeat([]byte("p"), pwLen)
			b.Run(fmt.Sprintf("rounds=%d/pw=%d", rounds, pwLen), func(b *testing.B) {
				for b.Loop() {
					if _, err := HashWith(pw, "0123456789abcdef", rounds); err != nil {
						b.Fatal(err)
					}
				}
				reportMillis(b)
			})
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := Hash(benchPassword)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := Verify(h, benchPassword); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	reportMillis(b)
}

func BenchmarkDummy(b *testing.B) {
	for b.Loop() {
		Dummy(benchPassword)
	}
	reportMillis(b)
}
