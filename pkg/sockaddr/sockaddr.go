// Package sockaddr turns the addresses the kernel gives for a socket
// (accept, getsockname, getpeername) into netip values, the way Go's
// net package writes them: IPv4-mapped IPv6 addresses as IPv4, and a
// link-local peer's zone as its interface's name.
package sockaddr

import (
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// AddrPort is sa as an address and port; the zero AddrPort when sa is
// not an IP address (a Unix socket, say).
func AddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.ZoneId != 0 && a.Is6() {
			zone := strconv.FormatUint(uint64(sa.ZoneId), 10)
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
			a = a.WithZone(zone)
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Peer is the address of the peer of the socket on fd; the zero
// AddrPort when fd is not an IP socket.
func Peer(fd int) netip.AddrPort {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return AddrPort(sa)
}

// Local is the socket's own address on fd; the zero AddrPort when fd is
// not an IP socket.
func Local(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return AddrPort(sa)
}
