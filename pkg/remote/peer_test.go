package remote

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A scripted SMTP peer. A script has one directive per line:
//
//	< text       the peer sends "text\r\n"
//	<? text      the same, but the client may have hung up already
//	> text       the peer expects the client line "text"
//	>+ text      the same, and the line must have come in the same
//	             write as the line before (checks PIPELINING)
//	>! text      the same, and nothing more has come yet (checks that
//	             a client without PIPELINING waits for each reply)
//	>DATA        the peer reads the message up to and including the
//	             first CRLF.CRLF and records it
//	TLS          the peer starts its side of the TLS handshake
//	HANG         the peer says nothing until the client hangs up
//	CLOSE        the peer hangs up
//	EOF          the peer expects the client to hang up (it may
//	             first send QUIT)
//
// Each connection plays the next script; the peer fails the test at the
// first difference.
type peer struct {
	ln    net.Listener
	errc  chan error
	data  chan []byte
	tlsOn chan bool
}

func startPeer(tb testing.TB, cert *tls.Certificate, scripts ...string) (*peer, Target) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &peer{ln: ln, errc: make(chan error, len(scripts)), data: make(chan []byte, len(scripts)), tlsOn: make(chan bool, len(scripts))}
	go func() {
		for _, s := range scripts {
			c, err := ln.Accept()
			if err != nil {
				p.errc <- fmt.Errorf("accept: %v", err)
				return
			}
			p.errc <- p.play(c, s, cert)
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	ap := netip.MustParseAddrPort(ln.Addr().String())
	return p, Target{Name: "localhost", Addr: ap}
}

// wait returns the errors of all n scripts.
func (p *peer) wait(tb testing.TB, n int) {
	tb.Helper()
	for range n {
		select {
		case err := <-p.errc:
			if err != nil {
				tb.Error("peer: ", err)
			}
		case <-time.After(10 * time.Second):
			tb.Fatal("peer: script not finished")
		}
	}
}

func (p *peer) play(c net.Conn, script string, cert *tls.Certificate) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	isTLS := false
	for _, d := range strings.Split(strings.TrimSpace(script), "\n") {
		d = strings.TrimSpace(d)
		switch {
		case strings.HasPrefix(d, "< "):
			if _, err := c.Write([]byte(d[2:] + "\r\n")); err != nil {
				return fmt.Errorf("sending %q: %v", d[2:], err)
			}
		case strings.HasPrefix(d, "<? "):
			// A reply the client may rightly not wait for: having read
			// the one before, it can hang up first, and then this write
			// fails with EPIPE or a reset.
			_, _ = c.Write([]byte(d[3:] + "\r\n"))
		case strings.HasPrefix(d, ">+ "), strings.HasPrefix(d, ">! "), strings.HasPrefix(d, "> "):
			want := d[strings.IndexByte(d, ' ')+1:]
			if strings.HasPrefix(d, ">+ ") && br.Buffered() == 0 {
				return fmt.Errorf("%q did not come in the same write as the line before", want)
			}
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("want %q, got error %v", want, err)
			}
			if got := strings.TrimSuffix(line, "\r\n"); got != want || !strings.HasSuffix(line, "\r\n") {
				return fmt.Errorf("want %q, got %q", want+"\r\n", line)
			}
			if strings.HasPrefix(d, ">! ") && br.Buffered() > 0 {
				rest, _ := br.Peek(br.Buffered())
				return fmt.Errorf("after %q the client sent more without waiting: %q", want, rest)
			}
		case d == ">DATA":
			var msg []byte
			for !bytes.HasSuffix(msg, []byte("\r\n.\r\n")) && !bytes.Equal(msg, []byte(".\r\n")) {
				b, err := br.ReadByte()
				if err != nil {
					return fmt.Errorf("reading data after %q: %v", msg, err)
				}
				msg = append(msg, b)
			}
			p.data <- msg
		case d == "TLS":
			if br.Buffered() > 0 {
				return fmt.Errorf("client sent data before the handshake")
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
			if err := tc.Handshake(); err != nil {
				return fmt.Errorf("handshake: %v", err)
			}
			c, br, isTLS = tc, bufio.NewReader(tc), true
		case d == "HANG":
			_, _ = br.ReadByte() // until the client gives up
			return nil
		case d == "CLOSE":
			return nil
		case d == "EOF":
			rest, err := readAll(br)
			if err != nil {
				return fmt.Errorf("want the client to hang up: %v", err)
			}
			if rest != "" && rest != "QUIT\r\n" {
				return fmt.Errorf("want the client to hang up, got %q", rest)
			}
		default:
			return fmt.Errorf("bad script line %q", d)
		}
	}
	p.tlsOn <- isTLS
	return nil
}

func readAll(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			if err.Error() == "EOF" {
				return b.String(), nil
			}
			return b.String(), err
		}
		b.WriteByte(c)
	}
}

// selfSigned makes a certificate for localhost and its pool.
func selfSigned(tb testing.TB) (*tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// got returns the message the peer received.
func (p *peer) got(tb testing.TB) []byte {
	tb.Helper()
	select {
	case d := <-p.data:
		return d
	case <-time.After(10 * time.Second):
		tb.Fatal("peer: no message received")
		return nil
	}
}

// gotTLS says whether the peer's script ended over TLS.
func (p *peer) gotTLS(tb testing.TB) bool {
	tb.Helper()
	select {
	case on := <-p.tlsOn:
		return on
	case <-time.After(10 * time.Second):
		tb.Fatal("peer: script did not finish")
		return false
	}
}
