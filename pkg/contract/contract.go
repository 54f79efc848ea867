// Package contract keeps the hosting contracts of an instance: the hosted
// domains, their mailboxes and passwords, their disk quotas and IP
// addresses (SPEC §8).
//
// On disk, everything is a plain file an admin can read:
//
//	control/rcpthosts       the domain, so qmail-smtpd accepts its mail
//	control/virtualdomains  DOMAIN:DOMAIN, so qmail-send delivers it
//	                        locally as DOMAIN-user (qmail's prefixing)
//	control/quotas          DOMAIN:BYTES, one disk allowance per contract
//	control/contractips     DOMAIN:ADDRESS, the contract's own addresses
//	domains/DOMAIN/passwd   NAME:DIR per mailbox, world-readable: who
//	                        exists, for delivery and the RCPT check
//	domains/DOMAIN/shadow   NAME:HASH:SECRET, readable by root only: the
//	                        SHA-512-crypt hash, and for accounts with
//	                        APOP/CRAM-MD5 the secret those need
//	domains/DOMAIN/DIR/Maildir/
//
// Every change runs under one lock (run/qmailctl.lock), so two admins at
// once lose nothing, and replaces each file atomically (package
// atomicfile). A change that touches several files orders them so that
// a crash between two leaves nothing that accepts mail it cannot deliver:
// a domain is added to rcpthosts last and removed from it first; a user
// gets credentials before it appears in passwd and loses them after.
package contract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Store is the contract data of one instance.
type Store struct {
	root string
}

// New returns the store of the instance at root.
func New(root string) *Store { return &Store{root: root} }

// Root is the instance root.
func (s *Store) Root() string { return s.root }

func (s *Store) controlPath(name string) string { return filepath.Join(s.root, "control", name) }
func (s *Store) domainDir(domain string) string { return filepath.Join(s.root, "domains", domain) }

// Lock takes the instance's admin lock, waiting for another holder to
// finish, and returns the function that releases it.
func (s *Store) Lock() (unlock func(), err error) {
	dir := filepath.Join(s.root, "run")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "qmailctl.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Errors that callers tell apart.
var (
	ErrNoDomain = errors.New("no such domain")
	ErrNoUser   = errors.New("no such user")
	ErrExists   = errors.New("already exists")
)

// NormalizeDomain lower-cases a domain name and checks it is a plain DNS
// name (ASCII labels of letters, digits and hyphens; IDNs in their xn--
// form), so it is safe as a directory name and a control-file entry.
func NormalizeDomain(d string) (string, error) {
	d = strings.ToLower(d)
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("domain %q: want 1 to 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("domain %q: empty or overlong label (want labels of 1 to 63 characters between single dots)", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("domain %q: a label may not begin or end with '-'", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("domain %q: %q is not allowed (letters, digits, '-' and '.'; write IDNs as xn--)", d, c)
			}
		}
	}
	if !strings.Contains(d, ".") {
		return "", fmt.Errorf("domain %q: want a fully qualified name such as example.com", d)
	}
	return d, nil
}

// NormalizeUser lower-cases a mailbox name and checks it: letters,
// digits, '.', '_' and '-', starting with a letter or digit, at most 64
// characters. Local parts are compared without case, as qmail does.
func NormalizeUser(u string) (string, error) {
	u = strings.ToLower(u)
	if u == "" || len(u) > 64 {
		return "", fmt.Errorf("user %q: want 1 to 64 characters", u)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return "", fmt.Errorf("user %q: must start with a letter or digit", u)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return "", fmt.Errorf("user %q: %q is not allowed (letters, digits, '.', '_', '-')", u, c)
		}
	}
	return u, nil
}

// SplitAddress splits USER@DOMAIN (or USER%DOMAIN, for POP3 clients that
// cannot send '@') and normalizes both parts.
func SplitAddress(addr string) (user, domain string, err error) {
	i := strings.LastIndexAny(addr, "@%")
	if i < 0 {
		return "", "", fmt.Errorf("address %q: want USER@DOMAIN", addr)
	}
	if user, err = NormalizeUser(addr[:i]); err != nil {
		return "", "", err
	}
	if domain, err = NormalizeDomain(addr[i+1:]); err != nil {
		return "", "", err
	}
	return user, domain, nil
}
