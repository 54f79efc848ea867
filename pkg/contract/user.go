package contract

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/pwhash"
	"github.com/quail-mta/quail/pkg/sysfile"
)

// User is a mailbox found by LookupUser.
type User struct {
	Name, Domain string
	Home         string // absolute; the Maildir is Home/Maildir/
}

// Address is the user's mail address.
func (u User) Address() string { return u.Name + "@" + u.Domain }

// CheckPassword refuses passwords that could not travel in a POP3 or SMTP
// AUTH exchange or in checkpassword's 512-byte input: empty, longer than
// 256 bytes, or holding control characters.
func CheckPassword(pw []byte) error {
	if len(pw) == 0 {
		return errors.New("the password is empty")
	}
	if len(pw) > 256 {
		return errors.New("the password is longer than 256 bytes")
	}
	for _, c := range pw {
		if c < 0x20 || c == 0x7f {
			return errors.New("the password holds a control character")
		}
	}
	return nil
}

// AddUser creates a mailbox with its password. With apop, the clear
// secret that APOP and CRAM-MD5 need is kept too, in the root-only shadow.
func (s *Store) AddUser(addr string, password []byte, apop bool) error {
	name, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	cred, err := newCredential(name, password, apop)
	if err != nil {
		return err
	}
	owner, err := privsep.Lookup(privsep.Virtual)
	if err != nil {
		return err
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	mailboxes, err := s.mailboxes(domain)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(mailboxes, func(m Mailbox) bool { return m.Name == name }) {
		return fmt.Errorf("user %s@%s: %w", name, domain, ErrExists)
	}
	mb := Mailbox{Name: name, Dir: name}
	if err := makeMaildir(filepath.Join(s.domainDir(domain), mb.Dir), owner); err != nil {
		return fmt.Errorf("user %s@%s: %w", name, domain, err)
	}
	// Credentials first: a user in passwd always has them.
	if err := s.updateShadow(domain, func(c []Credential) []Credential {
		return append(deleteName(c, name), cred)
	}); err != nil {
		return err
	}
	return s.writePasswd(domain, append(mailboxes, mb))
}

// SetPassword changes a user's password. apop says whether to keep the
// APOP/CRAM-MD5 secret; nil keeps the account's current choice.
func (s *Store) SetPassword(addr string, password []byte, apop *bool) error {
	name, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.lookup(name, domain); err != nil {
		return err
	}
	creds, err := s.credentials(domain)
	if err != nil {
		return err
	}
	keep := false
	if i := slices.IndexFunc(creds, func(c Credential) bool { return c.Name == name }); i >= 0 {
		keep = creds[i].Secret != nil
	}
	if apop != nil {
		keep = *apop
	}
	cred, err := newCredential(name, password, keep)
	if err != nil {
		return err
	}
	return s.updateShadow(domain, func(c []Credential) []Credential {
		return append(deleteName(c, name), cred)
	})
}

// DelUser removes a mailbox, its credentials and its mail.
func (s *Store) DelUser(addr string) error {
	name, domain, err := SplitAddress(addr)
	if err != nil {
		return err
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	mailboxes, err := s.mailboxes(domain)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(mailboxes, func(m Mailbox) bool { return m.Name == name })
	if i < 0 {
		return fmt.Errorf("user %s@%s: %w", name, domain, ErrNoUser)
	}
	dir := mailboxes[i].Dir
	// First out of passwd: from here on mail for the user is refused.
	if err := s.writePasswd(domain, slices.Delete(mailboxes, i, i+1)); err != nil {
		return err
	}
	if err := s.updateShadow(domain, func(c []Credential) []Credential { return deleteName(c, name) }); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.domainDir(domain), dir)); err != nil {
		return err
	}
	return atomicfile.SyncDir(s.domainDir(domain))
}

// Users lists the mailbox names of a domain, in the order they were added.
func (s *Store) Users(domain string) ([]string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	mailboxes, err := s.mailboxes(d)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(mailboxes))
	for i, m := range mailboxes {
		names[i] = m.Name
	}
	return names, nil
}

// LookupUser finds the mailbox of USER@DOMAIN: ErrNoDomain or ErrNoUser
// when there is none. It reads only world-readable files, so qmail-smtpd's
// recipient check and local delivery can share it.
func (s *Store) LookupUser(addr string) (User, error) {
	name, domain, err := SplitAddress(addr)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrNoUser, err)
	}
	return s.lookup(name, domain)
}

func (s *Store) lookup(name, domain string) (User, error) {
	mailboxes, err := s.mailboxes(domain)
	if err != nil {
		return User{}, err
	}
	for _, m := range mailboxes {
		if m.Name == name {
			return User{Name: name, Domain: domain, Home: filepath.Join(s.domainDir(domain), m.Dir)}, nil
		}
	}
	return User{}, fmt.Errorf("user %s@%s: %w", name, domain, ErrNoUser)
}

// Credential returns the stored credential of a user found by LookupUser.
// Only root (or the instance's owner, in single-user mode) can read it.
func (s *Store) Credential(u User) (Credential, error) {
	creds, err := s.credentials(u.Domain)
	if err != nil {
		return Credential{}, err
	}
	for _, c := range creds {
		if c.Name == u.Name {
			return c, nil
		}
	}
	return Credential{}, fmt.Errorf("user %s has no entry in domains/%s/shadow: set a password with qmailctl user passwd", u.Address(), u.Domain)
}

func newCredential(name string, password []byte, apop bool) (Credential, error) {
	hash, err := pwhash.Hash(password)
	if err != nil {
		return Credential{}, err
	}
	c := Credential{Name: name, Hash: hash}
	if apop {
		c.Secret = slices.Clone(password)
	}
	return c, nil
}

func deleteName(creds []Credential, name string) []Credential {
	return slices.DeleteFunc(creds, func(c Credential) bool { return c.Name == name })
}

func (s *Store) mailboxes(domain string) ([]Mailbox, error) {
	rel := "domains/" + domain + "/passwd"
	data, err := sysfile.ReadFileCached(filepath.Join(s.domainDir(domain), "passwd"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("domain %s: %w", domain, ErrNoDomain)
	}
	if err != nil {
		return nil, err
	}
	return ParsePasswd(rel, data)
}

func (s *Store) writePasswd(domain string, mailboxes []Mailbox) error {
	return atomicfile.WriteFile(filepath.Join(s.domainDir(domain), "passwd"), FormatPasswd(mailboxes), 0o644)
}

func (s *Store) credentials(domain string) ([]Credential, error) {
	data, err := sysfile.ReadFile(filepath.Join(s.domainDir(domain), "shadow"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseShadow("domains/"+domain+"/shadow", data)
}

func (s *Store) updateShadow(domain string, change func([]Credential) []Credential) error {
	creds, err := s.credentials(domain)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.domainDir(domain), "shadow"), FormatShadow(change(creds)), 0o600)
}

// makeMaildir creates dir and dir/Maildir/{cur,new,tmp}, owned by the
// virtual mailbox owner in a root install. The mailbox's home is 0711:
// qmail-smtpd (qmaild) may look up a .qmail-EXT file by name to tell
// whether joe-EXT exists, as delivery will, but list nothing; the Maildir
// is the owner's alone.
func makeMaildir(dir string, owner privsep.IDs) error {
	paths := []string{dir, filepath.Join(dir, "Maildir")}
	for _, sub := range []string{"cur", "new", "tmp"} {
		paths = append(paths, filepath.Join(dir, "Maildir", sub))
	}
	for i, p := range paths {
		perm := os.FileMode(0o700)
		if i == 0 {
			perm = 0o711
		}
		if err := os.Mkdir(p, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if privsep.Root() {
			if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{filepath.Join(dir, "Maildir"), dir, filepath.Dir(dir)} {
		if err := atomicfile.SyncDir(p); err != nil {
			return err
		}
	}
	return nil
}
