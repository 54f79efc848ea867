package smtpd

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/queue"
)

func init() { FailDelay = 0 }

// fakeQueue records what reaches the queue.
type fakeQueue struct {
	mu       sync.Mutex
	messages []queued
	aborted  int
	fail     error // returned by Finish
}

type queued struct {
	data string
	env  queue.Envelope
}

type fakeInjection struct {
	q   *fakeQueue
	buf bytes.Buffer
}

func (f *fakeInjection) Write(p []byte) (int, error) { return f.buf.Write(p) }
func (f *fakeInjection) Pid() int                    { return 4242 }
func (f *fakeInjection) Abort() {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	f.q.aborted++
}
func (f *fakeInjection) Finish(env queue.Envelope) error {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	if f.q.fail != nil {
		return f.q.fail
	}
	f.q.messages = append(f.q.messages, queued{f.buf.String(), env})
	return nil
}

func (q *fakeQueue) start() (Injector, error) { return &fakeInjection{q: q}, nil }

// fakeAuth accepts joe@example.test with password "secret".
type fakeAuth struct {
	calls []string
	err   error
}

func (a *fakeAuth) Check(user, secret, challenge string) (bool, error) {
	a.calls = append(a.calls, user+"|"+secret+"|"+challenge)
	if a.err != nil {
		return false, a.err
	}
	return user == "joe@example.test" && secret == "secret", nil
}

func testConfig(q *fakeQueue) Config {
	return Config{
		Greeting:    "mx.example.test",
		Hostname:    "mx.example.test",
		LocalIPHost: "example.test",
		DataBytes:   20971520,
		Timeout:     5 * time.Second,
		RemoteIP:    "192.0.2.7",
		RemoteHost:  "client.example.org",
		LocalHost:   "mx.example.test",
		LocalIP:     "192.0.2.1",
		RcptHost: func(d string) (bool, error) {
			d = strings.ToLower(d)
			return d == "example.test" || strings.HasSuffix(d, ".example.test"), nil
		},
		BadMailFrom: func(a string) bool { return a == "spammer@bad.example" },
		Recipient: func(a string) (RecipientError, error) {
			local, _ := splitAddr(a)
			switch local {
			case "nobody":
				return NoMailbox, nil
			case "broken":
				return RecipientOK, errors.New("lookup failed")
			case "user%elsewhere.example":
				return Relay, nil
			}
			return RecipientOK, nil
		},
		SenderAllowed: func(user, sender string) (bool, error) {
			_, d := splitAddr(sender)
			return d == "example.test", nil
		},
		Queue: q.start,
		Now:   func() time.Time { return time.Unix(1700000000, 0) },
	}
}

// converse runs a session over an in-memory connection, sends input
// (pipelined, all at once) and returns everything the server wrote.
func converse(t *testing.T, cfg Config, input string) (string, error) {
	t.Helper()
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(server, cfg)
		server.Close()
		done <- err
	}()
	go func() {
		io.WriteString(client, input)
	}()
	out, _ := io.ReadAll(client)
	client.Close()
	return string(out), <-done
}

// replies are the reply lines of a transcript.
func replies(out string) []string {
	return strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
}

func TestSessionDelivers(t *testing.T) {
	q := &fakeQueue{}
	out, err := converse(t, testConfig(q), "HELO client.example.org\r\n"+
		"MAIL FROM:<alice@example.org>\r\n"+
		"RCPT TO:<joe@example.test>\r\n"+
		"RCPT TO:<Sue@Sub.Example.Test>\r\n"+
		"DATA\r\n"+
		"Subject: hi\r\n\r\n..leading dot\r\nlone\rCR\r\n.\r\n"+
		"QUIT\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"220 mx.example.test ESMTP", "250 mx.example.test", "250 ok", "250 ok", "250 ok",
		"354 go ahead", "250 ok 1700000000 qp 4242", "221 mx.example.test"}
	if got := replies(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(q.messages) != 1 {
		t.Fatalf("%d messages queued", len(q.messages))
	}
	m := q.messages[0]
	wantData := "Received: from client.example.org (192.0.2.7)\n  by mx.example.test with SMTP; 14 Nov 2023 22:13:20 -0000\n" +
		"Subject: hi\n\n.leading dot\nlone\rCR\n"
	if m.data != wantData {
		t.Errorf("stored %q\nwant   %q", m.data, wantData)
	}
	if m.env.Sender != "alice@example.org" || strings.Join(m.env.Recipients, ",") != "joe@example.test,Sue@Sub.Example.Test" {
		t.Errorf("envelope %+v", m.env)
	}
}

func TestEHLO(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   func(*Config)
		wants []string
		nots  []string
	}{
		{"plain", func(c *Config) {}, []string{"250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8", "250 SIZE 20971520"}, []string{"STARTTLS", "AUTH"}},
		{"auth without TLS", func(c *Config) { c.Auth, c.AuthCRAM = &fakeAuth{}, true }, []string{"250 AUTH CRAM-MD5"}, []string{"PLAIN", "STARTTLS"}},
		{"auth without TLS or CRAM", func(c *Config) { c.Auth = &fakeAuth{} }, nil, []string{"AUTH", "STARTTLS"}},
		{"auth plaintext allowed", func(c *Config) { c.Auth, c.AuthCRAM = &fakeAuth{}, true; c.AuthPlaintext = true }, []string{"250 AUTH LOGIN PLAIN CRAM-MD5"}, nil},
		{"auth plaintext, no CRAM", func(c *Config) { c.Auth = &fakeAuth{}; c.AuthPlaintext = true }, []string{"250 AUTH LOGIN PLAIN"}, []string{"CRAM"}},
		{"tls", func(c *Config) { c.TLS = testTLS(t) }, []string{"250 STARTTLS"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(&fakeQueue{})
			tt.cfg(&cfg)
			out, _ := converse(t, cfg, "EHLO x\r\nQUIT\r\n")
			if !strings.HasPrefix(out, "220 mx.example.test ESMTP\r\n250-mx.example.test\r\n") {
				t.Errorf("reply %q", out)
			}
			for _, w := range tt.wants {
				if !strings.Contains(out, w+"\r\n") {
					t.Errorf("no %q in %q", w, out)
				}
			}
			for _, n := range tt.nots {
				if strings.Contains(out, n) {
					t.Errorf("%q in %q", n, out)
				}
			}
		})
	}
}

// step is one command and the reply it must get (a prefix, or a regexp
// when it starts with "~").
type step struct{ send, want string }

func runSteps(t *testing.T, cfg Config, steps []step) string {
	t.Helper()
	var in strings.Builder
	for _, s := range steps {
		in.WriteString(s.send)
	}
	in.WriteString("QUIT\r\n") // so the session ends without waiting for a timeout
	out, _ := converse(t, cfg, in.String())
	got := replies(out)[1:] // after the greeting
	for i, s := range steps {
		if s.want == "" {
			continue
		}
		if i >= len(got) {
			t.Fatalf("step %d %q: no reply; transcript:\n%s", i, s.send, out)
		}
		if strings.HasPrefix(s.want, "~") {
			if !regexp.MustCompile(s.want[1:]).MatchString(got[i]) {
				t.Errorf("step %d %q: got %q, want /%s/", i, s.send, got[i], s.want[1:])
			}
		} else if got[i] != s.want {
			t.Errorf("step %d %q: got %q, want %q", i, s.send, got[i], s.want)
		}
	}
	return out
}

const (
	reply552    = "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
	reply553    = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
	replySmtpLF = "451 See https://cr.yp.to/docs/smtplf.html."
)

func TestSizeLimits(t *testing.T) {
	q := &fakeQueue{}
	cfg := testConfig(q)
	cfg.DataBytes = 100
	big := strings.Repeat("0123456789abcdef\r\n", 10) // 170 bytes stored
	runSteps(t, cfg, []step{
		{"EHLO x\r\n", ""},
		{"", "250-PIPELINING"}, {"", "250-8BITMIME"}, {"", "250-SMTPUTF8"}, {"", "250 SIZE 100"},
		{"MAIL FROM:<a@example.org> SIZE=101\r\n", reply552},
		{"MAIL FROM:<a@example.org> SIZE=50 BODY=8BITMIME\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{big + ".\r\n", reply552},
		// The session goes on: the next message is accepted.
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{"small\r\n.\r\n", "~^250 ok \\d+ qp 4242$"},
	})
	if len(q.messages) != 1 || q.aborted != 1 {
		t.Errorf("%d queued, %d aborted; want 1 and 1", len(q.messages), q.aborted)
	}
}

func TestBareLFClosesWithoutQueueing(t *testing.T) {
	for name, data := range map[string]string{
		"bare LF":          "line\nmore\r\n.\r\n",
		"dot bare LF":      "line\r\n.\nMAIL FROM:<x@y>\r\n",
		"LF dot CRLF":      "line\n.\r\n",
		"bare LF at start": "\n.\n",
	} {
		t.Run(name, func(t *testing.T) {
			q := &fakeQueue{}
			out, _ := converse(t, testConfig(q), "MAIL FROM:<a@example.org>\r\nRCPT TO:<joe@example.test>\r\nDATA\r\n"+data+"QUIT\r\n")
			got := replies(out)
			if got[len(got)-1] != replySmtpLF {
				t.Errorf("last reply %q; transcript %q", got[len(got)-1], out)
			}
			if len(q.messages) != 0 || q.aborted != 1 {
				t.Errorf("%d queued, %d aborted", len(q.messages), q.aborted)
			}
		})
	}
}

// TestNoSmuggling: sequences that some servers take as the end of DATA
// are message content here.
func TestNoSmuggling(t *testing.T) {
	q := &fakeQueue{}
	data := "a\r\n\r.\r\nMAIL FROM:<evil@example.org>\r\nb\r.\r\r\n.\r\n"
	runSteps(t, testConfig(q), []step{
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{data, "~^250 ok"},
		{"QUIT\r\n", "221 mx.example.test"},
	})
	if len(q.messages) != 1 {
		t.Fatalf("%d queued", len(q.messages))
	}
	body := q.messages[0].data[strings.Index(q.messages[0].data, "SMTP; ")+40:]
	if want := "a\n\r.\nMAIL FROM:<evil@example.org>\nb\r.\r\n"; !strings.HasSuffix(q.messages[0].data, want) {
		t.Errorf("stored ...%q, want suffix %q", body, want)
	}
}

func TestSequenceErrors(t *testing.T) {
	runSteps(t, testConfig(&fakeQueue{}), []step{
		{"RCPT TO:<joe@example.test>\r\n", "503 MAIL first (#5.5.1)"},
		{"DATA\r\n", "503 MAIL first (#5.5.1)"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"DATA\r\n", "503 RCPT first (#5.5.1)"},
		{"MAIL FROM:a@example.org\r\n", "250 ok"}, // qmail takes an address without brackets
		{"MAIL FROM a@example.org\r\n", "555 syntax error (#5.5.4)"},
		{"MAIL FROM:<a@example.org> FOO=BAR\r\n", "555 syntax error (#5.5.4)"},
		{"MAIL FROM:<" + strings.Repeat("a", 400) + "@" + strings.Repeat("b", 400) + ".example>\r\n", "500 sorry, that command line is too long (#5.5.2)"},
		{"BOGUS\r\n", "502 unimplemented (#5.5.1)"},
		{"NOOP\r\n", "250 ok"},
		{"VRFY joe\r\n", "252 send some mail, i'll try my best"},
		{"RSET\r\n", "250 flushed"},
		{"RCPT TO:<joe@example.test>\r\n", "503 MAIL first (#5.5.1)"},
		{"HELP\r\n", "~^214 "},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<postmaster>\r\n", "250 ok"},
		{"RCPT TO:<joe>\r\n", "555 syntax error (#5.5.4)"},
		{"QUIT\r\n", "221 mx.example.test"},
	})
}

func TestRelayRules(t *testing.T) {
	t.Run("anonymous", func(t *testing.T) {
		runSteps(t, testConfig(&fakeQueue{}), []step{
			{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
			{"RCPT TO:<x@elsewhere.example>\r\n", reply553},
			{"RCPT TO:<x@example.test.>\r\n", reply553},
			{"RCPT TO:<x@[10.1.2.3]>\r\n", reply553},
			{"RCPT TO:<\"x@elsewhere.example\"@example.test>\r\n", reply553},
			{"RCPT TO:<@example.test:x@elsewhere.example>\r\n", reply553},
			{"RCPT TO:<user%elsewhere.example@example.test>\r\n", reply553},
			{"RCPT TO:<x@notexample.test>\r\n", reply553},
			{"RCPT TO:<nobody@example.test>\r\n", "550 sorry, no mailbox here by that name (#5.1.1)"},
			{"RCPT TO:<broken@example.test>\r\n", "451 sorry, I can't check that recipient right now (#4.3.0)"},
			// A domain literal of the address we answer on is ours.
			{"RCPT TO:<joe@[192.0.2.1]>\r\n", "250 ok"},
			{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		})
	})
	t.Run("RELAYCLIENT", func(t *testing.T) {
		q := &fakeQueue{}
		cfg := testConfig(q)
		cfg.RelayClient, cfg.HasRelayClient = "", true
		runSteps(t, cfg, []step{
			{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
			{"RCPT TO:<x@elsewhere.example>\r\n", "250 ok"},
			{"DATA\r\n", "354 go ahead"},
			{"hi\r\n.\r\n", "~^250 ok"},
		})
		if len(q.messages) != 1 || q.messages[0].env.Recipients[0] != "x@elsewhere.example" {
			t.Errorf("queued %+v", q.messages)
		}
	})
	t.Run("POP-before-SMTP", func(t *testing.T) {
		cfg := testConfig(&fakeQueue{})
		cfg.PopGrant = func() (bool, error) { return true, nil }
		runSteps(t, cfg, []step{
			{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
			{"RCPT TO:<x@elsewhere.example>\r\n", "250 ok"},
		})
	})
	t.Run("submission ignores RELAYCLIENT and POP grants", func(t *testing.T) {
		cfg := testConfig(&fakeQueue{})
		cfg.Mode = Submission
		cfg.RelayClient, cfg.HasRelayClient = "", true
		cfg.PopGrant = func() (bool, error) { return true, nil }
		runSteps(t, cfg, []step{
			{"EHLO x\r\n", ""}, {"", ""}, {"", ""}, {"", ""}, {"", "250 SIZE 20971520"},
			{"MAIL FROM:<joe@example.test>\r\n", "530 5.7.0 Authentication required"},
			{"RCPT TO:<x@elsewhere.example>\r\n", "530 5.7.0 Authentication required"},
			{"DATA\r\n", "530 5.7.0 Authentication required"},
			{"VRFY x\r\n", "530 5.7.0 Authentication required"},
			{"NOOP\r\n", "250 ok"},
			{"RSET\r\n", "250 flushed"},
			{"AUTH PLAIN\r\n", "503 auth not available (#5.3.3)"},
			{"QUIT\r\n", "221 mx.example.test"},
		})
	})
	t.Run("badmailfrom", func(t *testing.T) {
		runSteps(t, testConfig(&fakeQueue{}), []step{
			{"MAIL FROM:<spammer@bad.example>\r\n", "250 ok"},
			{"RCPT TO:<joe@example.test>\r\n", "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		})
	})
}

func plain(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuth(t *testing.T) {
	cfgWith := func(a Authenticator, mode Mode) Config {
		cfg := testConfig(&fakeQueue{})
		cfg.Auth, cfg.AuthPlaintext, cfg.AuthCRAM, cfg.Mode = a, true, true, mode
		return cfg
	}
	t.Run("PLAIN then relay and own-domain sender", func(t *testing.T) {
		q := &fakeQueue{}
		cfg := cfgWith(&fakeAuth{}, Submission)
		cfg.Queue = q.start
		runSteps(t, cfg, []step{
			{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "235 ok, go ahead (#2.0.0)"},
			{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "503 you're already authenticated (#5.5.0)"},
			{"MAIL FROM:<someone@example.org>\r\n", "553 sorry, that sender address is not yours to use (#5.7.1)"},
			{"MAIL FROM:<joe@example.test>\r\n", "250 ok"},
			{"AUTH LOGIN\r\n", "503 you're already authenticated (#5.5.0)"},
			{"RCPT TO:<x@elsewhere.example>\r\n", "250 ok"},
			{"DATA\r\n", "354 go ahead"},
			{"hi\r\n.\r\n", "~^250 ok"},
		})
		if !strings.HasPrefix(q.messages[0].data, "Received: from client.example.org (joe@example.test@192.0.2.7)\n  by mx.example.test with ESMTPA; ") {
			t.Errorf("Received: %q", q.messages[0].data)
		}
	})
	t.Run("PLAIN with a prompt", func(t *testing.T) {
		runSteps(t, cfgWith(&fakeAuth{}, MX), []step{
			{"AUTH PLAIN\r\n", "334 "},
			{plain("joe", "joe@example.test", "secret") + "\r\n", "235 ok, go ahead (#2.0.0)"},
		})
	})
	t.Run("LOGIN", func(t *testing.T) {
		runSteps(t, cfgWith(&fakeAuth{}, MX), []step{
			{"AUTH LOGIN\r\n", "334 VXNlcm5hbWU6"},
			{b64("joe@example.test") + "\r\n", "334 UGFzc3dvcmQ6"},
			{b64("secret") + "\r\n", "235 ok, go ahead (#2.0.0)"},
		})
		runSteps(t, cfgWith(&fakeAuth{}, MX), []step{
			{"AUTH LOGIN " + b64("joe@example.test") + "\r\n", "334 UGFzc3dvcmQ6"},
			{"*\r\n", "501 auth exchange canceled (#5.0.0)"},
		})
	})
	t.Run("CRAM-MD5", func(t *testing.T) {
		a := &fakeAuth{}
		out := runSteps(t, cfgWith(a, MX), []step{
			{"AUTH CRAM-MD5\r\n", "~^334 [A-Za-z0-9+/=]+$"},
			{b64("joe@example.test 0123456789abcdef0123456789abcdef") + "\r\n", "535 authentication failed (#5.7.1)"},
		})
		ch, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(replies(out)[1], "334 "))
		if !regexp.MustCompile(`^<\d+\.\d+@mx\.example\.test>$`).Match(ch) {
			t.Errorf("challenge %q", ch)
		}
		if len(a.calls) != 1 || a.calls[0] != "joe@example.test|0123456789abcdef0123456789abcdef|"+string(ch) {
			t.Errorf("checker got %q", a.calls)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		a := &fakeAuth{}
		runSteps(t, cfgWith(a, MX), []step{
			{"AUTH PLAIN " + plain("", "joe@example.test\x00x", "secret") + "\r\n", "501 malformed auth input (#5.5.4)"},
			{"AUTH PLAIN " + plain("", "joe@example.test", "sec\x00ret") + "\r\n", "501 malformed auth input (#5.5.4)"},
			{"AUTH PLAIN " + plain("", "joe\r\n@example.test", "secret") + "\r\n", "501 malformed auth input (#5.5.4)"},
			{"AUTH PLAIN " + plain("", "", "secret") + "\r\n", "501 malformed auth input (#5.5.4)"},
			{"AUTH PLAIN !!!\r\n", "501 malformed auth input (#5.5.4)"},
			{"AUTH XOAUTH2\r\n", "504 auth type unimplemented (#5.5.1)"},
		})
		if len(a.calls) != 0 {
			t.Errorf("the checker ran for malformed input: %q", a.calls)
		}
	})
	t.Run("PLAIN needs TLS", func(t *testing.T) {
		cfg := cfgWith(&fakeAuth{}, MX)
		cfg.AuthPlaintext = false
		runSteps(t, cfg, []step{
			{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "538 auth not available without TLS (#5.3.3)"},
			{"AUTH LOGIN\r\n", "538 auth not available without TLS (#5.3.3)"},
		})
	})
	t.Run("checker failure is temporary", func(t *testing.T) {
		runSteps(t, cfgWith(&fakeAuth{err: errors.New("crashed")}, Submission), []step{
			{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "454 oops, problem with child and I can't auth (#4.3.0)"},
			{"MAIL FROM:<joe@example.test>\r\n", "530 5.7.0 Authentication required"},
		})
	})
	t.Run("failures end the session", func(t *testing.T) {
		var steps []step
		for i := 0; i < maxAuthFailures; i++ {
			steps = append(steps, step{"AUTH PLAIN " + plain("", "joe@example.test", "wrong") + "\r\n", "535 authentication failed (#5.7.1)"})
		}
		steps = append(steps, step{"", "421 too many failed authentications, closing connection (#4.7.0)"})
		steps = append(steps, step{"NOOP\r\n", ""})
		out := runSteps(t, cfgWith(&fakeAuth{}, MX), steps)
		if strings.Contains(out, "250 ok") {
			t.Errorf("session went on: %q", out)
		}
	})
	t.Run("AUTH during a transaction", func(t *testing.T) {
		runSteps(t, cfgWith(&fakeAuth{}, MX), []step{
			{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
			{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "503 no auth during mail transaction (#5.5.0)"},
		})
	})
}

func TestBadInput(t *testing.T) {
	q := &fakeQueue{}
	cfg := testConfig(q)
	cfg.MaxRcpt = 3
	long := strings.Repeat("x", 1200)
	runSteps(t, cfg, []step{
		{"NOOP " + strings.Repeat("y", 600) + "\r\n", "500 sorry, that command line is too long (#5.5.2)"},
		{"NO\x00OP\r\n", "500 sorry, a command may not contain a NUL byte (#5.5.2)"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "452 sorry, too many recipients (#4.5.3)"},
		{"DATA\r\n", "354 go ahead"},
		{"short\r\n" + long + "\r\n.\r\n", "554 sorry, the message has a line longer than 1000 octets (#5.6.0)"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{strings.Repeat("Received: from x\r\n", 100) + "\r\nbody\r\n.\r\n", "554 too many hops, this message is looping (#5.4.6)"},
	})
	if len(q.messages) != 0 || q.aborted != 2 {
		t.Errorf("%d queued, %d aborted", len(q.messages), q.aborted)
	}
}

func TestTooManyErrors(t *testing.T) {
	out, _ := converse(t, testConfig(&fakeQueue{}), strings.Repeat("JUNK\r\n", maxErrors+5))
	got := replies(out)
	if n := len(got); n != maxErrors+2 || got[n-1] != "421 too many errors, closing connection (#4.7.0)" {
		t.Errorf("%d replies, last %q", len(got), got[len(got)-1])
	}
}

func TestQueueRefusal(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{qq.Status(53), "451 qq write error or disk full (#4.3.0)"},
		{qq.Status(31), "554 mail server permanently rejected message (#5.3.0)"},
		{&qq.Error{Code: 82, Text: "virus found (#5.7.1)", Permanent: true}, "554 virus found (#5.7.1)"},
	} {
		q := &fakeQueue{fail: tt.err}
		runSteps(t, testConfig(q), []step{
			{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
			{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
			{"DATA\r\n", "354 go ahead"},
			{"hi\r\n.\r\n", tt.want},
		})
	}
}

func TestTimeout(t *testing.T) {
	cfg := testConfig(&fakeQueue{})
	cfg.Timeout = 100 * time.Millisecond
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(server, cfg); server.Close() }()
	out, _ := io.ReadAll(client)
	if string(out) != "220 mx.example.test ESMTP\r\n451 timeout (#4.4.2)\r\n" {
		t.Errorf("got %q", out)
	}
	if err := <-done; err == nil {
		t.Error("no error after a timeout")
	}
}

func TestReceivedFiltersFields(t *testing.T) {
	q := &fakeQueue{}
	cfg := testConfig(q)
	cfg.RemoteInfo = "id ent"
	runSteps(t, cfg, []step{
		{"HELO evil\tname(x)\r\n", "250 mx.example.test"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{"hi\r\n.\r\n", "~^250 ok"},
	})
	want := "Received: from client.example.org (HELO evil?name?x?) (id?ent@192.0.2.7)\n  by mx.example.test with SMTP; 14 Nov 2023 22:13:20 -0000\n"
	if !strings.HasPrefix(q.messages[0].data, want) {
		t.Errorf("got  %q\nwant %q", q.messages[0].data, want)
	}
}

func testTLS(t testing.TB) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.test"},
		DNSNames: []string{"mx.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestSTARTTLSDiscardsPipelinedCommands: a command sent in plaintext
// behind STARTTLS must not run inside the TLS session (CVE-2011-0411).
func TestSTARTTLSDiscardsPipelinedCommands(t *testing.T) {
	q := &fakeQueue{}
	cfg := testConfig(q)
	cfg.TLS = testTLS(t)
	cfg.Auth, cfg.AuthCRAM, cfg.Mode = &fakeAuth{}, true, Submission
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(server, cfg); server.Close() }()
	r := bufio.NewReader(client)
	expect := func(r *bufio.Reader, want string) {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
	expect(r, "220 ")
	io.WriteString(client, "STARTTLS\r\nAUTH PLAIN "+plain("", "joe@example.test", "secret")+"\r\n")
	expect(r, "220 ready for tls")
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tr := bufio.NewReader(tc)
	io.WriteString(tc, "EHLO x\r\n")
	var ehlo []string
	for {
		line, err := tr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		ehlo = append(ehlo, line)
		if line[3] == ' ' {
			break
		}
	}
	if s := strings.Join(ehlo, ""); !strings.Contains(s, "250-AUTH LOGIN PLAIN CRAM-MD5") && !strings.Contains(s, "AUTH LOGIN PLAIN CRAM-MD5") || strings.Contains(s, "STARTTLS") {
		t.Errorf("EHLO after TLS: %q", s)
	}
	// Had the pipelined AUTH run, this would be "503 already authenticated".
	io.WriteString(tc, "MAIL FROM:<joe@example.test>\r\n")
	expect(tr, "530 5.7.0")
	io.WriteString(tc, "AUTH PLAIN "+plain("", "joe@example.test", "secret")+"\r\n")
	expect(tr, "235 ")
	io.WriteString(tc, "MAIL FROM:<joe@example.test>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n")
	expect(tr, "250 ok")
	expect(tr, "250 ok")
	expect(tr, "354 ")
	io.WriteString(tc, "hi\r\n.\r\nQUIT\r\n")
	expect(tr, "250 ok")
	expect(tr, "221 ")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`with ESMTPSA \(TLS 1\.[23] TLS_\w+ encrypted\); `).MatchString(q.messages[0].data) {
		t.Errorf("Received: %q", q.messages[0].data)
	}
}

func TestSMTPS(t *testing.T) {
	cfg := testConfig(&fakeQueue{})
	cfg.TLS, cfg.Mode, cfg.Auth = testTLS(t), SMTPS, &fakeAuth{}
	server, client := net.Pipe()
	go func() { Serve(server, cfg); server.Close() }()
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	r := bufio.NewReader(tc)
	line, err := r.ReadString('\n')
	if err != nil || line != "220 mx.example.test ESMTP\r\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	io.WriteString(tc, "MAIL FROM:<joe@example.test>\r\n")
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "530 5.7.0") {
		t.Errorf("MAIL before AUTH on smtps: %q", line)
	}
	tc.Close()
}

// TestSTARTTLSForgetsAuth: RFC 3207 §4.2, nothing learned before TLS
// survives it, a login least of all.
func TestSTARTTLSForgetsAuth(t *testing.T) {
	cfg := testConfig(&fakeQueue{})
	cfg.TLS, cfg.Auth, cfg.AuthPlaintext, cfg.Mode = testTLS(t), &fakeAuth{}, true, Submission
	server, client := net.Pipe()
	go func() { Serve(server, cfg); server.Close() }()
	defer client.Close()
	r := bufio.NewReader(client)
	read := func(r *bufio.Reader) string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	read(r)
	io.WriteString(client, "AUTH PLAIN "+plain("", "joe@example.test", "secret")+"\r\n")
	if l := read(r); !strings.HasPrefix(l, "235 ") {
		t.Fatalf("AUTH: %q", l)
	}
	io.WriteString(client, "STARTTLS\r\n")
	if l := read(r); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	tr := bufio.NewReader(tc)
	io.WriteString(tc, "MAIL FROM:<joe@example.test>\r\n")
	if l := read(tr); !strings.HasPrefix(l, "530 5.7.0") {
		t.Errorf("MAIL inside TLS after a login before it: %q", l)
	}
}

// TestRefusedRecipientsKeepTheTransaction: many unknown recipients in a
// row (a list post with stale addresses) neither end the session nor
// lose the valid ones.
func TestRefusedRecipientsKeepTheTransaction(t *testing.T) {
	q := &fakeQueue{}
	steps := []step{{"MAIL FROM:<list@example.org>\r\n", "250 ok"}}
	for i := 0; i < 3*maxErrors; i++ {
		steps = append(steps, step{"RCPT TO:<nobody@example.test>\r\n", "550 sorry, no mailbox here by that name (#5.1.1)"})
	}
	steps = append(steps, step{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		step{"DATA\r\n", "354 go ahead"}, step{"hi\r\n.\r\n", "~^250 ok"})
	runSteps(t, testConfig(q), steps)
	if len(q.messages) != 1 {
		t.Errorf("%d messages queued", len(q.messages))
	}
}

// TestRelayClientsStillNeedMailboxes: a client that may relay still
// cannot make us accept mail for an address of ours that does not exist.
func TestRelayClientsStillNeedMailboxes(t *testing.T) {
	cfg := testConfig(&fakeQueue{})
	cfg.RelayClient, cfg.HasRelayClient = "", true
	runSteps(t, cfg, []step{
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<nobody@example.test>\r\n", "550 sorry, no mailbox here by that name (#5.1.1)"},
		{"RCPT TO:<user%elsewhere.example@example.test>\r\n", "250 ok"},
		{"RCPT TO:<x@elsewhere.example>\r\n", "250 ok"},
	})
}

// TestAuthFailuresSlowDown: each failure, the checker's own included,
// waits one FailDelay longer than the one before.
func TestAuthFailuresSlowDown(t *testing.T) {
	FailDelay = 40 * time.Millisecond
	defer func() { FailDelay = 0 }()
	for _, a := range []*fakeAuth{{}, {err: errors.New("checker crashed")}} {
		cfg := testConfig(&fakeQueue{})
		cfg.Auth, cfg.AuthPlaintext = a, true
		start := time.Now()
		runSteps(t, cfg, []step{
			{"AUTH PLAIN " + plain("", "joe@example.test", "wrong") + "\r\n", "~^(535|454) "},
			{"AUTH PLAIN " + plain("", "joe@example.test", "wrong") + "\r\n", "~^(535|454) "},
			{"AUTH PLAIN " + plain("", "joe@example.test", "wrong") + "\r\n", "~^(535|454) "},
		})
		if d := time.Since(start); d < 6*FailDelay {
			t.Errorf("three failures (checker error %v) took %v, want at least %v", a.err, d, 6*FailDelay)
		}
	}
}

// TestContractLimits: quota and rate refusals at RCPT, again at the end
// of DATA, and the count of what was accepted.
func TestContractLimits(t *testing.T) {
	q := &fakeQueue{}
	cfg := testConfig(q)
	cfg.Auth, cfg.AuthPlaintext = &fakeAuth{}, true
	var full, sendBlocked bool
	var counted []string
	cfg.Contract = func(d string) string {
		if strings.HasSuffix(strings.ToLower(d), "example.test") {
			return "example.test"
		}
		return ""
	}
	cfg.ReceiveCheck = func(c string, size int64) (string, error) {
		if full || size > 1000 {
			return "452 sorry, mailbox is full (#4.5.2)", nil
		}
		return "", nil
	}
	cfg.SendCheck = func(c string) (string, error) {
		if sendBlocked {
			return "423 sorry, that message exceeds my limit", nil
		}
		return "", nil
	}
	cfg.Accepted = func(send string, rcpts []string) error {
		counted = append(counted, send+">"+strings.Join(rcpts, ","))
		return nil
	}
	runSteps(t, cfg, []step{
		{"MAIL FROM:<a@example.org> SIZE=5000\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "452 sorry, mailbox is full (#4.5.2)"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{strings.Repeat("0123456789\r\n", 100) + ".\r\n", "452 sorry, mailbox is full (#4.5.2)"},
		{"MAIL FROM:<a@example.org>\r\n", "250 ok"},
		{"RCPT TO:<joe@example.test>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{"small\r\n.\r\n", "~^250 ok"},
		{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "235 ok, go ahead (#2.0.0)"},
		{"MAIL FROM:<joe@example.test>\r\n", "250 ok"},
		{"RCPT TO:<x@elsewhere.example>\r\n", "250 ok"},
		{"DATA\r\n", "354 go ahead"},
		{"out\r\n.\r\n", "~^250 ok"},
	})
	if want := []string{">example.test", "example.test>"}; strings.Join(counted, " ") != strings.Join(want, " ") {
		t.Errorf("counted %q, want %q", counted, want)
	}
	if len(q.messages) != 2 || q.aborted != 1 {
		t.Errorf("%d queued, %d aborted", len(q.messages), q.aborted)
	}
	sendBlocked = true
	runSteps(t, cfg, []step{
		{"AUTH PLAIN " + plain("", "joe@example.test", "secret") + "\r\n", "235 ok, go ahead (#2.0.0)"},
		{"MAIL FROM:<joe@example.test>\r\n", "250 ok"},
		{"RCPT TO:<x@elsewhere.example>\r\n", "423 sorry, that message exceeds my limit"},
	})
}
