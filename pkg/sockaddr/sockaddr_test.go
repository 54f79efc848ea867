package sockaddr

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/testutil"
)

func TestAddrPort(t *testing.T) {
	lo, err := net.InterfaceByIndex(1)
	if err != nil {
		t.Fatal(err)
	}
	ll := [16]byte{0: 0xfe, 1: 0x80, 15: 1}
	mapped := [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 7}
	for _, tc := range []struct {
		sa   unix.Sockaddr
		want string
	}{
		{&unix.SockaddrInet4{Port: 25, Addr: [4]byte{192, 0, 2, 7}}, "192.0.2.7:25"},
		{&unix.SockaddrInet6{Port: 25, Addr: mapped}, "192.0.2.7:25"},
		{&unix.SockaddrInet6{Port: 25, Addr: [16]byte{0: 0x20, 1: 0x01, 2: 0x0d, 3: 0xb8, 15: 1}}, "[2001:db8::1]:25"},
		{&unix.SockaddrInet6{Port: 25, Addr: ll, ZoneId: 1}, "[fe80::1%" + lo.Name + "]:25"},
		{&unix.SockaddrUnix{Name: "/x"}, "invalid AddrPort"},
	} {
		if got := AddrPort(tc.sa).String(); got != tc.want {
			t.Errorf("AddrPort(%+v) = %s, want %s", tc.sa, got, tc.want)
		}
	}
}

func TestPeerAndLocal(t *testing.T) {
	server, client := testutil.TCPPair(t, "tcp4")
	if got := Peer(int(server.Fd())).String(); got != client.LocalAddr().String() {
		t.Errorf("Peer = %s, want %s", got, client.LocalAddr())
	}
	if got := Local(int(server.Fd())).String(); got != client.RemoteAddr().String() {
		t.Errorf("Local = %s, want %s", got, client.RemoteAddr())
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if ap := Peer(int(r.Fd())); ap.IsValid() {
		t.Errorf("Peer of a pipe = %s", ap)
	}
}
