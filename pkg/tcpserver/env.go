package tcpserver

import (
	"net/netip"
	"strconv"
	"strings"
)

// Facts are what the launcher learned about one connection. A name or
// ident answer that is unknown, or was not asked for, has its Has field
// false and its variable is removed from the environment, not set empty.
type Facts struct {
	Local, Remote netip.AddrPort

	LocalHost     string
	HasLocalHost  bool
	RemoteHost    string
	HasRemoteHost bool
	RemoteInfo    string
	HasRemoteInfo bool
}

// connVars are the variables the launcher sets or removes for every
// connection, whatever its own environment held.
var connVars = []string{
	"PROTO", "TCPLOCALIP", "TCPLOCALPORT", "TCPLOCALHOST",
	"TCPREMOTEIP", "TCPREMOTEPORT", "TCPREMOTEHOST", "TCPREMOTEINFO",
}

// BaseEnv is the launcher's environment without the per-connection
// variables: what every child starts from.
func BaseEnv(environ []string) []string {
	base := make([]string, 0, len(environ))
next:
	for _, kv := range environ {
		for _, name := range connVars {
			if len(kv) > len(name) && kv[len(name)] == '=' && strings.HasPrefix(kv, name) {
				continue next
			}
		}
		base = append(base, kv)
	}
	return base
}

// IPString is an address as the environment and the rules show it: an
// IPv4 address, or an IPv4-mapped IPv6 address from a dual-stack socket,
// as a dotted quad; any other IPv6 address in Go's canonical form (RFC
// 5952: lower case, the longest run of zero groups as "::"), with a
// "%zone" suffix for a link-local address.
func IPString(a netip.Addr) string { return a.Unmap().String() }

// ChildEnv is the environment of the program run for a connection: base
// (from BaseEnv), then the TCP variables, then the rule's variables, a
// later one replacing an earlier one of the same name as tcpserver does.
func ChildEnv(base []string, f Facts, rule []Var) []string {
	env := make([]string, len(base), len(base)+len(connVars)+len(rule))
	copy(env, base)
	env = append(env,
		"PROTO=TCP",
		"TCPLOCALIP="+IPString(f.Local.Addr()),
		"TCPLOCALPORT="+strconv.Itoa(int(f.Local.Port())),
	)
	if f.HasLocalHost {
		env = append(env, "TCPLOCALHOST="+f.LocalHost)
	}
	env = append(env,
		"TCPREMOTEIP="+IPString(f.Remote.Addr()),
		"TCPREMOTEPORT="+strconv.Itoa(int(f.Remote.Port())),
	)
	if f.HasRemoteHost {
		env = append(env, "TCPREMOTEHOST="+f.RemoteHost)
	}
	if f.HasRemoteInfo {
		env = append(env, "TCPREMOTEINFO="+f.RemoteInfo)
	}
	for _, v := range rule {
		env = setEnv(env, v.Name, v.Value)
	}
	return env
}

// setEnv sets name in env, in place when it is there already.
func setEnv(env []string, name, value string) []string {
	for i, kv := range env {
		if len(kv) > len(name) && kv[len(name)] == '=' && strings.HasPrefix(kv, name) {
			env[i] = name + "=" + value
			return env
		}
	}
	return append(env, name+"="+value)
}
