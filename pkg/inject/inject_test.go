package inject

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/queue"
)

// fakeQueue records what an injection hands to the queue.
type fakeQueue struct {
	msg      bytes.Buffer
	env      *queue.Envelope
	aborted  bool
	finish   error // what Finish returns
	writeErr error // what Write returns
}

func (q *fakeQueue) Write(p []byte) (int, error) {
	if q.writeErr != nil {
		return 0, q.writeErr
	}
	return q.msg.Write(p)
}

func (q *fakeQueue) Finish(env queue.Envelope) error {
	q.env = &env
	return q.finish
}

func (q *fakeQueue) Abort() { q.aborted = true }

// testNow is 2 Jan 2006 15:04:05 UTC.
var testNow = time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)

const (
	testDate  = "Date: 2 Jan 2006 15:04:05 -0000\n"
	testMsgID = "Message-ID: <20060102150405.4242.qmail@id.example.com>\n"
)

// testRoot is an instance with the control files qmail-inject reads.
func testRoot(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	base := map[string]string{
		"me":            "me.example.com\n",
		"defaulthost":   "mail\n",
		"defaultdomain": "example.com\n",
		"plusdomain":    "example.net\n",
		"idhost":        "id.example.com\n",
	}
	for k, v := range files {
		base[k] = v
	}
	if err := os.Mkdir(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range base {
		if v == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, "control", k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// outcome is what one run did.
type outcome struct {
	code           int
	stdout, stderr string
	q              *fakeQueue // nil when no queue program was started
}

// runArgs describes one run of qmail-inject or sendmail.
type runArgs struct {
	args  []string          // with the program name first
	env   map[string]string // the environment
	stdin string
	root  string     // default: testRoot(t, nil)
	queue *fakeQueue // default: a fresh one
	ctl   map[string]string
}

func runInject(t testing.TB, r runArgs) outcome {
	t.Helper()
	if r.root == "" {
		r.root = testRoot(t, r.ctl)
	}
	var out outcome
	var stdout, stderr bytes.Buffer
	sys := System{
		Stdin:  strings.NewReader(r.stdin),
		Stdout: &stdout, Stderr: &stderr,
		Getenv:  func(k string) string { return r.env[k] },
		Environ: func() []string { return nil },
		Root:    r.root,
		Now:     testNow,
		Pid:     4242,
		StartQueue: func(root string) (Queue, error) {
			if root != r.root {
				t.Errorf("queue started in %s, want %s", root, r.root)
			}
			out.q = r.queue
			if out.q == nil {
				out.q = &fakeQueue{}
			}
			return out.q, nil
		},
		Exec: func(path string, argv, env []string) error {
			t.Errorf("unexpected exec of %s", path)
			return errors.New("no exec in tests")
		},
	}
	if filepath.Base(r.args[0]) == "qmail-inject" {
		out.code = Run(r.args[1:], sys)
	} else {
		out.code = Sendmail(r.args, sys)
	}
	out.stdout, out.stderr = stdout.String(), stderr.String()
	return out
}

// queued checks that a run succeeded and returns the message and
// envelope it queued.
func (o outcome) queued(t testing.TB) (string, queue.Envelope) {
	t.Helper()
	if o.code != 0 || o.q == nil || o.q.env == nil {
		t.Fatalf("exit %d, stderr %q; want the message queued", o.code, o.stderr)
	}
	return o.q.msg.String(), *o.q.env
}

func TestHeaderRewriting(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		in    string
		want  string   // the queued message
		rcpts []string // with -h
	}{{
		name: "display names, comments, host-less, dot-less, plus",
		in: "From: Joe Bloggs <joe>\n" +
			"To: \"Smith, Ann\" <ann@box>, bob (Bob B), carl@example.org, dave@host+\n" +
			"Subject: hi joe\n\nbody joe\n",
		want: testDate + testMsgID +
			"From: Joe Bloggs <joe@mail.example.com>\n" +
			"To: \"Smith, Ann\" <ann@box.example.com>, bob@mail.example.com (Bob B), carl@example.org, dave@host.example.net\n" +
			"Subject: hi joe\n\nbody joe\n",
		rcpts: []string{"ann@box.example.com", "bob@mail.example.com", "carl@example.org", "dave@host.example.net"},
	}, {
		name: "group, Bcc and Content-Length removed, Cc kept",
		in: "To: friends: ann, bob@example.org;\n" +
			"Cc: undisclosed-recipients: ;\n" +
			"Bcc: hidden@example.org\n" +
			"Content-Length: 5\n" +
			"\nbody\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"To: friends: ann@mail.example.com, bob@example.org;\n" +
			"Cc: undisclosed-recipients: ;\n" +
			"\nbody\n",
		rcpts: []string{"ann@mail.example.com", "bob@example.org", "hidden@example.org"},
	}, {
		name: "no To or Cc: recipient list not shown",
		env:  map[string]string{"USER": "u", "QMAILHOST": "users.example.org", "NAME": `Ann "A" Smith`},
		in:   "Bcc: x@example.org\nSubject: s\n\nb\n",
		want: testDate + testMsgID + "From: \"Ann \\\"A\\\" Smith\" <u@users.example.org>\n" +
			"Cc: recipient list not shown: ;\nSubject: s\n\nb\n",
		rcpts: []string{"x@example.org"},
	}, {
		name: "comment-style From",
		env:  map[string]string{"QMAILUSER": "u", "QMAILNAME": "Ann (A) Smith", "QMAILINJECT": "c"},
		in:   "To: x@example.org\n\nb\n",
		want: testDate + testMsgID + "From: u@mail.example.com (Ann \\(A\\) Smith)\nTo: x@example.org\n\nb\n",
	}, {
		name: "8-bit name is encoded",
		env:  map[string]string{"MAILUSER": "u", "MAILNAME": "Jörg"},
		in:   "To: x@example.org\n\nb\n",
		want: testDate + testMsgID + "From: =?utf-8?q?J=C3=B6rg?= <u@mail.example.com>\nTo: x@example.org\n\nb\n",
	}, {
		name: "existing Date, Message-ID, From kept",
		in:   "Date: Mon, 1 Jan 2001 00:00:00 +0000\nMessage-ID: <a@b>\nFrom: a@example.org\nTo: b@example.org\n\nb\n",
		want: "Date: Mon, 1 Jan 2001 00:00:00 +0000\nMessage-ID: <a@b>\nFrom: a@example.org\nTo: b@example.org\n\nb\n",
	}, {
		name: "letters f and i replace From and Message-ID",
		env:  map[string]string{"QMAILINJECT": "fi", "USER": "u"},
		in:   "Message-ID: <a@b>\nFrom: a@example.org\nTo: b@example.org\n\nb\n",
		want: testDate + testMsgID + "From: u@mail.example.com\nTo: b@example.org\n\nb\n",
	}, {
		name: "Resent- mode",
		in: "From: a@example.org\nTo: b@example.org\nDate: Mon, 1 Jan 2001 00:00:00 +0000\nMessage-ID: <a@b>\n" +
			"Resent-To: c\nResent-Bcc: d@example.org\n\nb\n",
		want: "Resent-Date: 2 Jan 2006 15:04:05 -0000\n" +
			"Resent-Message-ID: <20060102150405.4242.qmail@id.example.com>\n" +
			"Resent-From: anonymous@mail.example.com\n" +
			"From: a@example.org\nTo: b@example.org\nDate: Mon, 1 Jan 2001 00:00:00 +0000\nMessage-ID: <a@b>\n" +
			"Resent-To: c@mail.example.com\n\nb\n",
		rcpts: []string{"c@mail.example.com", "d@example.org"},
	}, {
		name: "Resent- mode without Resent-To or -Cc",
		in:   "To: b@example.org\nResent-From: r\nDate: x\nMessage-ID: <a@b>\nFrom: a@example.org\n\nb\n",
		want: "Resent-Date: 2 Jan 2006 15:04:05 -0000\n" +
			"Resent-Message-ID: <20060102150405.4242.qmail@id.example.com>\n" +
			"Resent-Cc: recipient list not shown: ;\n" +
			"To: b@example.org\nResent-From: r@mail.example.com\nDate: x\nMessage-ID: <a@b>\nFrom: a@example.org\n\nb\n",
	}, {
		name: "folded fields",
		in: "To: ann@example.org,\n bob,\n\tcarl@example.org\n" +
			"Subject: a long\n  subject\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"To: ann@example.org,\n bob@mail.example.com,\n\tcarl@example.org\n" +
			"Subject: a long\n  subject\n\nb\n",
		rcpts: []string{"ann@example.org", "bob@mail.example.com", "carl@example.org"},
	}, {
		name: "CRLF input",
		in:   "To: ann,\r\n bob@example.org\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\nbare\rcr\r\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"To: ann@mail.example.com,\n bob@example.org\nSubject: s\n\nline 1\nline 2\nbare\rcr\n",
		rcpts: []string{"ann@mail.example.com", "bob@example.org"},
	}, {
		name:  "no header: all body",
		in:    "just a body line\nTo: not-a-recipient\n",
		want:  testDate + testMsgID + "From: anonymous@mail.example.com\nCc: recipient list not shown: ;\n\njust a body line\nTo: not-a-recipient\n",
		rcpts: nil,
	}, {
		name: "header only, no blank line",
		in:   "To: x@example.org\nSubject: s",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\nTo: x@example.org\nSubject: s\n",
	}, {
		name:  "empty input",
		in:    "",
		want:  testDate + testMsgID + "From: anonymous@mail.example.com\nCc: recipient list not shown: ;\n",
		rcpts: nil,
	}, {
		name: "mbox From line",
		in:   "From joe@example.org Mon Jan  1 00:00:00 2001\nTo: x@example.org\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"MBOX-Line: From joe@example.org Mon Jan  1 00:00:00 2001\nTo: x@example.org\n\nb\n",
	}, {
		name: "two addresses without a comma",
		in:   "To: ann bob <c@example.org> dave\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"To: ann bob <c@example.org>, dave@mail.example.com\n\nb\n",
		rcpts: []string{"c@example.org", "dave@mail.example.com"},
	}, {
		name: "words without separator are two addresses",
		in:   "To: ann bob\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"To: ann@mail.example.com, bob@mail.example.com\n\nb\n",
		rcpts: []string{"ann@mail.example.com", "bob@mail.example.com"},
	}, {
		name: "unparsable From is kept as it is",
		in:   "From: \"broken <a@b>\nTo: x@example.org\n\nb\n",
		want: testDate + testMsgID + "From: \"broken <a@b>\nTo: x@example.org\n\nb\n",
	}, {
		name: "Reply-To, Sender and Apparently-To rewritten",
		in:   "Reply-To: r\nSender: s@box\nApparently-To: a\nTo: t@example.org\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"Reply-To: r@mail.example.com\nSender: s@box.example.com\nApparently-To: a@mail.example.com\nTo: t@example.org\n\nb\n",
		rcpts: []string{"a@mail.example.com", "t@example.org"},
	}, {
		name: "field names are case-insensitive; blanks before the colon",
		in:   "tO : x\nBCC: y@example.org\n\nb\n",
		want: testDate + testMsgID + "From: anonymous@mail.example.com\n" +
			"tO : x@mail.example.com\n\nb\n",
		rcpts: []string{"x@mail.example.com", "y@example.org"},
	}, {
		name: "environment overrides the control files",
		env: map[string]string{"QMAILDEFAULTHOST": "h", "QMAILDEFAULTDOMAIN": "d.example",
			"QMAILPLUSDOMAIN": "p.example", "QMAILIDHOST": "i.example"},
		in: "To: a, b@c+\n\nb\n",
		want: testDate + "Message-ID: <20060102150405.4242.qmail@i.example>\nFrom: anonymous@h.d.example\n" +
			"To: a@h.d.example, b@c.p.example\n\nb\n",
		rcpts: []string{"a@h.d.example", "b@c.p.example"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: []string{"qmail-inject", "-h"}, env: tc.env, stdin: tc.in})
			if tc.rcpts == nil && o.code == 100 && strings.Contains(o.stderr, "no recipients") {
				// Nothing queued; check the rewriting with -n instead.
				o = runInject(t, runArgs{args: []string{"qmail-inject", "-n"}, env: tc.env, stdin: tc.in})
				got := strings.SplitN(o.stdout, "\n", 2)[1]
				if got != tc.want {
					t.Errorf("message:\n%s\nwant:\n%s", got, tc.want)
				}
				return
			}
			msg, env := o.queued(t)
			if msg != tc.want {
				t.Errorf("message:\n%s\nwant:\n%s", msg, tc.want)
			}
			if tc.rcpts != nil && !reflect.DeepEqual(env.Recipients, tc.rcpts) {
				t.Errorf("recipients = %q, want %q", env.Recipients, tc.rcpts)
			}
		})
	}
}

func TestRecipientSelection(t *testing.T) {
	const msg = "To: to@example.org\nCc: cc\nBcc: bcc@example.org\nApparently-To: app@example.org\n\nb\n"
	header := []string{"to@example.org", "cc@mail.example.com", "bcc@example.org", "app@example.org"}
	resent := "Resent-To: rto@example.org\nResent-Cc: rcc@example.org\nResent-Bcc: rbcc@example.org\n" + msg
	tests := []struct {
		name  string
		args  []string
		in    string
		rcpts []string
	}{
		{"default, no args: header", []string{}, msg, header},
		{"default, args: args only", []string{"arg1", "arg2@example.org"}, msg, []string{"arg1@mail.example.com", "arg2@example.org"}},
		{"-A like default", []string{"-A", "arg@example.org"}, msg, []string{"arg@example.org"}},
		{"-a: args only", []string{"-a", "arg@example.org"}, msg, []string{"arg@example.org"}},
		{"-h: header only, args ignored", []string{"-h", "arg@example.org"}, msg, header},
		{"-H: args then header", []string{"-H", "arg@example.org"}, msg, append([]string{"arg@example.org"}, header...)},
		{"-H dedupes", []string{"-H", "to@example.org"}, msg, header},
		{"resent: Resent- recipients only", []string{"-h"}, resent, []string{"rto@example.org", "rcc@example.org", "rbcc@example.org"}},
		{"last flag wins", []string{"-h", "-a", "arg@example.org"}, msg, []string{"arg@example.org"}},
		{"options after operands", []string{"arg@example.org", "-H"}, msg, append([]string{"arg@example.org"}, header...)},
		{"-- ends options", []string{"--", "-h@example.org"}, msg, []string{"-h@example.org"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: append([]string{"qmail-inject"}, tc.args...), stdin: tc.in})
			_, env := o.queued(t)
			if !reflect.DeepEqual(env.Recipients, tc.rcpts) {
				t.Errorf("recipients = %q, want %q", env.Recipients, tc.rcpts)
			}
		})
	}
}

func TestSenderPrecedence(t *testing.T) {
	const rp = "Return-Path: <rp@example.org>\nTo: x@example.org\n\nb\n"
	const plain = "To: x@example.org\n\nb\n"
	full := map[string]string{"QMAILUSER": "u", "QMAILHOST": "uhost.example", "QMAILSUSER": "s", "QMAILSHOST": "shost.example"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		in   string
		want string
	}{
		{"-f beats Return-Path and env", []string{"-f", "f@example.org"}, full, rp, "f@example.org"},
		{"-f is rewritten", []string{"-ff"}, nil, rp, "f@mail.example.com"},
		{"-f '' is the null sender", []string{"-f", ""}, full, rp, ""},
		{"-f '<>' is the null sender", []string{"-f<>"}, full, rp, ""},
		{"Return-Path beats env", nil, full, rp, "rp@example.org"},
		{"Return-Path <> is the null sender", nil, full, "Return-Path: <>\nTo: x@example.org\n\nb\n", ""},
		{"Return-Path is rewritten", nil, nil, "Return-Path: <rp>\nTo: x@example.org\n\nb\n", "rp@mail.example.com"},
		{"s: Return-Path ignored", nil, map[string]string{"QMAILINJECT": "s", "QMAILSUSER": "s"}, rp, "s@mail.example.com"},
		{"QMAILSUSER@QMAILSHOST beats From defaults", nil, full, plain, "s@shost.example"},
		{"QMAILSUSER with the From host", nil, map[string]string{"QMAILSUSER": "s", "QMAILHOST": "uhost.example"}, plain, "s@uhost.example"},
		{"From defaults", nil, map[string]string{"QMAILUSER": "u", "QMAILHOST": "uhost.example"}, plain, "u@uhost.example"},
		{"MAILUSER, MAILHOST", nil, map[string]string{"MAILUSER": "mu", "USER": "x", "MAILHOST": "mh.example"}, plain, "mu@mh.example"},
		{"USER before LOGNAME", nil, map[string]string{"USER": "user", "LOGNAME": "logname"}, plain, "user@mail.example.com"},
		{"LOGNAME", nil, map[string]string{"LOGNAME": "logname"}, plain, "logname@mail.example.com"},
		{"anonymous", nil, nil, plain, "anonymous@mail.example.com"},
		{"r: per-recipient VERP", nil, map[string]string{"QMAILINJECT": "r", "USER": "u"}, plain, "u-@mail.example.com-@[]"},
		{"r applies to Return-Path", nil, map[string]string{"QMAILINJECT": "r"}, rp, "rp@example.org-@[]"},
		{"r does not apply to -f", []string{"-f", "f@example.org"}, map[string]string{"QMAILINJECT": "r"}, plain, "f@example.org"},
		{"m: per-message VERP", nil, map[string]string{"QMAILINJECT": "m", "USER": "u"}, plain, "u-1136214245.4242@mail.example.com"},
		{"m and r", nil, map[string]string{"QMAILINJECT": "mr", "USER": "u"}, plain, "u-1136214245.4242-@mail.example.com-@[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: append([]string{"qmail-inject"}, tc.args...), env: tc.env, stdin: tc.in})
			msg, env := o.queued(t)
			if env.Sender != tc.want {
				t.Errorf("sender = %q, want %q", env.Sender, tc.want)
			}
			if strings.Contains(msg, "Return-Path") {
				t.Errorf("Return-Path left in the message:\n%s", msg)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		ctl    map[string]string
		in     string
		code   int
		stderr string
	}{
		{"invalid header field", nil, nil, nil, "To: x@example.org\nnot a field\n\nb\n", 100,
			"qmail-inject: fatal: invalid header field: not a field\n"},
		{"no recipients", []string{"-a"}, nil, nil, "To: x@example.org\n\nb\n", 100,
			"qmail-inject: fatal: no recipients\n"},
		{"no recipients in the header", nil, nil, nil, "Subject: x\n\nb\n", 100,
			"qmail-inject: fatal: no recipients\n"},
		{"unparsable recipient field in use", []string{"-h"}, nil, nil, "To: \"x@example.org\n\nb\n", 100,
			"qmail-inject: fatal: unable to parse the addresses of this line: To: \"x@example.org\n"},
		{"unparsable Return-Path", nil, nil, nil, "Return-Path: <a@b\nTo: x@example.org\n\nb\n", 100,
			"qmail-inject: fatal: unable to parse this line: Return-Path: <a@b\n"},
		{"unparsable argument", []string{"x@exa(mple"}, nil, nil, "\n", 100,
			"qmail-inject: fatal: unable to parse address: x@exa(mple\n"},
		{"NUL in an address", nil, nil, nil, "To: \"a\x00b\"@example.org\n\nb\n", 100,
			"qmail-inject: fatal: unable to parse address: a b@example.org\n"},
		{"header too big", nil, nil, nil, "To: x@example.org\nX: " + strings.Repeat("y", MaxHeader) + "\n\nb\n", 100,
			"qmail-inject: fatal: message header exceeds 1048576 bytes\n"},
		{"unknown option", []string{"-x"}, nil, nil, "", 100,
			"qmail-inject: unknown option -x; " + Usage + "\n"},
		{"-f without argument", []string{"-f"}, nil, nil, "", 100,
			"qmail-inject: option -f needs an argument; " + Usage + "\n"},
		{"malformed databytes", []string{"x@example.org"}, nil, map[string]string{"databytes": "20MB\n"}, "\n", 111,
			"qmail-inject: fatal: unable to read controls: control/databytes:1: \"20MB\" is not a decimal number (digits only, no units)\n"},
		{"malformed DATABYTES", []string{"x@example.org"}, map[string]string{"DATABYTES": "x"}, nil, "\n", 111,
			"qmail-inject: fatal: unable to read controls: DATABYTES: \"x\" is not a decimal number (digits only, no units)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: append([]string{"qmail-inject"}, tc.args...), env: tc.env, ctl: tc.ctl, stdin: tc.in})
			if o.code != tc.code || o.stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", o.code, o.stderr, tc.code, tc.stderr)
			}
			if o.q != nil {
				t.Errorf("a queue program was started")
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, prog := range []string{"qmail-inject", "sendmail"} {
		o := runInject(t, runArgs{args: []string{prog, "--help"}})
		if o.code != 0 || !strings.HasPrefix(o.stdout, "usage: "+prog) || o.stderr != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", prog, o.code, o.stdout, o.stderr)
		}
	}
}

func TestDataBytes(t *testing.T) {
	const tooBig = "qmail-inject: 552 sorry, that message size exceeds my databytes limit (#5.3.4)\n"
	head := testDate + testMsgID + "From: anonymous@mail.example.com\nTo: x@example.org\n\n"
	in := "To: x@example.org\n\n"
	for _, tc := range []struct {
		name   string
		ctl    map[string]string
		env    map[string]string
		body   string
		tooBig bool
	}{
		{"at the limit", map[string]string{"databytes": "200"}, nil, strings.Repeat("x", 200-len(head)), false},
		{"one byte over", map[string]string{"databytes": "200"}, nil, strings.Repeat("x", 201-len(head)), true},
		{"header alone over", map[string]string{"databytes": "20"}, nil, "x", true},
		{"CRLF counted as LF", map[string]string{"databytes": "200"}, nil, strings.Repeat("x\r\n", (200-len(head))/2), false},
		{"far over, streamed", map[string]string{"databytes": "1000"}, nil, strings.Repeat("0123456789\n", 100000), true},
		{"DATABYTES overrides", map[string]string{"databytes": "1000"}, map[string]string{"DATABYTES": "100"}, strings.Repeat("x", 100), true},
		{"0 is no limit", map[string]string{"databytes": "0"}, nil, strings.Repeat("0123456789\n", 100000), false},
		{"default 20971520", nil, nil, strings.Repeat("x", 20971520-len(head)+1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: []string{"qmail-inject"}, ctl: tc.ctl, env: tc.env, stdin: in + tc.body})
			if !tc.tooBig {
				msg, _ := o.queued(t)
				if int64(len(msg)) != int64(len(head))+int64(len(strings.ReplaceAll(tc.body, "\r\n", "\n"))) {
					t.Errorf("queued %d bytes", len(msg))
				}
				return
			}
			if o.code != 100 || o.stderr != tooBig {
				t.Errorf("exit %d, stderr %q; want 100, %q", o.code, o.stderr, tooBig)
			}
			if o.q != nil && (!o.q.aborted || o.q.env != nil) {
				t.Errorf("queue not aborted: aborted %v, envelope %v", o.q.aborted, o.q.env)
			}
			if o.q != nil && int64(o.q.msg.Len()) > 20971520 {
				t.Errorf("%d bytes went to the queue", o.q.msg.Len())
			}
		})
	}
}

func TestQueueErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		q      *fakeQueue
		code   int
		stderr string
	}{
		{"permanent", &fakeQueue{finish: &qq.Error{Code: 82, Text: "Your message is refused by policy", Permanent: true}},
			100, "qmail-inject: fatal: Your message is refused by policy\n"},
		{"temporary", &fakeQueue{finish: qq.Status(53)},
			111, "qmail-inject: fatal: qq write error or disk full (#4.3.0)\n"},
		{"write error, then status", &fakeQueue{writeErr: errors.New("broken pipe"), finish: qq.Status(31)},
			100, "qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: []string{"qmail-inject"}, queue: tc.q, stdin: "To: x@example.org\n\nbody\n"})
			if o.code != tc.code || o.stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", o.code, o.stderr, tc.code, tc.stderr)
			}
			if tc.q.env == nil {
				t.Errorf("Finish not called")
			}
		})
	}
}

func TestPrint(t *testing.T) {
	o := runInject(t, runArgs{
		args:  []string{"qmail-inject", "-n", "-f", "joe smith@example.org"},
		stdin: "Subject: s\r\n\r\nbody\r\n",
	})
	want := "Return-Path: <\"joe smith\"@example.org>\n" + testDate + testMsgID +
		"From: anonymous@mail.example.com\nCc: recipient list not shown: ;\nSubject: s\n\nbody\n"
	if o.code != 0 || o.stdout != want || o.q != nil {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", o.code, o.stderr, o.stdout, want)
	}
}

func TestDrainsStdinAfterFailure(t *testing.T) {
	in := strings.NewReader("To: x@example.org\nbad line\n\n" + strings.Repeat("body\n", 100000))
	var stderr bytes.Buffer
	sys := System{Stdin: in, Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" },
		Root: testRoot(t, nil), Now: testNow, Pid: 1}
	if code := Run(nil, sys); code != 100 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if in.Len() != 0 {
		t.Errorf("%d bytes of stdin left unread", in.Len())
	}
}

func TestCRLFWriter(t *testing.T) {
	in := "a\r\nb\rc\r\r\nd\n\r\re\r\r"
	want := "a\nb\rc\nd\n\r\re\r\r"
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		w := &crlfWriter{w: &out}
		for i := 0; i < len(in); i += size {
			end := min(i+size, len(in))
			if n, err := w.Write([]byte(in[i:end])); err != nil || n != end-i {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("chunks of %d: %q, want %q", size, out.String(), want)
		}
	}
}
