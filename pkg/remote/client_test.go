package remote

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const msg1 = "Subject: hi\n\nhello\n"

// deliverTo runs Deliver with test settings and returns what
// qmail-remote would print.
func deliverTo(t *testing.T, mod func(*Config), targets []Target, sender string, rcpts []string, msg string) string {
	t.Helper()
	cfg := Config{Domain: "example.org", HeloHost: "helo.test", ConnectTimeout: 2 * time.Second, Timeout: 2 * time.Second, Targets: targets}
	if mod != nil {
		mod(&cfg)
	}
	res := Deliver(context.Background(), cfg, sender, rcpts, strings.NewReader(msg), int64(len(msg)))
	var b bytes.Buffer
	if err := WriteResult(&b, res); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const (
	greetHelo = `
		< 220 peer.test ESMTP
		>! EHLO helo.test
		< 250 peer.test`
	plainTail = `
		< 354 go ahead
		>DATA
		< 250 ok queued
		EOF`
)

func TestDeliverDialogues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		rcpts  []string
		script string
		want   string
	}{
		{"accepted", []string{"b@example.org"}, greetHelo + `
			>! MAIL FROM:<a@example.net>
			< 250 ok
			>! RCPT TO:<b@example.org>
			< 250 ok
			>! DATA` + plainTail,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"},
		{"multi-line final reply", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go ahead
			>DATA
			< 250-ok
			< 250 queued as 12
			EOF`,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250-ok\n250 queued as 12\n\x00"},
		{"EHLO refused, HELO", []string{"b@example.org"}, `
			< 220 peer.test
			> EHLO helo.test
			< 502 what
			> HELO helo.test
			< 250 hi
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA` + plainTail,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"},
		{"HELO refused", []string{"b@example.org"}, `
			< 220 peer.test
			> EHLO helo.test
			< 502 what
			> HELO helo.test
			< 550 go away
			EOF`,
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 550 go away\n\x00"},
		{"greeting 421", []string{"b@example.org"}, `
			< 421 busy
			EOF`,
			"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n\x00"},
		{"greeting 554", []string{"b@example.org"}, `
			< 554-no
			< 554 never
			EOF`,
			"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554-no\n554 never\n\x00"},
		{"MAIL 550", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 550 5.7.1 no
			EOF`,
			"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 550 5.7.1 no\n\x00"},
		{"MAIL 451", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 451 later
			EOF`,
			"ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 later\n\x00"},
		{"RCPT mixed", []string{"b@example.org", "c@example.org", "d@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> RCPT TO:<c@example.org>
			< 550 5.1.1 unknown
			> RCPT TO:<d@example.org>
			< 451 4.7.1 greylisted
			> DATA` + plainTail,
			"r\x00h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 unknown\n\x00" +
				"s127.0.0.1 does not like recipient.\nRemote host said: 451 4.7.1 greylisted\n\x00" +
				"K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"},
		{"RCPT all refused", []string{"b@example.org", "c@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 550 no
			> RCPT TO:<c@example.org>
			< 450 later
			EOF`,
			"h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\x00" +
				"s127.0.0.1 does not like recipient.\nRemote host said: 450 later\n\x00" +
				"DGiving up on 127.0.0.1.\n\x00"},
		{"DATA 554", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 554 no data
			EOF`,
			"r\x00D127.0.0.1 failed on DATA command.\nRemote host said: 554 no data\n\x00"},
		{"DATA 451", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 451 later
			EOF`,
			"r\x00Z127.0.0.1 failed on DATA command.\nRemote host said: 451 later\n\x00"},
		{"after dot 554", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go
			>DATA
			< 554 5.7.1 spam
			EOF`,
			"r\x00D127.0.0.1 failed after I sent the message.\nRemote host said: 554 5.7.1 spam\n\x00"},
		{"after dot 452", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go
			>DATA
			< 452 full
			EOF`,
			"r\x00Z127.0.0.1 failed after I sent the message.\nRemote host said: 452 full\n\x00"},
		{"died after dot", []string{"b@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go
			>DATA
			CLOSE`,
			"r\x00ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n\x00"},
		{"died during RCPT", []string{"b@example.org", "c@example.org"}, greetHelo + `
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> RCPT TO:<c@example.org>
			CLOSE`,
			// b's acceptance meant nothing without the message: only
			// refusals are kept when the connection dies early.
			"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\x00"},
		{"PIPELINING", []string{"b@example.org", "c@example.org"}, `
			< 220 peer.test ESMTP
			> EHLO helo.test
			< 250-peer.test
			< 250-PIPELINING
			< 250 HELP
			> MAIL FROM:<a@example.net>
			>+ RCPT TO:<b@example.org>
			>+ RCPT TO:<c@example.org>
			>+ DATA
			< 250 ok
			< 250 ok
			< 550 no
			< 354 go ahead
			>DATA
			< 250 ok queued
			EOF`,
			"r\x00h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"},
		{"PIPELINING, no recipient", []string{"b@example.org"}, `
			< 220 peer.test ESMTP
			> EHLO helo.test
			< 250-peer.test
			< 250 PIPELINING
			> MAIL FROM:<a@example.net>
			>+ RCPT TO:<b@example.org>
			>+ DATA
			< 250 ok
			< 550 no
			< 554 no valid recipients
			EOF`,
			"h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\x00DGiving up on 127.0.0.1.\n\x00"},
		{"PIPELINING, MAIL refused", []string{"b@example.org"}, `
			< 220 peer.test ESMTP
			> EHLO helo.test
			< 250-peer.test
			< 250 PIPELINING
			> MAIL FROM:<a@example.net>
			>+ RCPT TO:<b@example.org>
			>+ DATA
			< 553 bad sender
			<? 503 no
			<? 503 no
			CLOSE`,
			"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 bad sender\n\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, tgt := startPeer(t, nil, tc.script)
			got := deliverTo(t, nil, []Target{tgt}, "a@example.net", tc.rcpts, msg1)
			p.wait(t, 1)
			if got != tc.want {
				t.Errorf("output\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// A port nothing listens on.
func deadTarget(t *testing.T) Target {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return Target{Addr: ap}
}

const acceptScript = greetHelo + `
	> MAIL FROM:<a@example.net>
	< 250 ok
	> RCPT TO:<b@example.org>
	< 250 ok
	> DATA` + plainTail

func TestNextTarget(t *testing.T) {
	t.Parallel()
	wantOK := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"
	t.Run("refused, then accepted", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{deadTarget(t), tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("nothing reachable", func(t *testing.T) {
		t.Parallel()
		got := deliverTo(t, nil, []Target{deadTarget(t), deadTarget(t)}, "a@example.net", []string{"b@example.org"}, msg1)
		if want := "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("no targets", func(t *testing.T) {
		t.Parallel()
		got := deliverTo(t, nil, nil, "a@example.net", []string{"b@example.org"}, msg1)
		if want := "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("bad greeting, then accepted", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, "< 421 busy\nEOF")
		p2, t2 := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("dies before MAIL reply, then accepted", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+"\n> MAIL FROM:<a@example.net>\nCLOSE")
		p2, t2 := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("MAIL 451, then accepted", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+"\n> MAIL FROM:<a@example.net>\n< 451 later\nEOF")
		p2, t2 := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("MAIL 451 everywhere", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+"\n> MAIL FROM:<a@example.net>\n< 451 later\nEOF")
		got := deliverTo(t, nil, []Target{t1, deadTarget(t)}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		if want := "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 later\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("MAIL 550 is final", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+"\n> MAIL FROM:<a@example.net>\n< 550 go away\nEOF")
		t2, contacted := idleTarget(t, "127.0.0.1")
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		if want := "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 550 go away\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if contacted() {
			t.Error("the next target was tried after a 5xx to MAIL")
		}
	})
	t.Run("RCPT 550 is final", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 550 no such user
			EOF`)
		t2, contacted := idleTarget(t, "127.0.0.1")
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		if want := "h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\x00DGiving up on 127.0.0.1.\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if contacted() {
			t.Error("the next target was tried after a 5xx to RCPT")
		}
	})
	t.Run("dies at DATA: answers kept, the rest to the next", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 550 no such user
			> RCPT TO:<c@example.org>
			< 250 ok
			> RCPT TO:<d@example.org>
			< 451 greylisted
			> DATA
			CLOSE`)
		p2, t2 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<c@example.org>
			< 250 ok
			> DATA`+plainTail)
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org", "c@example.org", "d@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		want := "h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\x00r\x00" +
			"s127.0.0.1 does not like recipient.\nRemote host said: 451 greylisted\n\x00" +
			"K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"
		if got != want {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("dies after 354, nothing sent: next", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			CLOSE`)
		p2, t2 := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("dies during RCPT everywhere: kept answers, the rest deferred", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> RCPT TO:<c@example.org>
			< 550 no such user
			> RCPT TO:<d@example.org>
			CLOSE`)
		got := deliverTo(t, nil, []Target{t1, deadTarget(t)}, "a@example.net", []string{"b@example.org", "c@example.org", "d@example.org"}, msg1)
		p1.wait(t, 1)
		// b has no answer of its own before c's: it shares the
		// message's verdict (an "s" without text).
		want := "s\x00h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\x00" +
			"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\x00"
		if got != want {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("dies after the dot is final", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go
			>DATA
			CLOSE`)
		t2, contacted := idleTarget(t, "127.0.0.1")
		got := deliverTo(t, nil, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		if want := "r\x00ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if contacted() {
			t.Error("the next target was tried after the message may have been delivered")
		}
	})
	t.Run("all fail: last answer reported", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, "< 421 busy\nEOF")
		got := deliverTo(t, nil, []Target{t1, deadTarget(t)}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		if want := "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	quick := func(c *Config) { c.Timeout = 200 * time.Millisecond }
	t.Run("silent peer", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, nil, "HANG")
		start := time.Now()
		got := deliverTo(t, quick, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if want := "ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("silent peer, then accepted", func(t *testing.T) {
		t.Parallel()
		p1, t1 := startPeer(t, nil, "HANG")
		p2, t2 := startPeer(t, nil, acceptScript)
		got := deliverTo(t, quick, []Target{t1, t2}, "a@example.net", []string{"b@example.org"}, msg1)
		p1.wait(t, 1)
		p2.wait(t, 1)
		if want := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("silent after DATA", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, nil, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA
			< 354 go
			>DATA
			HANG`)
		got := deliverTo(t, quick, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if want := "r\x00ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
}

func TestSTARTTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	tlsScript := `
		< 220 peer.test ESMTP
		> EHLO helo.test
		< 250-peer.test
		< 250 STARTTLS
		> STARTTLS
		< 220 go ahead
		TLS
		> EHLO helo.test
		< 250 peer.test
		> MAIL FROM:<a@example.net>
		< 250 ok
		> RCPT TO:<b@example.org>
		< 250 ok
		> DATA` + plainTail
	wantOK := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"
	required := func(c *Config) { c.TLS = TLSRequired; c.RootCAs = pool }

	t.Run("opportunistic", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, cert, tlsScript)
		tgt.Name = "mx.elsewhere.test" // not checked
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
		if !p.gotTLS(t) {
			t.Error("message not sent over TLS")
		}
	})
	t.Run("required and verified", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, cert, tlsScript)
		got := deliverTo(t, required, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("required but not offered", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, cert, greetHelo+"\nEOF")
		got := deliverTo(t, required, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		want := "ZConnected to 127.0.0.1 but it does not offer STARTTLS, which control/tlsrequired requires for example.org. (#4.7.0)\n\x00"
		if got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("required, wrong name", func(t *testing.T) {
		t.Parallel()
		_, tgt := startPeer(t, cert, "< 220 peer.test\n> EHLO helo.test\n< 250-peer.test\n< 250 STARTTLS\n> STARTTLS\n< 220 go\nTLS")
		tgt.Name = "mx.elsewhere.test"
		got := deliverTo(t, required, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		if !strings.HasPrefix(got, "ZConnected to 127.0.0.1 but the TLS handshake failed: ") || !strings.HasSuffix(got, "(#4.7.5)\n\x00") || !strings.Contains(got, "mx.elsewhere.test") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("opportunistic, handshake fails: plain text", func(t *testing.T) {
		t.Parallel()
		bad := `
			< 220 peer.test
			> EHLO helo.test
			< 250-peer.test
			< 250 STARTTLS
			> STARTTLS
			< 220 go
			CLOSE`
		p, tgt := startPeer(t, cert, bad, greetHelo+`
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA`+plainTail)
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 2)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
	t.Run("opportunistic, STARTTLS refused: plain text", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, cert, `
			< 220 peer.test
			> EHLO helo.test
			< 250-peer.test
			< 250 STARTTLS
			> STARTTLS
			< 454 not now
			> MAIL FROM:<a@example.net>
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA`+plainTail)
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		if got != wantOK {
			t.Errorf("got %q", got)
		}
	})
}

func TestSizeAnd8BitMIME(t *testing.T) {
	t.Parallel()
	t.Run("too large for the peer", func(t *testing.T) {
		t.Parallel()
		p, tgt := startPeer(t, nil, `
			< 220 peer.test
			> EHLO helo.test
			< 250-peer.test
			< 250 SIZE 10
			EOF`)
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg1)
		p.wait(t, 1)
		// msg1 in DATA form: 3 lines, LF made CRLF: 19 + 3 bytes.
		if want := "D127.0.0.1 accepts messages of at most 10 bytes and this one has 22. (#5.3.4)\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
	})
	t.Run("SIZE and BODY sent", func(t *testing.T) {
		t.Parallel()
		msg := "Subject: caf\xc3\xa9\n\n.x\n"
		p, tgt := startPeer(t, nil, `
			< 220 peer.test
			> EHLO helo.test
			< 250-peer.test
			< 250-SIZE 1000
			< 250 8BITMIME
			> MAIL FROM:<a@example.net> SIZE=23 BODY=8BITMIME
			< 250 ok
			> RCPT TO:<b@example.org>
			< 250 ok
			> DATA`+plainTail)
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg)
		p.wait(t, 1)
		if want := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if data := string(p.got(t)); len(data) != 23+3 {
			t.Errorf("SIZE=23 but %d bytes came before the dot: %q", len(data)-3, data)
		}
	})
	t.Run("8-bit without 8BITMIME is sent as is", func(t *testing.T) {
		t.Parallel()
		msg := "Subject: caf\xc3\xa9\n\nx\n"
		p, tgt := startPeer(t, nil, acceptScript)
		got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, msg)
		p.wait(t, 1)
		if want := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"; got != want {
			t.Errorf("got %q", got)
		}
		if data := string(p.got(t)); data != "Subject: caf\xc3\xa9\r\n\r\nx\r\n.\r\n" {
			t.Errorf("data %q", data)
		}
	})
}

// TestSMTPSmuggling checks the DATA form of a message full of bare CR,
// bare LF and dots: every line ends in CRLF, leading dots are doubled,
// and the only end of data the peer sees is the final CRLF.CRLF.
func TestSMTPSmuggling(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"bare LF dot", "a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"bare CR dot", "a\r.\rb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"LF.CRLF", "a\n.\r\nb\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"CRLF.LF", "a\r\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"mixed", "a\nb\r.\r\nc\n.\n..x\r\n.\r\n\rq", "a\r\nb\r\n..\r\nc\r\n..\r\n...x\r\n..\r\n\r\nq\r\n.\r\n"},
		{"CR CR LF", "a\r\r\nb\n", "a\r\n\r\nb\r\n.\r\n"},
		{"leading dot", ".hidden\n", "..hidden\r\n.\r\n"},
		{"empty", "", ".\r\n"},
		{"no final newline", "x", "x\r\n.\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, tgt := startPeer(t, nil, acceptScript)
			got := deliverTo(t, nil, []Target{tgt}, "a@example.net", []string{"b@example.org"}, tc.in)
			p.wait(t, 1)
			if !strings.HasPrefix(got, "r\x00K") {
				t.Fatalf("got %q", got)
			}
			data := string(p.got(t))
			if data != tc.want {
				t.Errorf("data\n got %q\nwant %q", data, tc.want)
			}
			checkDataForm(t, data)
		})
	}
}

// checkDataForm fails unless data is CRLF lines only and its first end
// of data is its end.
func checkDataForm(t *testing.T, data string) {
	t.Helper()
	if i := strings.Index("\r\n"+data, "\r\n.\r\n"); i != len(data)-3 {
		t.Errorf("end of data at %d, want %d: %q", i, len(data)-3, data)
	}
	for i := 0; i < len(data); i++ {
		if data[i] == '\r' && (i+1 == len(data) || data[i+1] != '\n') || data[i] == '\n' && (i == 0 || data[i-1] != '\r') {
			t.Errorf("bare CR or LF at %d: %q", i, data)
		}
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	p, tgt := startPeer(t, nil, greetHelo+`
		> MAIL FROM:<>
		< 250 ok
		> RCPT TO:<"a b"@example.org>
		< 250 ok
		> RCPT TO:<c@example.org>
		< 250 ok
		> DATA`+plainTail)
	got := deliverTo(t, nil, []Target{tgt}, "", []string{"a b@example.org", "x\r\nRSET@example.org", "c@example.org"}, msg1)
	p.wait(t, 1)
	want := "r\x00hSorry, the recipient address contains a line break or NUL, which SMTP cannot carry. (#5.1.3)\n\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"
	if got != want {
		t.Errorf("got %q", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"a@b", "a@b"}, {"a.b@c", "a.b@c"}, {".a@b", `".a"@b`}, {`a"b@c`, `"a\"b"@c`}, {"a..b@c", `"a..b"@c`}, {"postmaster", "postmaster"}, {"@b", `""@b`},
	} {
		if got := quoteAddr(tc.in); got != tc.want {
			t.Errorf("quoteAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteResult(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	r := Result{
		Recipients: []Report{{Accepted, ""}, {PermFail, "x does not like recipient.\n"}, {TempFail, "y\n"}},
		Message:    Report{Accepted, "ok\n"},
	}
	if err := WriteResult(&b, r); err != nil {
		t.Fatal(err)
	}
	if want := "r\x00hx does not like recipient.\n\x00sy\n\x00Kok\n\x00"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	_ = WriteResult(&b, Result{Message: Report{PermFail, "no\n"}})
	if b.String() != "Dno\n\x00" {
		t.Errorf("got %q", b.String())
	}
	b.Reset()
	_ = WriteResult(&b, Result{Message: Report{TempFail, "later\n"}})
	if b.String() != "Zlater\n\x00" {
		t.Errorf("got %q", b.String())
	}
}
