// Package routing decides, as qmail-send does, whether a recipient is
// delivered locally or remotely, and rewrites it for virtual domains
// (reference §2.4). qmail-smtpd's recipient check uses the same code, so
// what the SMTP server accepts is what the scheduler delivers.
package routing

import (
	"strings"

	"github.com/quail-mta/quail/pkg/control"
)

// Channel is where a recipient's mail goes.
type Channel int

const (
	Local Channel = iota
	Remote
)

func (c Channel) String() string {
	if c == Local {
		return "local"
	}
	return "remote"
}

// Table is the routing configuration: control/locals, virtualdomains,
// percenthack and envnoathost.
type Table struct {
	envnoathost string
	locals      map[string]bool
	percenthack map[string]bool
	vdoms       map[string]string // lower-cased key → prepend
}

// Load reads the routing control files of an instance.
func Load(ctl control.Dir) (*Table, error) {
	t := &Table{locals: map[string]bool{}, percenthack: map[string]bool{}, vdoms: map[string]string{}}
	var err error
	if t.envnoathost, err = ctl.String("envnoathost"); err != nil {
		return nil, err
	}
	locals, err := ctl.List("locals")
	if err != nil {
		return nil, err
	}
	for _, l := range locals {
		t.locals[strings.ToLower(l)] = true
	}
	ph, err := ctl.List("percenthack")
	if err != nil {
		return nil, err
	}
	for _, p := range ph {
		t.percenthack[strings.ToLower(p)] = true
	}
	vd, err := ctl.Lines("virtualdomains")
	if err != nil {
		return nil, err
	}
	for _, l := range vd {
		key, prepend, ok := strings.Cut(l.Text, ":")
		if !ok {
			return nil, control.Errorf("control/virtualdomains", l.No, "want DOMAIN:PREPEND")
		}
		key = strings.ToLower(key)
		if _, dup := t.vdoms[key]; !dup { // qmail's first line wins
			t.vdoms[key] = prepend
		}
	}
	return t, nil
}

// Route is qmail-send's rewrite: the channel and the address to deliver
// to (for a virtual domain, PREPEND-user@domain).
func (t *Table) Route(addr string) (Channel, string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		addr += "@" + t.envnoathost
		at = strings.LastIndexByte(addr, '@')
	}
	for t.percenthack[strings.ToLower(addr[at+1:])] {
		p := strings.LastIndexByte(addr[:at], '%')
		if p < 0 {
			break
		}
		addr = addr[:p] + "@" + addr[p+1:at]
		at = p
	}
	if t.locals[strings.ToLower(addr[at+1:])] {
		return Local, addr
	}
	lower := strings.ToLower(addr)
	for i := 0; i <= len(addr); i++ {
		if i == 0 || i == at+1 || i == len(addr) || (i > at && addr[i] == '.') {
			prepend, ok := t.vdoms[lower[i:]]
			if !ok {
				continue
			}
			if prepend == "" {
				break // an exception: not virtual
			}
			return Local, prepend + "-" + addr
		}
	}
	return Remote, addr
}

// Unroute undoes Route's virtual-domain prefix, so a bounce names the
// address the sender used: the shortest tail after a '-' that routes to
// routed. Addresses Route did not prefix come back unchanged.
func (t *Table) Unroute(routed string) string {
	at := strings.LastIndexByte(routed, '@')
	for i := 0; i < at; i++ {
		if routed[i] != '-' {
			continue
		}
		if ch, r := t.Route(routed[i+1:]); ch == Local && r == routed {
			return routed[i+1:]
		}
	}
	return routed
}
