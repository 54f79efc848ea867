package contract

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/privsep"
)

// Domain is a contract: a hosted domain, its disk quota and its own IP
// addresses.
type Domain struct {
	Name  string
	Quota int64 // bytes for all its mailboxes together; 0 means none
	IPs   []netip.Addr
}

// DomainInfo is what `qmailctl domain show` prints.
type DomainInfo struct {
	Domain
	Users          int
	Rcpthosts      bool // listed in control/rcpthosts
	Virtualdomains bool // routed to itself in control/virtualdomains
}

// Complete reports whether every file names the domain: a domain that is
// not complete was cut short by a crash, and adding it again finishes it.
func (i DomainInfo) Complete() bool { return i.Rcpthosts && i.Virtualdomains }

// AddDomain adds a contract. Adding a domain that a crash left half-made
// finishes it; adding a complete one is ErrExists.
func (s *Store) AddDomain(d Domain) error {
	name, err := NormalizeDomain(d.Name)
	if err != nil {
		return err
	}
	if d.Quota < 0 {
		return fmt.Errorf("domain %s: quota must not be negative", name)
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()

	ctl := control.New(s.root)
	locals, err := ctl.List("locals")
	if err != nil {
		return err
	}
	if slices.ContainsFunc(locals, func(l string) bool { return strings.EqualFold(l, name) }) {
		return fmt.Errorf("domain %s is in control/locals, where it means system users; remove it there to host it as a virtual domain", name)
	}
	info, err := s.info(name)
	if err != nil {
		return err
	}
	if info.Complete() {
		return fmt.Errorf("domain %s: %w", name, ErrExists)
	}
	if err := s.checkVirtualdomains(name); err != nil {
		return err
	}

	domains := filepath.Join(s.root, "domains")
	if err := os.MkdirAll(s.domainDir(name), 0o755); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(domains); err != nil {
		return err
	}
	if err := s.makeQuotaDir(name); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{"passwd", 0o644}, {"shadow", 0o600}} {
		p := filepath.Join(s.domainDir(name), f.name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if err := atomicfile.WriteFile(p, nil, f.perm); err != nil {
				return err
			}
		}
	}
	otherDomain := func(e string) bool { return keyOf(e) != name }
	var quota []string
	if d.Quota > 0 {
		quota = []string{name + ":" + strconv.FormatInt(d.Quota, 10)}
	}
	if err := editList(s.controlPath("quotas"), otherDomain, quota...); err != nil {
		return err
	}
	var ips []string
	for _, ip := range d.IPs {
		ips = append(ips, name+":"+ip.String())
	}
	if err := editList(s.controlPath("contractips"), otherDomain, ips...); err != nil {
		return err
	}
	if !info.Virtualdomains {
		if err := editList(s.controlPath("virtualdomains"), otherDomain, name+":"+name); err != nil {
			return err
		}
	}
	// Last: from here on qmail-smtpd accepts the domain's mail.
	if !info.Rcpthosts {
		return editList(s.controlPath("rcpthosts"), keepAll, name)
	}
	return nil
}

func keepAll(string) bool { return true }

// checkVirtualdomains refuses to take over a domain that the admin routes
// elsewhere in control/virtualdomains.
func (s *Store) checkVirtualdomains(name string) error {
	lines, err := control.New(s.root).Lines("virtualdomains")
	if err != nil {
		return err
	}
	for _, l := range lines {
		if keyOf(l.Text) == name && !strings.EqualFold(l.Text, name+":"+name) {
			return fmt.Errorf("control/virtualdomains:%d already routes %s (%q); remove that line to host the domain here", l.No, name, l.Text)
		}
	}
	return nil
}

// DelDomain removes a contract. A domain that still has users is refused
// unless force is set, which deletes their mailboxes too.
func (s *Store) DelDomain(domain string, force bool) error {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	info, err := s.info(name)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(s.domainDir(name))
	if !info.Rcpthosts && !info.Virtualdomains && errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("domain %s: %w", name, ErrNoDomain)
	}
	if info.Users > 0 && !force {
		return fmt.Errorf("domain %s still has %d users: delete them first, or pass --force to delete them and their mail", name, info.Users)
	}
	// First: from here on qmail-smtpd refuses the domain's mail.
	if err := editList(s.controlPath("rcpthosts"), func(e string) bool { return !strings.EqualFold(e, name) }); err != nil {
		return err
	}
	ours := func(e string) bool { return !strings.EqualFold(e, name+":"+name) }
	if err := editList(s.controlPath("virtualdomains"), ours); err != nil {
		return err
	}
	otherDomain := func(e string) bool { return keyOf(e) != name }
	for _, f := range []string{"contractips", "quotas"} {
		if err := editList(s.controlPath(f), otherDomain); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(s.domainDir(name)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(s.root, "domains"))
}

// Domains lists the hosted domains in name order.
func (s *Store) Domains() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "domains"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ShowDomain describes one contract.
func (s *Store) ShowDomain(domain string) (DomainInfo, error) {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return DomainInfo{}, err
	}
	if _, err := os.Stat(s.domainDir(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return DomainInfo{}, fmt.Errorf("domain %s: %w", name, ErrNoDomain)
		}
		return DomainInfo{}, err
	}
	return s.info(name)
}

// info gathers what every file says about domain name.
func (s *Store) info(name string) (DomainInfo, error) {
	ctl := control.New(s.root)
	info := DomainInfo{Domain: Domain{Name: name}}
	rcpt, err := ctl.List("rcpthosts")
	if err != nil {
		return info, err
	}
	info.Rcpthosts = slices.ContainsFunc(rcpt, func(e string) bool { return strings.EqualFold(e, name) })
	vd, err := ctl.List("virtualdomains")
	if err != nil {
		return info, err
	}
	info.Virtualdomains = slices.ContainsFunc(vd, func(e string) bool { return strings.EqualFold(e, name+":"+name) })
	if info.Quota, err = s.Quota(name); err != nil {
		return info, err
	}
	ips, err := ctl.Lines("contractips")
	if err != nil {
		return info, err
	}
	for _, l := range ips {
		if keyOf(l.Text) != name {
			continue
		}
		_, a, _ := strings.Cut(l.Text, ":")
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return info, control.Errorf("control/contractips", l.No, "%q is not an IP address", a)
		}
		info.IPs = append(info.IPs, ip)
	}
	mb, err := s.mailboxes(name)
	if err != nil && !errors.Is(err, ErrNoDomain) {
		return info, err
	}
	info.Users = len(mb)
	return info, nil
}

// Quota is domain's disk allowance in bytes from control/quotas; 0 means
// none is set.
func (s *Store) Quota(domain string) (int64, error) {
	lines, err := control.New(s.root).Lines("quotas")
	if err != nil {
		return 0, err
	}
	for _, l := range lines {
		if keyOf(l.Text) != domain {
			continue
		}
		_, v, _ := strings.Cut(l.Text, ":")
		n, err := control.ParseInt(v)
		if err != nil {
			return 0, control.Errorf("control/quotas", l.No, "%v", err)
		}
		return n, nil
	}
	return 0, nil
}

// makeQuotaDir makes domains/DOMAIN/quota/, where the contract's quota
// record lives (package quota): owned by the virtual mailbox owner, who
// delivers and so keeps the record, while the domain's own directory, with
// passwd and shadow, stays root's.
func (s *Store) makeQuotaDir(name string) error {
	dir := filepath.Join(s.domainDir(name), "quota")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if privsep.Root() {
		owner, err := privsep.Lookup(privsep.Virtual)
		if err != nil {
			return err
		}
		if err := os.Lchown(dir, owner.UID, owner.GID); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(s.domainDir(name))
}
