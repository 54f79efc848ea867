package tcpserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// fatalError is a start-up failure, worded as tcpserver words it after
// "tcpserver: fatal: ".
type fatalError struct {
	what string
	err  error // nil when what says it all
}

func (e *fatalError) Error() string {
	if e.err == nil {
		return e.what
	}
	return e.what + ": " + errText(e.err)
}

func (e *fatalError) Unwrap() error { return e.err }

// ResolveHost turns HOST into the address to bind: "0" or "" is every
// IPv4 address, an IP literal is itself ("::" is every IPv6 address and,
// through IPv4-mapped addresses, every IPv4 one), a name its first IPv4
// address, or its first IPv6 address if it has none.
func ResolveHost(ctx context.Context, r *net.Resolver, host string) (netip.Addr, error) {
	if host == "" || host == "0" {
		return netip.IPv4Unspecified(), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return netip.Addr{}, &fatalError{what: "no IP address for " + host}
		}
		return netip.Addr{}, &fatalError{what: "temporarily unable to figure out IP address for " + host, err: err}
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, &fatalError{what: "no IP address for " + host}
	}
	return addrs[0], nil
}

// ResolvePort turns PORT, a number or an /etc/services name, into a port.
func ResolvePort(ctx context.Context, r *net.Resolver, port string) (uint16, error) {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return uint16(n), nil
	}
	if p, err := r.LookupPort(ctx, "tcp", port); err == nil && p > 0 && p < 1<<16 {
		return uint16(p), nil
	}
	return 0, &fatalError{what: "unable to figure out port number for " + port}
}

// listen makes the listening socket by hand, because net.ListenConfig
// always asks for the system's maximum backlog and -b must be honoured.
// Like tcpserver it sets SO_REUSEADDR, so a restarted server binds while
// old connections linger in TIME_WAIT. The socket is a non-blocking
// *os.File in the poller: Server.accept waits on it and accepts by hand.
func listen(addr netip.AddrPort, backlog int) (*os.File, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if a := addr.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		family = unix.AF_INET6
		s6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
		if a.Zone() != "" {
			ifi, err := net.InterfaceByName(a.Zone())
			if err != nil {
				return nil, &fatalError{what: "unable to bind", err: err}
			}
			s6.ZoneId = uint32(ifi.Index)
		}
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &fatalError{what: "unable to create socket", err: err}
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, &fatalError{what: "unable to create socket", err: err}
	}
	if family == unix.AF_INET6 && addr.Addr().IsUnspecified() {
		// "::" takes IPv4 too, whatever net.ipv6.bindv6only says.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return nil, &fatalError{what: "unable to create socket", err: err}
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, &fatalError{what: "unable to bind", err: err}
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, &fatalError{what: "unable to listen", err: err}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, &fatalError{what: "unable to listen", err: err}
	}
	ok = true
	return os.NewFile(uintptr(fd), "listener"), nil
}

// dropPrivileges becomes gid (with no supplementary groups) and uid, as
// tcpserver's -g and -u do; 0 leaves an id alone. Go changes the ids of
// every thread of the process.
func dropPrivileges(uid, gid int) error {
	if gid != 0 {
		if err := syscall.Setgroups([]int{gid}); err != nil {
			return &fatalError{what: "unable to set gid", err: err}
		}
		if err := syscall.Setgid(gid); err != nil {
			return &fatalError{what: "unable to set gid", err: err}
		}
	}
	if uid != 0 {
		if err := syscall.Setuid(uid); err != nil {
			return &fatalError{what: "unable to set uid", err: err}
		}
	}
	return nil
}

// lookPath finds the program as execvp would, in the launcher's $PATH
// (tcpserver used its own, not the rule-modified, PATH). A name with a
// slash is used as it is.
func lookPath(name, path string) (string, error) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name, nil
		}
	}
	var firstErr error
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != ':' {
			continue
		}
		dir := path[start:i]
		start = i + 1
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0:
			return p, nil
		case err == nil:
			err = syscall.EACCES
		}
		if firstErr == nil || errors.Is(firstErr, syscall.ENOENT) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = syscall.ENOENT
	}
	return "", firstErr
}
