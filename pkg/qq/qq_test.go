package qq

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/timerslack"
	"github.com/quail-mta/quail/queue"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		text string
		perm bool
	}{
		{11, "envelope address too long for qq (#5.1.3)", true},
		{31, "mail server permanently rejected message (#5.3.0)", true},
		{35, "qq permanent problem (#5.3.0)", true},
		{53, "qq write error or disk full (#4.3.0)", false},
		{64, "qq trouble creating files in queue (#4.3.0)", false},
		{71, "mail server temporarily rejected message (#4.3.0)", false},
		{75, "qq temporary problem (#4.3.0)", false},
		{91, "qq internal bug (#4.3.0)", false},
		{82, "qq temporary problem (#4.3.0)", false},
	} {
		var e *Error
		if err := Status(tc.code); !errors.As(err, &e) || e.Text != tc.text || e.Permanent != tc.perm {
			t.Errorf("Status(%d) = %v, want %q (permanent %v)", tc.code, err, tc.text, tc.perm)
		}
	}
	if Status(0) != nil {
		t.Error("Status(0) is an error")
	}
}

// hook writes a QMAILQUEUE program: a shell script body.
func hook(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILQUEUE", p)
	return p
}

func inject(t *testing.T) error {
	t.Helper()
	inj, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inj.Write([]byte("Subject: x\n\nbody\n"))
	return inj.Finish(queue.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
}

func TestFinish(t *testing.T) {
	for _, tc := range []struct {
		name, body, text string
		perm             bool
	}{
		{"accepted", "cat >/dev/null; cat <&1 >/dev/null; exit 0", "", false},
		{"refused", "cat >/dev/null; exit 31", "mail server permanently rejected message (#5.3.0)", true},
		{"custom on fd 4", "cat >/dev/null; printf 'DYour message is refused by policy' >&4; exit 82", "Your message is refused by policy", true},
		{"custom on fd 6", "cat >/dev/null; printf 'Zscanner busy, try later\\n' >&6; exit 82", "scanner busy, try later", false},
		{"custom too short", "cat >/dev/null; printf 'D' >&4; exit 82", "qq temporary problem (#4.3.0)", false},
		{"crash", "kill -9 $$", "qq crashed (#4.3.0)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook(t, tc.body)
			err := inject(t)
			if tc.text == "" {
				if err != nil {
					t.Fatalf("Finish = %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Text != tc.text || e.Permanent != tc.perm {
				t.Errorf("Finish = %#v, want %q (permanent %v)", err, tc.text, tc.perm)
			}
		})
	}
}

// The envelope reaches the program on its fd 1, after the message on fd 0.
func TestProtocol(t *testing.T) {
	out := filepath.Join(t.TempDir(), "seen")
	hook(t, "cat > "+out+".msg; cat <&1 > "+out+".env")
	if err := inject(t); err != nil {
		t.Fatal(err)
	}
	msg, _ := os.ReadFile(out + ".msg")
	env, _ := os.ReadFile(out + ".env")
	if string(msg) != "Subject: x\n\nbody\n" || string(env) != "Fa@b\x00Tc@d\x00\x00" {
		t.Errorf("message %q, envelope %q", msg, env)
	}
}

// The queue program gets quail's timer slack (pkg/timerslack), so a
// qmail-smtpd under ucspi-tcp's tcpserver or inetd still passes it on.
func TestTimerSlack(t *testing.T) {
	out := filepath.Join(t.TempDir(), "slack")
	hook(t, "cat /proc/self/timerslack_ns > "+out+"; cat >/dev/null; cat <&1 >/dev/null")
	if err := inject(t); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n < timerslack.Slack {
		t.Errorf("the queue program's timer slack: %q ns, want at least %d", b, timerslack.Slack)
	}
}

func TestStartFails(t *testing.T) {
	t.Setenv("QMAILQUEUE", "/nonexistent/qmail-queue")
	_, err := Start(t.TempDir())
	var e *Error
	if !errors.As(err, &e) || e.Text != "unable to exec qq (#4.3.0)" {
		t.Errorf("Start = %v", err)
	}
}
