// Package recipient finds who takes a local delivery: the account to run
// qmail-local as and its arguments (user, home, dash, extension). It is
// the one lookup local delivery and qmail-smtpd's recipient check share,
// so the SMTP server never accepts what delivery would bounce.
//
// For the local part of an address routed local by qmail-send (package
// routing), in this order:
//
//  1. users/cdb (qmail-newu's compiled users/assign), as qmail-lspawn;
//  2. a hosted virtual domain: the local part is DOMAIN-rest (qmail-send
//     prefixed it, control/virtualdomains maps DOMAIN to DOMAIN) and
//     domains/DOMAIN exists. The longest prefix of rest, cut at a '-',
//     that names a mailbox in domains/DOMAIN/passwd takes the mail, with
//     the remainder as its extension (joe-lists: mailbox joe, .qmail-lists
//     in joe's home). When no mailbox matches, the domain's directory acts
//     as the home, with rest as the extension: domains/DOMAIN/.qmail-sales
//     is an alias, .qmail-default the catch-all. With neither, the address
//     does not exist;
//  3. the system's accounts, qmail-getpw's rules, with the alias user
//     taking what no account does. The alias user's home is always
//     $QMAILHOME/alias, whatever its passwd entry says, so one alias
//     account can serve several instances.
//
// An instance run by an ordinary user (single-user mode) cannot deliver
// as other accounts: there, step 3 gives everything to the alias home,
// delivered as that user.
package recipient

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/dotqmail"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/users"
)

// Target is qmail-local's account and arguments for one recipient.
type Target struct {
	User     string // account name (qmail-local's first operand)
	UID, GID int
	Home     string
	Dash     string
	Ext      string
	Domain   string // set for a virtual domain's recipients
}

// ErrNoMailbox means the address does not exist: a permanent failure
// with qmail-local's text.
var ErrNoMailbox = dotqmail.ErrNoMailbox

// Resolver looks recipients up in one instance.
type Resolver struct {
	Root   string
	Passwd users.Passwd // the system's accounts; users.System{} in production
	// Owner is the account of every virtual mailbox: the qmailv account
	// in a root install, the caller in single-user mode.
	Owner func() (user string, ids privsep.IDs, err error)
	// SingleUser delivers as the Owner instead of system accounts.
	SingleUser bool
	// Outsider is set for a caller without delivery's rights
	// (qmail-smtpd as qmaild): a system account's home it may not stat
	// is taken to exist, as delivery would find it (users.GetpwOutsider).
	Outsider bool
}

// Resolve finds who takes mail for local (the local part after qmail-send's
// routing, e.g. "joe" or "example.com-joe").
func (r *Resolver) Resolve(local string) (Target, error) {
	if e, ok, err := users.Lookup(r.Root, local); err != nil {
		return Target{}, err
	} else if ok {
		return fromEntry(e), nil
	}
	if t, ok, err := r.virtual(local); err != nil || ok {
		return t, err
	}
	aliasHome := filepath.Join(r.Root, "alias")
	if r.SingleUser {
		user, ids, err := r.Owner()
		if err != nil {
			return Target{}, err
		}
		return Target{User: user, UID: ids.UID, GID: ids.GID, Home: aliasHome, Dash: "-", Ext: local}, nil
	}
	getpw := users.Getpw
	if r.Outsider {
		getpw = users.GetpwOutsider
	}
	e, err := getpw(r.Passwd, local, privsep.Alias)
	if err != nil {
		return Target{}, err
	}
	t := fromEntry(e)
	if e.User == privsep.Alias {
		t.Home = aliasHome
	}
	return t, nil
}

func fromEntry(e users.Entry) Target {
	return Target{User: e.User, UID: e.UID, GID: e.GID, Home: e.Home, Dash: e.Dash, Ext: e.Ext}
}

// virtual resolves DOMAIN-rest for a hosted domain; ok is false when
// local names no hosted domain.
func (r *Resolver) virtual(local string) (Target, bool, error) {
	domain, rest, ok := r.hostedPrefix(local)
	if !ok {
		return Target{}, false, nil
	}
	user, ids, err := r.Owner()
	if err != nil {
		return Target{}, true, err
	}
	store := contract.New(r.Root)
	t := Target{User: user, UID: ids.UID, GID: ids.GID, Domain: domain}
	// The longest mailbox name that rest starts with, cut at a '-'.
	for end := len(rest); end > 0; end-- {
		if end < len(rest) && rest[end] != '-' {
			continue
		}
		u, err := store.LookupUser(rest[:end] + "@" + domain)
		if errors.Is(err, contract.ErrNoUser) {
			continue
		}
		if err != nil {
			return Target{}, true, err
		}
		t.Home = u.Home
		if end < len(rest) {
			t.Dash, t.Ext = "-", rest[end+1:]
		}
		return t, true, nil
	}
	// No mailbox: an alias or the catch-all in the domain's directory.
	t.Home, t.Dash, t.Ext = filepath.Join(r.Root, "domains", domain), "-", rest
	if _, err := dotqmail.Search(dotqmail.OSFS{}, t.Home, t.Dash, t.Ext); err != nil {
		return Target{}, true, err
	}
	return t, true, nil
}

// hostedPrefix splits local into a hosted domain and the rest: the longest
// prefix ending before a '-' that is a directory under domains/.
func (r *Resolver) hostedPrefix(local string) (domain, rest string, ok bool) {
	for i := len(local) - 1; i > 0; i-- {
		if local[i] != '-' {
			continue
		}
		d := strings.ToLower(local[:i])
		if _, err := contract.NormalizeDomain(d); err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join(r.Root, "domains", d))
		if err == nil && st.IsDir() {
			return d, local[i+1:], true
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
	}
	return "", "", false
}

// VirtualOwner is the Owner of a root install (the qmailv account) or,
// for an ordinary user, that user.
func VirtualOwner() (string, privsep.IDs, error) {
	ids, err := privsep.Lookup(privsep.Virtual)
	if err != nil {
		return "", ids, err
	}
	if !privsep.Root() {
		return currentUser(), ids, nil
	}
	return privsep.Virtual, ids, nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Getuid())
}

// Exists reports whether local delivery would take mail for local rather
// than bounce it as "no mailbox": Resolve, then, for an address with an
// extension, the .qmail file search qmail-local makes. qmail-smtpd's
// recipient check is this function, so the SMTP server never accepts what
// delivery would bounce. A home the caller may not search (qmail-smtpd
// runs as qmaild; a system account's home may be private) counts as
// existing: there only delivery can decide.
func (r *Resolver) Exists(local string) (bool, error) {
	t, err := r.Resolve(local)
	if errors.Is(err, ErrNoMailbox) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if t.Dash == "" {
		return true, nil
	}
	_, err = dotqmail.Search(dotqmail.OSFS{}, t.Home, t.Dash, t.Ext)
	return !errors.Is(err, ErrNoMailbox), nil
}
