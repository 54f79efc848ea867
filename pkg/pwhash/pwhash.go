// Package pwhash hashes and verifies the passwords of quail's virtual mail
// users.
//
// The only scheme is SHA-512-crypt, the "$6$" method of glibc's crypt(3)
// from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512". Hashes look
// like
//
//	$6$rounds=N$salt$hash        (rounds given)
//	$6$salt$hash                 (rounds omitted: 5000)
//
// with a salt of at most 16 characters and an 86-character hash. That is
// the format of /etc/shadow, of Dovecot's SHA512-CRYPT (after its
// "{SHA512-CRYPT}" prefix) and of vpopmail, so hashes can be moved between
// those systems and quail in both directions. The implementation follows
// the published algorithm and is checked against its test vectors and
// against crypt(3), OpenSSL and mkpasswd (see the tests).
//
// Use Hash to store a new password, Verify to check a login, Dummy to make
// a login for an unknown user cost the same as one for a known user, and
// NeedsRehash to upgrade weak stored hashes after a successful login.
//
// Limits that keep a hostile or corrupt input from costing unbounded CPU:
// stored hashes may ask for at most MaxRounds rounds, and passwords longer
// than MaxPasswordLen bytes are refused (SHA-512-crypt's cost grows with
// the square of the password length).
//
// Passwords are byte strings, hashed as given: no Unicode normalization,
// no trimming. C's crypt(3) stops at a NUL byte, so a password containing
// one hashes differently here than there (SASL PLAIN cannot carry one
// anyway: NUL is its separator).
package pwhash

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultRounds is the number of rounds Hash uses: 6x glibc's default of
// 5000, aiming at 5-10 ms per hash.
//
// Measured with BenchmarkHash (12-byte password) on the development
// machine, a 2-core AMD EPYC VM with Go 1.26.8/amd64, idle: 30000 rounds
// take 6.2-6.6 ms per hash (about 0.21 us per round; 5000 rounds take
// 1.04 ms), and 8-10 ms while other jobs shared the CPUs. Why not more:
// every POP3/IMAP login is one Verify, mail clients log in every few
// minutes, and a server with thousands of mailboxes (or an attacker
// guessing online) pays this per attempt. Why not less: an attacker who
// steals the hashes pays the same per guess, and 1 ms (glibc's 5000) is
// cheap. Longer passwords cost more, since each round hashes the password
// about twice: 1.8x at 64 bytes, 7x (43 ms) at MaxPasswordLen. Retune with
// BenchmarkHashRounds; existing hashes keep verifying with their own
// rounds, and NeedsRehash flags the weaker ones.
const DefaultRounds = 30000

// MaxRounds is the most rounds Verify and HashWith accept. A stored hash
// asking for more is rejected with ErrTooManyRounds instead of being
// computed, so a corrupt or planted hash cannot turn logins into a denial
// of service: the spec allows up to 999,999,999 rounds (about 3.5 minutes
// here), MaxRounds costs about 2.1 s on the machine described at
// DefaultRounds. Hashes in the wild use 5000 (glibc, Dovecot, vpopmail) up
// to 656,000 (the old default of Python's passlib), all well below.
const MaxRounds = 10_000_000

// MaxPasswordLen is the longest password, in bytes, that Hash and HashWith
// accept and that Verify can ever match: the limit of libxcrypt, the
// crypt(3) of current Linux distributions, which refuses passwords of 512
// bytes or more. SHA-512-crypt's setup hashes the password once per byte of
// its length, so the limit also bounds the work a client can cause by
// sending a huge password.
const MaxPasswordLen = 511

// Errors, tested with errors.Is; the returned errors add detail.
var (
	// ErrUnsupportedScheme: the stored hash is not a "$6$" hash.
	ErrUnsupportedScheme = errors.New("pwhash: unsupported scheme")
	// ErrMalformedHash: a "$6$" hash that crypt(3) could not have produced.
	ErrMalformedHash = errors.New("pwhash: malformed $6$ hash")
	// ErrTooManyRounds: rounds above MaxRounds.
	ErrTooManyRounds = errors.New("pwhash: too many rounds")
	// ErrInvalidSalt: a salt HashWith cannot use.
	ErrInvalidSalt = errors.New("pwhash: invalid salt")
	// ErrPasswordTooLong: a password longer than MaxPasswordLen bytes.
	ErrPasswordTooLong = errors.New("pwhash: password too long")
)

// saltLen is the length of the salts Hash generates: the most the scheme uses.
const saltLen = maxSaltLen

// Hash hashes password for storage with DefaultRounds rounds and a fresh
// random 16-character salt, returning "$6$rounds=DefaultRounds$salt$hash".
// It fails only for a password longer than MaxPasswordLen bytes.
func Hash(password []byte) (string, error) {
	salt, err := newSalt()
	if err != nil {
		return "", err
	}
	return HashWith(password, salt, DefaultRounds)
}

// newSalt returns saltLen characters drawn uniformly from the crypt
// alphabet: 96 bits from crypto/rand.
func newSalt() (string, error) {
	var b [saltLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pwhash: reading random salt: %w", err)
	}
	for i, r := range b {
		b[i] = cryptAlphabet[r&0x3f] // 256 is a multiple of 64: uniform
	}
	return string(b[:]), nil
}

// HashWith hashes password with the given salt and rounds, for tests and
// for reproducing hashes made elsewhere.
//
// As the spec says, only the first 16 bytes of salt are used, and rounds
// below 1000 are raised to 1000. The result carries "rounds=N$" unless N is
// 5000, the value the format implies when the field is absent. Errors: a
// salt that is empty or contains '$', ':', a newline or a NUL byte
// (ErrInvalidSalt: '$' ends the salt in the format, ':' and newline break
// /etc/shadow and passwd-file lines, NUL cannot pass through C's crypt(3)),
// rounds above MaxRounds (ErrTooManyRounds), and a password longer than
// MaxPasswordLen bytes (ErrPasswordTooLong). Salts should come from the
// crypt alphabet "./0-9A-Za-z"; other bytes are accepted as the spec
// allows, but some crypt(3) implementations refuse them.
func HashWith(password []byte, salt string, rounds int) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrPasswordTooLong, len(password), MaxPasswordLen)
	}
	if salt == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidSalt)
	}
	if i := strings.IndexAny(salt, badSaltBytes); i >= 0 {
		return "", fmt.Errorf("%w: contains %q", ErrInvalidSalt, salt[i])
	}
	if strings.HasPrefix(salt, "rounds=") {
		// Written without an explicit rounds field (5000), it would read
		// back as one: "$6$rounds=1000x$..." is 1000 rounds, not a salt.
		return "", fmt.Errorf("%w: begins with \"rounds=\"", ErrInvalidSalt)
	}
	if len(salt) > maxSaltLen {
		salt = salt[:maxSaltLen]
	}
	if rounds > MaxRounds {
		return "", fmt.Errorf("%w: %d, limit %d", ErrTooManyRounds, rounds, MaxRounds)
	}
	rounds = max(rounds, specMinRounds)
	p := params{salt: salt, rounds: rounds, explicitRounds: rounds != specDefaultRounds}
	sum := compute(password, p)
	return p.format(&sum), nil
}

// badSaltBytes may not occur in a salt.
const badSaltBytes = "$:\n\x00"

// Verify reports whether password matches the stored hash.
//
// hash must be a complete "$6$[rounds=N$]salt$hash" string exactly as
// crypt(3) writes it; Verify returns true only if crypt(3) run on password
// with hash as setting would reproduce hash byte for byte. A wrong password
// is (false, nil); so is a password longer than MaxPasswordLen, which no
// accepted hash can match. err is non-nil only when the stored hash cannot
// be used: another scheme (ErrUnsupportedScheme), a damaged $6$ string
// (ErrMalformedHash, including rounds below 1000 or with leading zeros,
// which crypt(3) never writes, and salts over 16 bytes), or more than
// MaxRounds rounds (ErrTooManyRounds). Errors never quote the stored hash
// beyond its scheme id, so they are safe to log.
//
// Verify never panics, and its work is bounded by MaxRounds and
// MaxPasswordLen. The final comparison is constant-time.
func Verify(hash string, password []byte) (ok bool, err error) {
	return verify(hash, password, MaxRounds)
}

// verify is Verify with the rounds limit as a parameter (the fuzz test
// lowers it to keep each input fast).
func verify(hash string, password []byte, maxRounds int) (bool, error) {
	p, stored, err := parse(hash, maxRounds)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	sum := compute(password, p)
	return subtle.ConstantTimeCompare(sum[:], []byte(stored)) == 1, nil
}

// dummyHash is a well-formed hash with DefaultRounds and a 16-byte salt,
// the shape of every hash Hash makes. Its hash part (an all-zero digest)
// matches no password anyone can find.
var dummyHash = "$6$rounds=" + strconv.Itoa(DefaultRounds) + "$quail.dummy.salt$" +
	strings.Repeat(".", encodedLen)

// Dummy does the work of Verify against a hash made by Hash (DefaultRounds
// rounds, 16-byte salt) and discards the result. Call it when the user
// does not exist, with the password the client sent, so that a login for
// an unknown user takes as long as a failed login for a known one and
// response times do not tell an attacker which users exist:
//
//	hash, found := lookup(user)
//	if !found {
//		pwhash.Dummy(password)
//		return errAuthFailed
//	}
//	ok, err := pwhash.Verify(hash, password)
//
// The match is exact only for stored hashes with DefaultRounds; users whose
// imported hashes use other rounds (say glibc's 5000) take a different time,
// which NeedsRehash and rehashing on the next login remove.
func Dummy(password []byte) {
	_, _ = verify(dummyHash, password, MaxRounds)
}

// NeedsRehash reports whether a stored hash should be replaced by
// Hash(password) the next time the user logs in successfully: when it uses
// fewer than DefaultRounds rounds, or is not a usable $6$ hash at all.
func NeedsRehash(hash string) bool {
	p, _, err := parse(hash, MaxRounds)
	return err != nil || p.rounds < DefaultRounds
}

// parse splits a stored hash into its setting and its 86-character hash
// part, accepting only what crypt(3) itself writes.
func parse(hash string, maxRounds int) (params, string, error) {
	if !strings.HasPrefix(hash, schemePrefix) {
		return params{}, "", schemeError(hash)
	}
	rest := hash[len(schemePrefix):]
	p := params{rounds: specDefaultRounds}

	if num, ok := strings.CutPrefix(rest, roundsPrefix); ok {
		end := strings.IndexByte(num, '$')
		if end < 0 {
			return params{}, "", fmt.Errorf("%w: no '$' after rounds", ErrMalformedHash)
		}
		digits := num[:end]
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return params{}, "", fmt.Errorf("%w: rounds is not a decimal number", ErrMalformedHash)
		}
		if digits[0] == '0' {
			return params{}, "", fmt.Errorf("%w: rounds has a leading zero", ErrMalformedHash)
		}
		// More than 10 digits is far beyond any limit, and 10 digits fit
		// an int64, so Atoi cannot fail here.
		n, err := strconv.Atoi(digits)
		if len(digits) > 10 || err != nil || n > maxRounds {
			return params{}, "", fmt.Errorf("%w: rounds=%.12s, limit %d", ErrTooManyRounds, digits, maxRounds)
		}
		if n < specMinRounds {
			return params{}, "", fmt.Errorf("%w: rounds=%d below the minimum %d", ErrMalformedHash, n, specMinRounds)
		}
		p.rounds = n
		p.explicitRounds = true
		rest = num[end+1:]
	}

	end := strings.IndexByte(rest, '$')
	if end < 0 {
		return params{}, "", fmt.Errorf("%w: no '$' after the salt", ErrMalformedHash)
	}
	p.salt = rest[:end]
	if len(p.salt) > maxSaltLen {
		return params{}, "", fmt.Errorf("%w: salt longer than %d bytes", ErrMalformedHash, maxSaltLen)
	}
	if strings.ContainsAny(p.salt, badSaltBytes) {
		return params{}, "", fmt.Errorf("%w: salt contains ':', newline or NUL", ErrMalformedHash)
	}
	stored := rest[end+1:]
	if len(stored) != encodedLen {
		return params{}, "", fmt.Errorf("%w: hash part is %d bytes, want %d", ErrMalformedHash, len(stored), encodedLen)
	}
	for i := 0; i < len(stored); i++ {
		if strings.IndexByte(cryptAlphabet, stored[i]) < 0 {
			return params{}, "", fmt.Errorf("%w: hash part has a byte outside [./0-9A-Za-z]", ErrMalformedHash)
		}
	}
	return p, stored, nil
}

// schemeError describes a hash that does not start with "$6$", quoting at
// most a short, harmless scheme id.
func schemeError(hash string) error {
	if after, ok := strings.CutPrefix(hash, "$"); ok {
		if id, _, ok := strings.Cut(after, "$"); ok && isSchemeID(id) {
			return fmt.Errorf("%w %q (only $6$ SHA-512-crypt)", ErrUnsupportedScheme, "$"+id+"$")
		}
	}
	return fmt.Errorf(`%w (not a "$id$..." crypt string; only $6$ SHA-512-crypt)`, ErrUnsupportedScheme)
}

// isSchemeID reports whether id looks like a crypt scheme id ("1", "2b",
// "y", "sha1", "argon2id") and is thus safe to quote in an error.
func isSchemeID(id string) bool {
	if id == "" || len(id) > 10 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
