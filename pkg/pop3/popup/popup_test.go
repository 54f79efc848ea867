package popup

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/pop3"
)

const stamp = "<4242.1700000000@mail.example.test>"

// scriptConn is a client that sends its script and records what the
// server writes.
type scriptConn struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// fakeLauncher answers every attempt with its outcome, signalling a
// login first when the outcome is LoggedIn and signal is set.
type fakeLauncher struct {
	out      Outcome
	signal   bool
	attempts []Attempt
	during   func(a Attempt) // runs while "the child" has the connection
}

func (f *fakeLauncher) Launch(a Attempt) Outcome {
	c := a
	c.User, c.Secret, c.Pending = bytes.Clone(a.User), bytes.Clone(a.Secret), bytes.Clone(a.Pending)
	f.attempts = append(f.attempts, c)
	if f.out.Kind == LoggedIn && f.signal {
		a.OnLogin()
	}
	if f.during != nil {
		f.during(a)
	}
	return f.out
}

type fakeLimiter struct {
	delay time.Duration
	fails []string
}

func (l *fakeLimiter) Delay(string) time.Duration { return l.delay }
func (l *fakeLimiter) Fail(ip string)             { l.fails = append(l.fails, ip) }

var testTLS = sync.OnceValues(func() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.example.test"},
		DNSNames:     []string{"mail.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
})

func TestSession(t *testing.T) {
	noTLS := func(c *Config) {}
	withTLS := func(c *Config) { c.TLS = testTLS }
	brokenTLS := func(c *Config) {
		c.TLS = func() (*tls.Config, error) { return nil, errors.New("no key in servercert.pem") }
	}
	plaintext := func(c *Config) { c.TLS = testTLS; c.Plaintext = true }
	ok := Outcome{Kind: LoggedIn}
	bad := Outcome{BadLogin, errors.New("exit 1")}
	cases := []struct {
		name     string
		setup    func(*Config)
		out      Outcome
		script   string
		want     string
		result   Result
		attempts []string // "user|secret"
		fails    int
	}{
		{"quit", noTLS, ok, "QUIT\r\nNOOP\r\n", "+OK \r\n", Quit, nil, 0},
		{"eof", noTLS, ok, "NOOP\r\n", "+OK \r\n", Quit, nil, 0},
		{"authorization first", noTLS, ok, "STAT\r\nLIST\r\nRETR 1\r\nAUTH PLAIN\r\n\r\nnoop\r\n",
			strings.Repeat("-ERR authorization first\r\n", 5) + "+OK \r\n", Quit, nil, 0},
		{"capa", noTLS, ok, "CAPA\r\n", "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n", Quit, nil, 0},
		{"user pass", noTLS, ok, "USER joe@example.test\r\nPASS pass word 1\r\n", "+OK \r\n", Served, []string{"joe@example.test|pass word 1"}, 0},
		{"user twice", noTLS, ok, "user ann\r\nUSER  joe\r\npass x\r\n", "+OK \r\n+OK \r\n", Served, []string{"joe|x"}, 0},
		{"bad password", noTLS, bad, "USER joe\r\nPASS guess\r\nNOOP\r\n", "+OK \r\n-ERR authorization failed\r\n", Refused, []string{"joe|guess"}, 1},
		{"temporary", noTLS, Outcome{Temporary, errors.New("111")}, "USER joe\r\nPASS x\r\n",
			"+OK \r\n-ERR [SYS/TEMP] unable to check the password now; try again later\r\n", Refused, []string{"joe|x"}, 0},
		{"crashed", noTLS, Outcome{Crashed, errors.New("signal")}, "USER joe\r\nPASS x\r\n", "+OK \r\n-ERR aack, child crashed\r\n", Refused, []string{"joe|x"}, 0},
		{"syntax", noTLS, ok, "USER\r\nPASS x\r\nUSER joe\r\nPASS\r\nAPOP joe\r\nAPOP\r\n",
			"-ERR syntax error\r\n-ERR USER first\r\n+OK \r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n", Quit, nil, 0},
		{"control bytes", noTLS, ok, "USER jo\x01e\r\nUSER joe\r\nPASS a\tb\r\nPASS a\x00b\r\nAPOP joe\x7f 0123\r\n",
			"-ERR syntax error\r\n+OK \r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n", Quit, nil, 0},
		{"apop", noTLS, ok, "APOP joe@example.test 0123456789abcdef0123456789abcdef\r\n", "", Served,
			[]string{"joe@example.test|0123456789abcdef0123456789abcdef"}, 0},
		{"apop bad", noTLS, bad, "APOP joe 0123\r\n", "-ERR authorization failed\r\n", Refused, []string{"joe|0123"}, 1},
		{"long line", noTLS, ok, "USER " + strings.Repeat("j", 2000) + "\r\nNOOP\r\n", "-ERR command line too long\r\n+OK \r\n", Quit, nil, 0},
		{"stls without tls", noTLS, ok, "STLS\r\n", "-ERR TLS not available\r\n", Quit, nil, 0},
		{"stls with argument", withTLS, ok, "STLS now\r\n", "-ERR syntax error\r\n", Quit, nil, 0},
		{"tls: no plain user", withTLS, ok, "CAPA\r\nUSER joe\r\nPASS x\r\n",
			"+OK capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n" +
				"-ERR plain-text passwords need STLS first (or use APOP)\r\n-ERR USER first\r\n", Quit, nil, 0},
		{"tls: apop allowed", withTLS, ok, "APOP joe 0123\r\n", "", Served, []string{"joe|0123"}, 0},
		{"tls: pop3plaintext", plaintext, ok, "CAPA\r\nUSER joe\r\nPASS x\r\n",
			"+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSTLS\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n+OK \r\n", Served, []string{"joe|x"}, 0},
		{"tls: broken certificate", brokenTLS, ok, "STLS\r\nUSER joe\r\n",
			"-ERR [SYS/TEMP] unable to start TLS\r\n-ERR plain-text passwords need STLS first (or use APOP)\r\n", Quit, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := &fakeLauncher{out: tc.out, signal: true}
			lim := &fakeLimiter{}
			var log bytes.Buffer
			cfg := Config{Stamp: stamp, Launcher: l, RemoteIP: "192.0.2.1", Limiter: lim, Log: &log}
			tc.setup(&cfg)
			c := &scriptConn{in: strings.NewReader(tc.script)}
			res, err := Serve(c, cfg)
			if err != nil || res != tc.result {
				t.Errorf("Serve = %v, %v; want %v", res, err, tc.result)
			}
			if want := "+OK " + stamp + "\r\n" + tc.want; c.out.String() != want {
				t.Errorf("script %q:\n got %q\nwant %q", tc.script, c.out.String(), want)
			}
			var got []string
			for _, a := range l.attempts {
				got = append(got, string(a.User)+"|"+string(a.Secret))
				if a.Stamp != stamp || a.TLS != nil {
					t.Errorf("attempt with stamp %q, TLS %v", a.Stamp, a.TLS)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.attempts, ",") {
				t.Errorf("attempts %q, want %q", got, tc.attempts)
			}
			if len(lim.fails) != tc.fails {
				t.Errorf("%d failures noted, want %d", len(lim.fails), tc.fails)
			}
			if tc.result == Served && !strings.Contains(log.String(), "login user=") {
				t.Errorf("log %q has no login line", log.String())
			}
		})
	}
}

// TestPipelinedAfterPass: on the plain connection commands the client
// pipelined behind PASS stay unread in the connection, for the child.
func TestPipelinedAfterPass(t *testing.T) {
	in := strings.NewReader("USER joe\r\nPASS x\r\nSTAT\r\nQUIT\r\n")
	var left string
	l := &fakeLauncher{out: Outcome{Kind: LoggedIn}, during: func(a Attempt) {
		b, _ := io.ReadAll(in)
		left = string(b)
	}}
	if res, err := Serve(&scriptConn{in: in}, Config{Stamp: stamp, Launcher: l}); res != Served || err != nil {
		t.Fatalf("Serve = %v, %v", res, err)
	}
	if left != "STAT\r\nQUIT\r\n" {
		t.Errorf("the child found %q in the connection, want the pipelined commands", left)
	}
}

func TestDelayBeforeCheck(t *testing.T) {
	var slept []time.Duration
	l := &fakeLauncher{out: Outcome{Kind: LoggedIn}, during: func(Attempt) {
		if len(slept) != 1 {
			t.Error("the checker ran before the delay")
		}
	}}
	cfg := Config{Stamp: stamp, Launcher: l, Limiter: &fakeLimiter{delay: 3 * time.Second},
		Sleep: func(d time.Duration) { slept = append(slept, d) }}
	Serve(&scriptConn{in: strings.NewReader("APOP joe x\r\n")}, cfg)
	if len(slept) != 1 || slept[0] != 3*time.Second {
		t.Errorf("slept %v, want 3s once", slept)
	}
}

// TestNoCommandsBehindSTLS: commands sent in plain text right behind
// STLS are never executed (CVE-2011-0411): they are the first bytes the
// TLS handshake reads, and it fails.
func TestNoCommandsBehindSTLS(t *testing.T) {
	l := &fakeLauncher{out: Outcome{Kind: LoggedIn}}
	var log bytes.Buffer
	c := &scriptConn{in: strings.NewReader("STLS\r\nUSER evil\r\nPASS evil\r\n")}
	res, err := Serve(c, Config{Stamp: stamp, Launcher: l, TLS: testTLS, Log: &log})
	if res != Quit || err != nil || len(l.attempts) != 0 {
		t.Errorf("Serve = %v, %v, %d attempts", res, err, len(l.attempts))
	}
	if want := "+OK " + stamp + "\r\n+OK begin TLS negotiation\r\n"; c.out.String() != want {
		t.Errorf("got %q, want %q", c.out.String(), want)
	}
	if !strings.Contains(log.String(), "TLS handshake failed") {
		t.Errorf("log %q", log.String())
	}
}

// tcpPair is a connected pair of loopback TCP connections: unlike
// net.Pipe they buffer, so either side may write ahead.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// TestSTLS runs a real TLS client over a socket pair: after STLS the
// CAPA offers USER and no STLS, USER/PASS work, and the attempt carries
// the TLS connection and whatever the client pipelined behind PASS.
func TestSTLS(t *testing.T) {
	server, client := tcpPair(t)
	client.SetDeadline(time.Now().Add(time.Minute))
	var attempt Attempt
	l := &fakeLauncher{out: Outcome{Kind: LoggedIn}, signal: true, during: func(a Attempt) {
		attempt = a
		a.TLS.Write([]byte("+OK from the child\r\n"))
	}}
	done := make(chan error, 1)
	go func() {
		_, err := Serve(server, Config{Stamp: stamp, Launcher: l, TLS: testTLS})
		server.Close()
		done <- err
	}()
	buf := make([]byte, 4096)
	read := func(c net.Conn, want string) {
		t.Helper()
		var got []byte
		for !bytes.HasSuffix(got, []byte(want)) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("read: %v after %q, want %q", err, got, want)
			}
			got = append(got, buf[:n]...)
		}
	}
	read(client, stamp+"\r\n")
	client.Write([]byte("USER early\r\nSTLS\r\n"))
	read(client, "-ERR plain-text passwords need STLS first (or use APOP)\r\n+OK begin TLS negotiation\r\n")
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc.Write([]byte("CAPA\r\nPASS x\r\n"))
	read(tc, "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n-ERR USER first\r\n")
	tc.Write([]byte("USER joe\r\nPASS secret\r\nSTAT\r\n"))
	read(tc, "+OK \r\n+OK from the child\r\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(attempt.User) != "joe" || attempt.TLS == nil || string(attempt.Pending) != "STAT\r\n" {
		t.Errorf("attempt: user %q, TLS %v, pending %q", attempt.User, attempt.TLS, attempt.Pending)
	}
	if got := string(l.attempts[0].Secret); got != "secret" {
		t.Errorf("secret %q", got)
	}
	// The secret's buffer is wiped once the attempt is over.
	if bytes.Contains(attempt.Secret, []byte("secret")) {
		t.Error("the password is still in the session's buffer")
	}
}

// FuzzSession runs arbitrary input through the AUTHORIZATION state: the
// replies are lines ending in CRLF, every attempt's user and secret are
// free of control bytes, and no attempt is made on a line that is not
// PASS or APOP.
func FuzzSession(f *testing.F) {
	f.Add([]byte("USER joe\r\nPASS x\r\n"), false)
	f.Add([]byte("CAPA\r\nSTLS\r\nAPOP a b\r\n"), true)
	f.Add([]byte("USER\r\nPASS\r\nQUIT\r\n"), false)
	f.Fuzz(func(t *testing.T, script []byte, withTLS bool) {
		l := &fakeLauncher{out: Outcome{BadLogin, errors.New("no")}}
		cfg := Config{Stamp: stamp, Launcher: l, Sleep: func(time.Duration) {}}
		if withTLS {
			cfg.TLS = testTLS
		}
		c := &scriptConn{in: bytes.NewReader(script)}
		Serve(c, cfg)
		out := c.out.String()
		if !strings.HasSuffix(out, "\r\n") || strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") {
			t.Fatalf("reply %q has a line not ended by CRLF", out)
		}
		if len(l.attempts) > 1 {
			t.Fatalf("%d attempts in one connection", len(l.attempts))
		}
		for _, a := range l.attempts {
			if pop3.HasControl(a.User) || pop3.HasControl(a.Secret) || len(a.User) == 0 || len(a.Secret) == 0 {
				t.Fatalf("attempt with user %q secret %q", a.User, a.Secret)
			}
			if !bytes.Contains(bytes.ToUpper(script), []byte("PASS")) && !bytes.Contains(bytes.ToUpper(script), []byte("APOP")) {
				t.Fatalf("attempt without PASS or APOP in %q", script)
			}
		}
	})
}
