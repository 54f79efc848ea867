package remote

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/quail-mta/quail/pkg/control"
)

// DefaultPort is the SMTP port for relaying between servers.
const DefaultPort = 25

// Target is one address to try, in the order Route returns them.
type Target struct {
	// Name is the host name the address belongs to (an MX host or an
	// smtproutes relay), used to verify a certificate when TLS is
	// required; empty for an IP literal.
	Name string
	Addr netip.AddrPort
	// Pref is the MX preference; 0 for smtproutes and A/AAAA fallbacks.
	Pref uint16
}

// Resolver is the part of *net.Resolver routing uses, so tests can pass
// a fake.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Router finds the addresses for a recipient domain. The zero value uses
// the system resolver and interfaces.
type Router struct {
	Resolver Resolver // nil: net.DefaultResolver
	// LocalAddrs lists this host's addresses, to drop MX hosts that are
	// no better than this host itself. nil: the interface addresses.
	LocalAddrs func() ([]netip.Addr, error)
	// Shuffle orders MX hosts of equal preference; nil: rand.Shuffle.
	Shuffle func(n int, swap func(i, j int))
}

// Route is Router{}.Route.
func Route(ctx context.Context, ctl control.Dir, domain string) ([]Target, error) {
	return Router{}.Route(ctx, ctl, domain)
}

// Route returns the addresses to try for domain, best first: from
// control/smtproutes when an entry matches, else from its MX records
// (falling back to its own A/AAAA records). Errors that say what to
// report are *Failure (Temporary tells which kind); a bad smtproutes
// line is a *control.Error, reported as a control-file failure.
func (r Router) Route(ctx context.Context, ctl control.Dir, domain string) ([]Target, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	routes, err := ReadRoutes(ctl)
	if err != nil {
		return nil, err
	}
	if rt, ok := routes.Match(domain); ok && rt.Relay != "" {
		return r.relay(ctx, rt)
	}
	if a, ok := parseLiteral(domain); ok {
		return []Target{{Addr: netip.AddrPortFrom(a, DefaultPort)}}, nil
	}
	return r.mx(ctx, domain)
}

// SMTPRoute is one line of control/smtproutes: "domain:relay[:port]".
type SMTPRoute struct {
	Domain string // "" = default route; ".suffix" matches below suffix
	Relay  string // host name or IP ("[1.2.3.4]" or bare); "" = use MX
	Port   uint16
}

// Routes is control/smtproutes, parsed.
type Routes []SMTPRoute

// ReadRoutes reads control/smtproutes; a missing file is no routes.
func ReadRoutes(ctl control.Dir) (Routes, error) {
	lines, err := ctl.Lines("smtproutes")
	if err != nil {
		return nil, err
	}
	var rs Routes
	for _, l := range lines {
		rt, err := ParseRoute(l.Text)
		if err != nil {
			return nil, control.Errorf("control/smtproutes", l.No, "%v", err)
		}
		rs = append(rs, rt)
	}
	return rs, nil
}

// ParseRoute parses one smtproutes entry. An IPv6 relay must be written
// in brackets: "example.com:[2001:db8::1]:2525".
func ParseRoute(line string) (SMTPRoute, error) {
	key, rest, ok := strings.Cut(line, ":")
	if !ok {
		return SMTPRoute{}, errors.New("want domain:relay[:port]")
	}
	rt := SMTPRoute{Domain: strings.ToLower(key), Port: DefaultPort}
	var port string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return SMTPRoute{}, errors.New("relay has '[' without ']'")
		}
		rt.Relay, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return SMTPRoute{}, errors.New("want ':port' after ']'")
			}
			port, ok = rest[1:], true
		} else {
			ok = false
		}
		if _, lit := parseLiteral(rt.Relay); !lit {
			return SMTPRoute{}, errors.New("bad IP address in brackets")
		}
	} else {
		rt.Relay, port, ok = strings.Cut(rest, ":")
	}
	rt.Relay = strings.ToLower(rt.Relay)
	if ok {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return SMTPRoute{}, errors.New("bad port " + strconv.Quote(port))
		}
		rt.Port = uint16(n)
	}
	return rt, nil
}

// Match finds the route for domain the way qmail-remote does: domain
// itself, then each suffix starting at a '.', longest first, then the
// empty (default) entry. The first line with a key wins.
func (rs Routes) Match(domain string) (SMTPRoute, bool) {
	find := func(key string) (SMTPRoute, bool) {
		for _, r := range rs {
			if r.Domain == key {
				return r, true
			}
		}
		return SMTPRoute{}, false
	}
	for i := 0; i <= len(domain); i++ {
		if i == 0 || i == len(domain) || domain[i] == '.' {
			if r, ok := find(domain[i:]); ok {
				return r, true
			}
		}
	}
	return SMTPRoute{}, false
}

// parseLiteral reads "[1.2.3.4]", "[IPv6:2001:db8::1]", "[2001:db8::1]"
// or a bare dotted quad.
func parseLiteral(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
		if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
			s = s[5:]
		}
		a, err := netip.ParseAddr(s)
		return a.Unmap(), err == nil && a.Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Is4()
}

func (r Router) resolver() Resolver {
	if r.Resolver != nil {
		return r.Resolver
	}
	return net.DefaultResolver
}

// relay resolves an smtproutes relay: an IP, or a name's A/AAAA records
// (no MX lookup, as in qmail).
func (r Router) relay(ctx context.Context, rt SMTPRoute) ([]Target, error) {
	if a, ok := parseLiteral(rt.Relay); ok {
		return []Target{{Addr: netip.AddrPortFrom(a, rt.Port)}}, nil
	}
	if a, err := netip.ParseAddr(rt.Relay); err == nil {
		return []Target{{Addr: netip.AddrPortFrom(a.Unmap(), rt.Port)}}, nil
	}
	addrs, err := r.resolver().LookupIPAddr(ctx, rt.Relay)
	if err != nil {
		return nil, hostFailure(rt.Relay, err)
	}
	return expand(rt.Relay, 0, rt.Port, addrs), nil
}

func (r Router) mx(ctx context.Context, domain string) ([]Target, error) {
	res := r.resolver()
	mxs, err := res.LookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		return nil, tempFailure(errDNSTemp)
	}
	if len(mxs) == 0 {
		// RFC 5321 5.1: no MX records, the domain itself is the host.
		addrs, err := res.LookupIPAddr(ctx, domain)
		if err != nil {
			return nil, hostFailure(domain, err)
		}
		out := expand(domain, 0, DefaultPort, addrs)
		if len(out) == 0 {
			return nil, permFailure(errNoHost)
		}
		local, err := r.localAddrs()
		if err != nil {
			return nil, tempFailure(errOwnAddrs)
		}
		for _, t := range out {
			if slices.Contains(local, t.Addr.Addr()) {
				return nil, permFailure(errLocalMX)
			}
		}
		return out, nil
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, permFailure("Sorry, " + domain + " says it accepts no mail (null MX). (#5.1.10)\n")
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	for i := 0; i < len(mxs); {
		j := i
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		group := mxs[i:j]
		shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	local, err := r.localAddrs()
	if err != nil {
		return nil, tempFailure(errOwnAddrs)
	}
	var out []Target
	temp := false
	for _, mx := range mxs {
		name := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		addrs, err := res.LookupIPAddr(ctx, name)
		if err != nil {
			if !isNotFound(err) {
				temp = true
			}
			continue
		}
		for _, t := range expand(name, mx.Pref, DefaultPort, addrs) {
			if slices.Contains(local, t.Addr.Addr()) {
				// qmail: an MX that is this host ends the list, with
				// everything of its preference or worse.
				return cutLocal(out, t.Pref)
			}
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		if temp {
			return nil, tempFailure(errDNSTemp)
		}
		return nil, permFailure(errNoHost)
	}
	return out, nil
}

func cutLocal(out []Target, pref uint16) ([]Target, error) {
	out = slices.DeleteFunc(out, func(t Target) bool { return t.Pref >= pref })
	if len(out) == 0 {
		return nil, permFailure(errLocalMX)
	}
	return out, nil
}

func (r Router) localAddrs() ([]netip.Addr, error) {
	if r.LocalAddrs != nil {
		return r.LocalAddrs()
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifas {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

func expand(name string, pref, port uint16, addrs []net.IPAddr) []Target {
	var out []Target
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Zone != "" {
			continue
		}
		out = append(out, Target{Name: name, Addr: netip.AddrPortFrom(ip.Unmap(), port), Pref: pref})
	}
	return out
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// hostFailure maps a failed A/AAAA lookup of host to qmail's reports.
func hostFailure(host string, err error) error {
	if isNotFound(err) {
		return permFailure("Sorry, I couldn't find any host named " + host + ". (#5.1.2)\n")
	}
	return tempFailure(errDNSTemp)
}

// Report texts of routing (reference §6.4).
const (
	errDNSTemp  = "Sorry, I couldn't find any host by that name. (#4.1.2)\n"
	errOwnAddrs = "Sorry, I couldn't list my own addresses. (#4.3.0)\n"
	errNoHost   = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"
	errLocalMX  = "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
)
