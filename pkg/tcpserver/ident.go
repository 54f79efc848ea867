package tcpserver

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// identPort is where RFC 1413 servers listen.
const identPort = 113

// maxInfo is where tcpserver stops reading an ident answer: it keeps the
// first byte past 256.
const maxInfo = 256

// Ident asks the identd on the client's host who owns the connection from
// remote to local (RFC 1413), giving up after timeout. ok is false when
// there is no complete answer; an answer with no user field (an ERROR
// reply) gives "" with ok true, as in tcpserver, whose rules then see
// "@ip".
func Ident(ctx context.Context, local, remote netip.AddrPort, timeout time.Duration) (info string, ok bool) {
	return ident(ctx, local, remote, identPort, timeout)
}

// ident is Ident with the identd's port as a parameter, for tests.
func ident(ctx context.Context, local, remote netip.AddrPort, port uint16, timeout time.Duration) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local.Addr().Unmap().AsSlice(), Zone: local.Addr().Zone()}}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(remote.Addr().Unmap(), port).String())
	if err != nil {
		return "", false
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// RFC 1413 section 3: "<port-on-server> , <port-on-client>", the
	// server being the identd's host, so the client's port comes first.
	q := strconv.Itoa(int(remote.Port())) + " , " + strconv.Itoa(int(local.Port())) + "\r\n"
	if _, err := io.WriteString(conn, q); err != nil {
		return "", false
	}
	return parseIdent(bufio.NewReaderSize(conn, 128))
}

// parseIdent reads an ident reply the way tcpserver does: blanks and CRs
// are dropped everywhere, the user id is what follows the third colon
// ("ports : USERID : OS : user"), the reply ends at LF, and at most 257
// bytes are kept. A NUL ends the id, since the environment cannot carry
// it.
func parseIdent(r io.ByteReader) (string, bool) {
	var out []byte
	colons := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", false
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			continue
		case c == '\n':
			return cutNUL(out), true
		case colons < 3:
			if c == ':' {
				colons++
			}
		default:
			out = append(out, c)
			if len(out) > maxInfo {
				return cutNUL(out), true
			}
		}
	}
}

func cutNUL(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
