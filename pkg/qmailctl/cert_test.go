package qmailctl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedPEM(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	data, err := selfSignedPEM("mail.example.test", now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") || !strings.Contains(string(data), "-----BEGIN CERTIFICATE-----\n") {
		t.Errorf("want the key, then the certificate:\n%s", data)
	}
	// One file serves as both halves, as qmail-smtpd loads it.
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "mail.example.test" || !cert.NotAfter.Equal(now.Add(365*24*time.Hour)) || cert.NotBefore.After(now) {
		t.Errorf("subject %q, valid %v to %v", cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, name := range []string{"mail.example.test", "localhost", "127.0.0.1", "::1"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if cert.VerifyHostname("other.example.test") == nil {
		t.Error("the certificate is good for any name")
	}
	// An IP address as the host name goes into the IP SANs.
	data, _ = selfSignedPEM("192.0.2.7", now, time.Hour)
	pair, _ = tls.X509KeyPair(data, data)
	cert, _ = x509.ParseCertificate(pair.Certificate[0])
	if len(cert.IPAddresses) != 3 || !cert.IPAddresses[2].Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("IP SANs %v", cert.IPAddresses)
	}
}

func TestSelfSignedRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servercert.pem")
	os.WriteFile(path, []byte("the admin's own"), 0o600)
	err := SelfSigned(path, "mail.example.test", time.Hour, false)
	if err == nil || err.Error() != path+" exists: give --force to replace it" {
		t.Errorf("SelfSigned over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "the admin's own" {
		t.Errorf("file changed: %q", b)
	}
}
