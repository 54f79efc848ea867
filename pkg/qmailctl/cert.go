package qmailctl

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/privsep"
)

// CertFile is where qmail-smtpd (STARTTLS, --smtps) and qmail-popup
// (STLS) find their key and certificate, in one PEM file, as qmail's TLS
// patch keeps it.
const CertFile = "control/servercert.pem"

func certFlags(f *pflag.FlagSet) {
	f.Bool("self-signed", false, "make a self-signed certificate (for tests, demos and first setups)")
	f.String("hostname", "", "host `NAME` for the certificate (default: control/me)")
	f.Bool("force", false, "replace an existing control/servercert.pem")
	f.Int("days", 365, "days the certificate is valid")
}

func runCert(s IO, root string, flags *pflag.FlagSet, _ []string) error {
	self, _ := flags.GetBool("self-signed")
	if !self {
		return usagef("only --self-signed certificates are made here; for one from a CA, put its private key and certificate chain in %s (see docs/install.md)", filepath.Join(root, CertFile))
	}
	host, _ := flags.GetString("hostname")
	force, _ := flags.GetBool("force")
	days, _ := flags.GetInt("days")
	if days < 1 || days > 3650 {
		return usagef("--days %d: want 1 to 3650", days)
	}
	if host == "" {
		me, ok, err := control.New(root).Value("me")
		if err != nil {
			return err
		}
		if !ok || me == "" {
			return fmt.Errorf("%s has no control/me: run qmailctl init --root %s, or give --hostname", root, root)
		}
		host = me
	}
	path := filepath.Join(root, CertFile)
	if err := SelfSigned(path, host, time.Duration(days)*24*time.Hour, force); err != nil {
		return err
	}
	fmt.Fprintf(s.Stdout, "wrote %s: self-signed for %s, localhost, 127.0.0.1, ::1, valid %d days\n", path, host, days)
	return nil
}

// SelfSigned writes a fresh ECDSA P-256 key and a self-signed certificate
// for host (plus localhost and the loopback addresses) to path, the key
// first, in one PEM file. It refuses to replace an existing file unless
// force.
//
// In a root install the file is qmaild's, mode 0400: qmail-smtpd runs as
// qmaild and reads it after tcpserver dropped root; qmail-popup runs as
// root, which reads any file; nobody else can. (qmail's TLS patch made
// it qmaild:qmail 0640, which lets every account of group qmail read the
// key: qmail-send, qmail-remote, qmail-queue, none of which need it.)
// Run by an ordinary user, the file is that user's, mode 0600.
func SelfSigned(path, host string, valid time.Duration, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists: give --force to replace it", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// qmail-smtpd reads it as qmaild, qmail-popup as root; nobody else.
	var owner *atomicfile.Owner
	perm := fs.FileMode(0o600)
	if privsep.Root() {
		ids, err := privsep.Lookup(privsep.Daemon)
		if err != nil {
			return err
		}
		owner, perm = &atomicfile.Owner{UID: ids.UID, GID: ids.GID}, 0o400
	}
	data, err := selfSignedPEM(host, time.Now(), valid)
	if err != nil {
		return err
	}
	return atomicfile.WriteFrom(path, bytes.NewReader(data), perm, owner)
}

func selfSignedPEM(host string, now time.Time, valid time.Duration) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		// An hour back, for clients whose clock is a little behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(valid),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.DNSNames = nil
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	if host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...), nil
}
