package inject

import (
	"reflect"
	"strings"
	"testing"
)

// The command lines real callers use.
func TestParseSendmail(t *testing.T) {
	tests := []struct {
		name string
		argv string // as a shell would split it (no quoting needed here)
		want sendmailCmd
		err  string
	}{
		{name: "PHP mail()", argv: "sendmail -t -i", want: sendmailCmd{header: true}},
		{name: "PHP with -f in the word", argv: "sendmail -t -i -fwebmaster@example.com",
			want: sendmailCmd{header: true, sender: "webmaster@example.com", senderSet: true}},
		{name: "PHP with -f apart", argv: "sendmail -t -i -f webmaster@example.com",
			want: sendmailCmd{header: true, sender: "webmaster@example.com", senderSet: true}},
		{name: "Debian cron", argv: "sendmail -FCronDaemon -i -B8BITMIME -oem root",
			want: sendmailCmd{name: "CronDaemon", nameSet: true, rcpts: []string{"root"}}},
		{name: "Mutt", argv: "sendmail -oem -oi -- rcpt@example.com", want: sendmailCmd{rcpts: []string{"rcpt@example.com"}}},
		{name: "SMTP on stdin", argv: "sendmail -bs", want: sendmailCmd{action: actSMTPD}},
		{name: "queue listing", argv: "sendmail -bp", want: sendmailCmd{action: actMailq}},
		{name: "mailq", argv: "mailq", want: sendmailCmd{action: actMailq}},
		{name: "mailq -v", argv: "mailq -v", want: sendmailCmd{action: actMailq}},
		{name: "-bm", argv: "sendmail -bm a@example.org", want: sendmailCmd{rcpts: []string{"a@example.org"}}},
		{name: "clustered flags", argv: "sendmail -tif sender@example.org",
			want: sendmailCmd{header: true, sender: "sender@example.org", senderSet: true}},
		{name: "-o takes the rest of the word", argv: "sendmail -oQ/x -odb -oi -oem a", want: sendmailCmd{rcpts: []string{"a"}}},
		{name: "-o takes the next word when alone", argv: "sendmail -o i a", want: sendmailCmd{rcpts: []string{"a"}}},
		{name: "ignored options", argv: "sendmail -v -m -x -e m -B 7BIT -p smtp:host -Efoo -J a",
			want: sendmailCmd{rcpts: []string{"a"}}},
		{name: "-E and -J never take the next word", argv: "sendmail -E -J a", want: sendmailCmd{rcpts: []string{"a"}}},
		{name: "-F apart", argv: "sendmail -F Cron_Daemon a", want: sendmailCmd{name: "Cron_Daemon", nameSet: true, rcpts: []string{"a"}}},
		{name: "options after recipients", argv: "sendmail a@example.org -f s@example.org b@example.org",
			want: sendmailCmd{sender: "s@example.org", senderSet: true, rcpts: []string{"a@example.org", "b@example.org"}}},
		{name: "-- keeps dashes", argv: "sendmail -- -t -oi", want: sendmailCmd{rcpts: []string{"-t", "-oi"}}},
		{name: "- is an operand", argv: "sendmail -", want: sendmailCmd{rcpts: []string{"-"}}},
		{name: "-N", argv: "sendmail -N never a", err: "option -N is not supported: DSN notifications are not supported"},
		{name: "-r", argv: "sendmail -r s@example.org a", err: "option -r is not supported: use -f to set the envelope sender"},
		{name: "-R", argv: "sendmail -R hdrs a", err: "option -R is not supported: DSN return options are not supported"},
		{name: "-q", argv: "sendmail -q", err: "option -q is not supported: qmail-send runs the queue by itself"},
		{name: "-q30m", argv: "sendmail -q30m", err: "option -q is not supported: qmail-send runs the queue by itself"},
		{name: "-O", argv: "sendmail -OTimeout=1", err: "option -O is not supported: settings are the files in $QMAILHOME/control"},
		{name: "-C", argv: "sendmail -C /etc/mail/sendmail.cf", err: "option -C is not supported: settings are the files in $QMAILHOME/control"},
		{name: "unknown flag", argv: "sendmail -Z a", err: "unknown option -Z"},
		{name: "unknown flag in a cluster", argv: "sendmail -tZ", err: "unknown option -Z"},
		{name: "long option", argv: "sendmail --version", err: "unknown option --version"},
		{name: "-f at the end", argv: "sendmail -t -f", err: "option -f needs an argument"},
		{name: "-bd", argv: "sendmail -bd", err: "mode -bd is not supported (only -bm, -bp, -bs)"},
		{name: "-bi", argv: "sendmail -bi", err: "mode -bi is not supported (only -bm, -bp, -bs)"},
		{name: "--help", argv: "sendmail --help", err: "help requested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			words := strings.Fields(tc.argv)
			got, err := parseSendmail(words[0], words[1:])
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSendmailUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		argv   []string
		code   int
		stderr string
	}{
		{[]string{"sendmail", "-q"}, 100, "sendmail: option -q is not supported: qmail-send runs the queue by itself; " + SendmailUsage + "\n"},
		{[]string{"sendmail", "-Z"}, 100, "sendmail: unknown option -Z; " + SendmailUsage + "\n"},
		{[]string{"/usr/bin/newaliases"}, 100, "sendmail: fatal: please use fastforward/newaliases instead\n"},
		{[]string{"sendmail"}, 100, "qmail-inject: fatal: no recipients\n"},
		{[]string{"sendmail", "-i"}, 100, "qmail-inject: fatal: no recipients\n"},
	} {
		o := runInject(t, runArgs{args: tc.argv, stdin: "To: x@example.org\n\nb\n"})
		if o.code != tc.code || o.stderr != tc.stderr || o.q != nil {
			t.Errorf("%q: exit %d, stderr %q, queue started %v; want %d, %q", tc.argv, o.code, o.stderr, o.q != nil, tc.code, tc.stderr)
		}
	}
}

func TestSendmailInjects(t *testing.T) {
	const msg = "To: to@example.org\nBcc: bcc@example.org\nSubject: s\n\nbody\n"
	tests := []struct {
		name   string
		argv   []string
		env    map[string]string
		from   string // the From field added
		sender string
		rcpts  []string
	}{
		{"-t: header and arguments", []string{"sendmail", "-t", "-i", "arg@example.org"}, map[string]string{"USER": "www"},
			"From: www@mail.example.com", "www@mail.example.com", []string{"arg@example.org", "to@example.org", "bcc@example.org"}},
		{"without -t: arguments only", []string{"sendmail", "-oi", "arg@example.org"}, map[string]string{"USER": "www"},
			"From: www@mail.example.com", "www@mail.example.com", []string{"arg@example.org"}},
		{"-f sets the From defaults", []string{"sendmail", "-t", "-i", "-fwebmaster@example.com"},
			map[string]string{"USER": "www", "NAME": "Web Server", "QMAILHOST": "other.example"},
			"From: webmaster@example.com", "webmaster@example.com", []string{"to@example.org", "bcc@example.org"}},
		{"-f without host", []string{"sendmail", "-t", "-f", "webmaster"}, map[string]string{"USER": "www"},
			"From: webmaster@mail.example.com", "webmaster@mail.example.com", []string{"to@example.org", "bcc@example.org"}},
		{"-F names the sender, with or without -f", []string{"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-f", "root", "root"},
			map[string]string{"USER": "root", "NAME": "x"},
			`From: "CronDaemon" <root@mail.example.com>`, "root@mail.example.com", []string{"root@mail.example.com"}},
		{"-F ''", []string{"sendmail", "-F", "", "a@example.org"}, map[string]string{"USER": "u", "NAME": "x"},
			"From: u@mail.example.com", "u@mail.example.com", []string{"a@example.org"}},
		{"-f <> keeps the From defaults", []string{"sendmail", "-f", "<>", "a@example.org"}, map[string]string{"USER": "u", "NAME": "N"},
			`From: "N" <u@mail.example.com>`, "", []string{"a@example.org"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := runInject(t, runArgs{args: tc.argv, env: tc.env, stdin: msg})
			got, env := o.queued(t)
			if !strings.Contains(got, "\n"+tc.from+"\n") {
				t.Errorf("no %q in\n%s", tc.from, got)
			}
			if strings.Contains(got, "Bcc") {
				t.Errorf("Bcc left in\n%s", got)
			}
			if env.Sender != tc.sender || !reflect.DeepEqual(env.Recipients, tc.rcpts) {
				t.Errorf("envelope %q %q, want %q %q", env.Sender, env.Recipients, tc.sender, tc.rcpts)
			}
		})
	}
}

func TestSmtpdEnv(t *testing.T) {
	sys := System{
		Getenv:  func(k string) string { return map[string]string{"DATABYTES": "5"}[k] },
		Environ: func() []string { return []string{"PATH=/bin", "TCPREMOTEIP=192.0.2.1", "DATABYTES=5"} },
	}
	got := smtpdEnv(sys)
	want := []string{"PATH=/bin", "DATABYTES=5", "RELAYCLIENT=", "PROTO=TCP", "TCPLOCALIP=127.0.0.1",
		"TCPLOCALHOST=localhost", "TCPREMOTEIP=127.0.0.1", "TCPREMOTEHOST=localhost", "TCPREMOTEINFO=sendmail-bs"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q\nwant  %q", got, want)
	}
	for _, kv := range got {
		if kv == "DATABYTES=0" {
			t.Errorf("-bs must not lift the size limit")
		}
	}
	sys.Getenv = func(k string) string { return map[string]string{"PROTO": "TCP"}[k] }
	sys.Environ = func() []string { return []string{"PROTO=TCP", "TCPREMOTEIP=192.0.2.1"} }
	if got := smtpdEnv(sys); !reflect.DeepEqual(got, []string{"PROTO=TCP", "TCPREMOTEIP=192.0.2.1"}) {
		t.Errorf("with PROTO set the environment changed: %q", got)
	}
}
