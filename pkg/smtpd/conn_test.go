package smtpd

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// TestSocketConn: the connection knows both its addresses, IPv4 and
// IPv6, and its deadlines work.
func TestSocketConn(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			f, client := testutil.TCPPair(t, network)
			conn, err := newSocketConn(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got, want := addrIP(conn.LocalAddr()), addrIP(client.RemoteAddr()); got != want || got == "" {
				t.Errorf("local address %q, want %q", got, want)
			}
			if got, want := addrIP(conn.RemoteAddr()), addrIP(client.LocalAddr()); got != want || got == "" {
				t.Errorf("remote address %q, want %q", got, want)
			}
			client.Write([]byte("EHLO x\r\n"))
			buf := make([]byte, 64)
			if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "EHLO x\r\n" {
				t.Fatalf("read %q, %v", buf[:n], err)
			}
			conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := conn.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read past the deadline: %v, want a timeout", err)
			}
		})
	}
}
