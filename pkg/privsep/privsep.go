// Package privsep names the system accounts of a root install and who
// runs as whom, and creates the accounts that are missing.
//
// The names are qmail's (reference §11), so a host that ran qmail keeps
// its accounts; quail adds one, qmailv, the owner of every virtual
// mailbox (what vpopmail sites called vpopmail). When a program runs as
// an ordinary user there is no separation: everything runs as that user,
// and Lookup answers with the caller's own ids.
package privsep

import (
	"fmt"
	"os"

	"github.com/quail-mta/quail/pkg/passwd"
)

// The accounts.
const (
	Alias   = "alias"  // catch-all local delivery user; home $QMAILHOME/alias
	Daemon  = "qmaild" // qmail-smtpd, qmail-popup's listener side
	Log     = "qmaill" // loggers
	Passwd  = "qmailp" // qmail-getpw
	Queue   = "qmailq" // queue owner: qmail-queue, qmail-scan, qmail-clean
	Remote  = "qmailr" // qmail-rspawn, qmail-remote
	Send    = "qmails" // qmail-send
	Virtual = "qmailv" // owner of every virtual mailbox under domains/
)

// The groups.
const (
	GroupQmail   = "qmail"   // queue access
	GroupNofiles = "nofiles" // owns nothing
	GroupVirtual = "qmailv"  // virtual mailboxes
)

// Account is one system account and the group it belongs to.
type Account struct {
	Name, Group string
	// HomeInRoot is the home directory relative to the instance root
	// ("" means the root itself).
	HomeInRoot string
}

// Accounts are the system accounts a root install needs, in qmail's order.
var Accounts = []Account{
	{Alias, GroupNofiles, "alias"},
	{Daemon, GroupNofiles, ""},
	{Log, GroupNofiles, ""},
	{Passwd, GroupNofiles, ""},
	{Queue, GroupQmail, ""},
	{Remote, GroupQmail, ""},
	{Send, GroupQmail, ""},
	{Virtual, GroupVirtual, "domains"},
}

// Groups are the groups a root install needs.
var Groups = []string{GroupQmail, GroupNofiles, GroupVirtual}

// IDs are a numeric uid and gid.
type IDs struct{ UID, GID int }

// Self are the ids of the running process.
func Self() IDs { return IDs{os.Getuid(), os.Getgid()} }

// Root reports whether the process runs with root's privileges, and so
// whether it must separate privileges.
func Root() bool { return os.Geteuid() == 0 }

// Lookup returns the uid and primary gid of account name when running as
// root, and the caller's own ids otherwise (single-user mode).
func Lookup(name string) (IDs, error) {
	if !Root() {
		return Self(), nil
	}
	return lookup(name)
}

// lookup is Lookup's answer for root: the account's entry in the host's
// passwd file.
func lookup(name string) (IDs, error) {
	u, ok, err := passwd.Lookup(name)
	if err != nil {
		return IDs{}, fmt.Errorf("look up system account %s: %w", name, err)
	}
	if !ok {
		return IDs{}, fmt.Errorf("system account %s is missing: run qmailctl init as root to create it", name)
	}
	if u.UID == 0 {
		return IDs{}, fmt.Errorf("system account %s has uid 0: give it its own uid", name)
	}
	return IDs{u.UID, u.GID}, nil
}

// LookupGroup returns the gid of group name when running as root, and the
// caller's own gid otherwise.
func LookupGroup(name string) (int, error) {
	if !Root() {
		return os.Getgid(), nil
	}
	return lookupGroup(name)
}

// lookupGroup is LookupGroup's answer for root.
func lookupGroup(name string) (int, error) {
	gid, ok, err := passwd.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("look up system group %s: %w", name, err)
	}
	if !ok {
		return 0, fmt.Errorf("system group %s is missing: run qmailctl init as root to create it", name)
	}
	return gid, nil
}
