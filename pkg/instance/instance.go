// Package instance lays out an instance root ($QMAILHOME): the
// directories, the control files a fresh qmail gets from its config
// script, users/assign and users/cdb, the alias user's .qmail files, the
// daemontools-style run scripts under service/, and in a root install
// the system accounts and the ownership of each directory (reference
// §11).
//
// Init never overwrites what exists: run again over a live instance it
// only adds what is missing, so it is also the repair command.
package instance

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/users"
	"github.com/quail-mta/quail/queue"
)

// Options are the choices of Init.
type Options struct {
	Root     string
	Hostname string    // for control/me; the machine's FQDN when empty
	Log      io.Writer // one line per thing created
}

// dir is one directory of the layout and who owns it in a root install.
type dir struct {
	path         string
	perm         os.FileMode
	owner, group string // "" is root
}

// layout is the directory tree, parents first.
var layout = []dir{
	{"", 0o755, "", privsep.GroupQmail},
	{"bin", 0o755, "", privsep.GroupQmail},
	{"control", 0o755, "", privsep.GroupQmail},
	{"users", 0o755, "", privsep.GroupQmail},
	{"alias", 0o755 | fs.ModeSetgid, privsep.Alias, privsep.GroupQmail},
	{"domains", 0o755, "", ""},
	{"run", 0o755, "", ""},
	// Rate-limit counters: qmail-smtpd (qmaild) updates them.
	{"run/ratelimit", 0o700, privsep.Daemon, privsep.GroupNofiles},
}

// Init creates or completes the instance at opts.Root.
func Init(opts Options) error {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return err
	}
	if privsep.Root() {
		if err := ensureAccounts(root, func(kind, name string) { logf("created %s %s", kind, name) }); err != nil {
			return err
		}
	}
	for _, d := range layout {
		p := filepath.Join(root, d.path)
		err := os.Mkdir(p, d.perm)
		if err == nil {
			logf("created %s/", p)
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if privsep.Root() {
			if err := own(p, d); err != nil {
				return err
			}
		}
	}

	if err := makeQueue(root); err != nil {
		return err
	}

	me := opts.Hostname
	if me == "" {
		me = FQDN()
	}
	if err := checkHostname(me); err != nil {
		return err
	}
	files := []struct {
		path, content string
	}{
		{"control/me", me + "\n"},
		{"control/locals", me + "\nlocalhost\n"},
		{"control/rcpthosts", me + "\n"},
		// Not read by qmail's programs: the run script of qmail-start
		// and qmailctl run take their argument from it, as Life with
		// qmail's scripts do.
		{"control/defaultdelivery", "./Maildir/\n"},
	}
	files = append(files,
		struct{ path, content string }{"control/defaultdomain", DefaultDomain(me) + "\n"},
		struct{ path, content string }{"control/plusdomain", PlusDomain(me) + "\n"})
	for _, name := range []string{"postmaster", "mailer-daemon", "root"} {
		// Empty: the alias user's default delivery. Point them at a
		// person by writing an address into them.
		files = append(files, struct{ path, content string }{"alias/.qmail-" + name, ""})
	}
	for _, f := range files {
		created, err := createIfMissing(filepath.Join(root, f.path), f.content)
		if err != nil {
			return err
		}
		if created {
			logf("created %s", f.path)
		}
	}
	// The alias user's mailbox: where postmaster's mail goes by default.
	if err := aliasMaildir(filepath.Join(root, "alias", "Maildir"), logf); err != nil {
		return err
	}
	if err := writeServices(root, privsep.Root(), logf); err != nil {
		return err
	}
	assign := filepath.Join(root, "users", "assign")
	created, err := createIfMissing(assign, ".\n")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "users", "cdb")); created || errors.Is(err, fs.ErrNotExist) {
		if err := users.Newu(root); err != nil {
			return err
		}
		logf("created users/cdb")
	}
	return nil
}

// aliasMaildir creates ~alias/Maildir/, owned by the alias user in a
// root install.
func aliasMaildir(dir string, logf func(string, ...any)) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := maildir.Make(dir, 0o700); err != nil {
		return err
	}
	if privsep.Root() {
		ids, err := privsep.Lookup(privsep.Alias)
		if err != nil {
			return err
		}
		for _, p := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
			if err := os.Lchown(p, ids.UID, ids.GID); err != nil {
				return err
			}
		}
	}
	logf("created alias/Maildir/")
	return nil
}

// makeQueue lays out the queue, owned as qmail owns it in a root install.
func makeQueue(root string) error {
	q := queue.New(root)
	var ids queue.IDs
	if privsep.Root() {
		ids = func(o queue.Owner) (int, int, error) {
			name := map[queue.Owner]string{queue.OwnerQueue: privsep.Queue, queue.OwnerSend: privsep.Send, queue.OwnerRemote: privsep.Remote}[o]
			u, err := privsep.Lookup(name)
			if err != nil {
				return 0, 0, err
			}
			g, err := privsep.LookupGroup(privsep.GroupQmail)
			return u.UID, g, err
		}
	}
	return q.MakeLayout(ids)
}

// own gives p its owner, group and mode; chmod again because a set-gid
// bit is dropped by chown.
func own(p string, d dir) error {
	uid, gid := 0, 0
	if d.owner != "" {
		ids, err := privsep.Lookup(d.owner)
		if err != nil {
			return err
		}
		uid = ids.UID
	}
	if d.group != "" {
		g, err := privsep.LookupGroup(d.group)
		if err != nil {
			return err
		}
		gid = g
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, d.perm)
}

func createIfMissing(path, content string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, atomicfile.WriteFile(path, []byte(content), 0o644)
}

// FQDN is the machine's fully qualified name as `hostname -f` finds it:
// the host name if it has a dot, else the first dotted name its addresses
// resolve back to, else the bare host name.
func FQDN() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	if strings.Contains(h, ".") {
		return strings.ToLower(h)
	}
	if cname, err := net.LookupCNAME(h); err == nil {
		if c := strings.TrimSuffix(cname, "."); strings.Contains(c, ".") {
			return strings.ToLower(c)
		}
	}
	addrs, _ := net.LookupHost(h)
	for _, a := range addrs {
		names, _ := net.LookupAddr(a)
		for _, n := range names {
			if n = strings.TrimSuffix(n, "."); strings.Contains(n, ".") && strings.HasPrefix(n, h+".") {
				return strings.ToLower(n)
			}
		}
	}
	return strings.ToLower(h)
}

func checkHostname(h string) error {
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return fmt.Errorf("host name %q: want a name such as mail.example.com", h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("host name %q: %q is not allowed (letters, digits, '-', '.')", h, c)
		}
	}
	return nil
}

// DefaultDomain is what qmail's config script puts in defaultdomain: me
// without its first label when it has three or more, else me.
func DefaultDomain(me string) string {
	if strings.Count(me, ".") < 2 {
		return me
	}
	_, rest, _ := strings.Cut(me, ".")
	return rest
}

// PlusDomain is what qmail's config script puts in plusdomain: the last
// two labels of me when it has three or more, else me.
func PlusDomain(me string) string {
	labels := strings.Split(me, ".")
	if len(labels) < 3 {
		return me
	}
	return strings.Join(labels[len(labels)-2:], ".")
}
