// Package checkpw is quail's checkpassword: DJB's checkpassword interface
// over the virtual user database (package contract).
//
// The caller (qmail-popup, qmail-smtpd's AUTH) writes
// "login\0secret\0timestamp\0" on fd 3, at most 512 bytes. The login is
// USER@DOMAIN (or USER%DOMAIN). The secret is one of:
//   - the clear password (POP3 USER/PASS, SMTP AUTH PLAIN and LOGIN);
//   - an APOP digest: 32 hex digits of MD5(timestamp + password), where
//     the timestamp is the "<pid.time@host>" of qmail-popup's greeting;
//   - a CRAM-MD5 response: 32 hex digits of HMAC-MD5 keyed with the
//     password over the challenge, which travels in the timestamp slot
//     (the order of Hoffmann's SMTP AUTH patch; the older order with the
//     challenge second and the digest third is recognized too).
//
// Digests are checked only for accounts that keep the APOP/CRAM secret,
// and a digest that matches neither is still tried as a clear password.
// All comparisons are constant-time, and an unknown user costs as much
// as a known one, so timing tells nothing about which users exist.
package checkpw

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/pwhash"
)

// MaxInput is the most checkpassword reads from fd 3, as DJB's does.
const MaxInput = 512

// Request is what arrives on fd 3.
type Request struct {
	Login, Secret, Timestamp []byte
}

// Errors of the interface: each maps to an exit status.
var (
	ErrBad    = errors.New("bad login or password")   // exit 1
	ErrMisuse = errors.New("malformed input on fd 3") // exit 2
)

// ParseRequest splits the fd 3 input. The login and the secret must each
// end with a NUL; the timestamp may be absent.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > MaxInput {
		return Request{}, fmt.Errorf("%w: more than %d bytes", ErrBad, MaxInput)
	}
	login, rest, ok := bytes.Cut(b, []byte{0})
	if !ok {
		return Request{}, fmt.Errorf("%w: no NUL after the login", ErrMisuse)
	}
	secret, rest, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return Request{}, fmt.Errorf("%w: no NUL after the password", ErrMisuse)
	}
	ts, _, _ := bytes.Cut(rest, []byte{0})
	return Request{Login: login, Secret: secret, Timestamp: ts}, nil
}

// Check authenticates req against the virtual user database. It returns
// the user on success, an error wrapping ErrBad for wrong credentials,
// and any other error for trouble that may pass (exit 111).
func Check(store *contract.Store, req Request) (contract.User, error) {
	if !printable(req.Login) || !printable(req.Secret) || len(req.Login) == 0 {
		pwhash.Dummy(req.Secret)
		return contract.User{}, fmt.Errorf("%w: control character or empty login", ErrBad)
	}
	u, err := store.LookupUser(string(req.Login))
	if errors.Is(err, contract.ErrNoUser) || errors.Is(err, contract.ErrNoDomain) {
		pwhash.Dummy(req.Secret)
		return contract.User{}, fmt.Errorf("%w: %v", ErrBad, err)
	}
	if err != nil {
		return contract.User{}, err
	}
	cred, err := store.Credential(u)
	if err != nil {
		return contract.User{}, err
	}
	secret, ts := req.Secret, req.Timestamp
	if isDigest(ts) && !isDigest(secret) {
		secret, ts = ts, secret // challenge second, response third
	}
	if cred.Secret != nil && len(ts) > 0 && isDigest(secret) {
		if digestMatches(cred.Secret, secret, ts) {
			return u, nil
		}
	}
	ok, err := pwhash.Verify(cred.Hash, req.Secret)
	if err != nil {
		return contract.User{}, fmt.Errorf("stored hash of %s: %w", u.Address(), err)
	}
	if !ok {
		return contract.User{}, fmt.Errorf("%w: wrong password for %s", ErrBad, u.Address())
	}
	return u, nil
}

// digestMatches checks an APOP digest and a CRAM-MD5 response, both in
// constant time, and does both whatever the first gives.
func digestMatches(password, digest, ts []byte) bool {
	want := make([]byte, hex.DecodedLen(len(digest)))
	if _, err := hex.Decode(want, digest); err != nil {
		return false
	}
	apop := md5.Sum(append(append([]byte{}, ts...), password...))
	mac := hmac.New(md5.New, password)
	mac.Write(ts)
	cram := mac.Sum(nil)
	a := subtle.ConstantTimeCompare(apop[:], want)
	c := subtle.ConstantTimeCompare(cram, want)
	return a|c == 1
}

func isDigest(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// printable refuses control bytes: a NUL or newline must never turn one
// name into another or into a second line of a file.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
