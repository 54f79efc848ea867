//go:build integration

package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

// injectAs is who runs the instance and the injectors: nobody when the
// tests run as root (a CGI script's situation), else ourselves.
func injectAs() *syscall.Credential {
	if os.Geteuid() == 0 {
		return nobody
	}
	return nil
}

// injInstance makes an instance with qmailctl init and puts the built
// qmail-queue into its bin/.
func injInstance(t *testing.T, as *syscall.Credential) string {
	t.Helper()
	root := filepath.Join(ownedDir(t, as), "q")
	if r := run(t, proc{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mail.example.test"}, as: as}); r.code != 0 {
		t.Fatalf("qmailctl init: exit %d: %s", r.code, r.stderr)
	}
	injInstall(t, filepath.Join(testutil.Bin(t), "qmail-queue"), filepath.Join(root, "bin", "qmail-queue"), as)
	return root
}

// injInstall copies an executable, owned by as.
func injInstall(t *testing.T, from, to string, as *syscall.Credential) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	injWrite(t, to, string(data), as)
}

func injWrite(t *testing.T, path, content string, as *syscall.Credential) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	if as != nil {
		if err := os.Chown(path, int(as.Uid), int(as.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// injQueued is one message read back from the queue's files.
type injQueued struct {
	id       uint64
	uid, pid int
	sender   string
	rcpts    []string
	mess     string
}

// injReadQueue reads every queued message with a parser of qmail's queue
// format written here, independently of package queue, so that the test
// checks quail's writer against the format: todo/N holds
// u<uid>\0p<pid>\0F<sender>\0T<rcpt>\0..., and mess/(N mod 23)/N the
// message; intd/N stays linked to todo/N until qmail-send takes it. It
// fails if pid/ holds anything, or if intd/ or mess/ hold a file that
// todo/ does not name.
func injReadQueue(t *testing.T, root string) []injQueued {
	t.Helper()
	q := filepath.Join(root, "queue")
	if ents, err := os.ReadDir(filepath.Join(q, "pid")); err != nil || len(ents) != 0 {
		t.Errorf("queue/pid: %d files left, %v", len(ents), err)
	}
	intd, err := os.ReadDir(filepath.Join(q, "intd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range intd {
		a, errA := os.Stat(filepath.Join(q, "intd", e.Name()))
		b, errB := os.Stat(filepath.Join(q, "todo", e.Name()))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("intd/%s is not todo/%s: %v, %v", e.Name(), e.Name(), errA, errB)
		}
	}
	todo, err := os.ReadDir(filepath.Join(q, "todo"))
	if err != nil {
		t.Fatal(err)
	}
	var out []injQueued
	for _, e := range todo {
		id, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil {
			t.Fatalf("todo/%s: not a message number", e.Name())
		}
		data, err := os.ReadFile(filepath.Join(q, "todo", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 || data[len(data)-1] != 0 {
			t.Fatalf("todo/%d does not end with NUL: %q", id, data)
		}
		recs := strings.Split(string(data[:len(data)-1]), "\x00")
		if len(recs) < 3 || recs[0][0] != 'u' || recs[1][0] != 'p' || recs[2][0] != 'F' {
			t.Fatalf("todo/%d: want u, p, F records first: %q", id, data)
		}
		m := injQueued{id: id, sender: recs[2][1:]}
		if m.uid, err = strconv.Atoi(recs[0][1:]); err != nil {
			t.Fatalf("todo/%d: uid record %q", id, recs[0])
		}
		if m.pid, err = strconv.Atoi(recs[1][1:]); err != nil {
			t.Fatalf("todo/%d: pid record %q", id, recs[1])
		}
		for _, r := range recs[3:] {
			if r == "" || r[0] != 'T' {
				t.Fatalf("todo/%d: record %q is not T", id, r)
			}
			m.rcpts = append(m.rcpts, r[1:])
		}
		mess, err := os.ReadFile(filepath.Join(q, "mess", strconv.FormatUint(id%23, 10), e.Name()))
		if err != nil {
			t.Fatalf("message file of todo/%d: %v", id, err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(q, "mess", strconv.FormatUint(id%23, 10), e.Name()), &st); err != nil || st.Ino != id {
			t.Errorf("mess/%d/%d has inode %d, want its name", id%23, id, st.Ino)
		}
		m.mess = string(mess)
		out = append(out, m)
	}
	n := 0
	filepath.WalkDir(filepath.Join(q, "mess"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != len(out) {
		t.Errorf("%d files in mess/, %d in todo/", n, len(out))
	}
	return out
}

// injOne reads the queue and wants exactly one message.
func injOne(t *testing.T, root string) injQueued {
	t.Helper()
	msgs := injReadQueue(t, root)
	if len(msgs) != 1 {
		t.Fatalf("%d messages queued, want 1", len(msgs))
	}
	return msgs[0]
}

// injMatch checks a queued message file against want, where {DATE} is
// qmail's date and {MSGID} a Message-ID of qmail-inject's, and the rest
// must match byte for byte.
func injMatch(t *testing.T, m injQueued, as *syscall.Credential, want string) {
	t.Helper()
	uid := os.Getuid()
	if as != nil {
		uid = int(as.Uid)
	}
	if m.uid != uid {
		t.Errorf("todo u record %d, want %d", m.uid, uid)
	}
	const date = `[1-9][0-9]? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] -0000`
	pattern := regexp.QuoteMeta("Received: (qmail "+strconv.Itoa(m.pid)+" invoked by uid "+strconv.Itoa(uid)+"); ") + "{DATE}\n" + regexp.QuoteMeta(want)
	pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta("{DATE}"), date)
	pattern = strings.ReplaceAll(pattern, "{DATE}", date)
	pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta("{MSGID}"), `<[0-9]{14}\.[0-9]+\.qmail@mail\.example\.test>`)
	if !regexp.MustCompile(`\A` + pattern + `\z`).MatchString(m.mess) {
		t.Errorf("queued message:\n%s\nwant:\n%s", m.mess, want)
	}
}

func injExpect(t *testing.T, m injQueued, sender string, rcpts ...string) {
	t.Helper()
	if m.sender != sender || strings.Join(m.rcpts, "\n") != strings.Join(rcpts, "\n") {
		t.Errorf("envelope F%q T%q, want F%q T%q", m.sender, m.rcpts, sender, rcpts)
	}
}

// A PHP script's mail(): the header PHP writes, a body with a lone dot
// and no final newline.
const phpMessage = "To: Joe User <joe@example.test>\n" +
	"Subject: Your order\n" +
	"Bcc: archive@example.org\n" +
	"X-PHP-Originating-Script: 33:order.php\n" +
	"\n" +
	"Dear Joe,\n" +
	"\n" +
	".\n" +
	"thanks, trailing blanks  \n" +
	"no final newline"

func TestSendmailPHP(t *testing.T) {
	as := injectAs()
	for _, tc := range []struct {
		name   string
		args   []string
		from   string
		sender string
	}{
		{"mail()", []string{"sendmail", "-t", "-i"}, "anonymous@mail.example.test", "anonymous@mail.example.test"},
		{"-f in the word", []string{"sendmail", "-t", "-i", "-fwebmaster@example.com"}, "webmaster@example.com", "webmaster@example.com"},
		{"-f apart", []string{"sendmail", "-t", "-i", "-f", "webmaster@example.com"}, "webmaster@example.com", "webmaster@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := injInstance(t, as)
			r := run(t, proc{args: tc.args, env: []string{"QMAILHOME=" + root}, stdin: phpMessage, as: as})
			if r.code != 0 || r.stderr != "" || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			m := injOne(t, root)
			injExpect(t, m, tc.sender, "joe@example.test", "archive@example.org")
			injMatch(t, m, as, "Date: {DATE}\n"+
				"Message-ID: {MSGID}\n"+
				"From: "+tc.from+"\n"+
				"To: Joe User <joe@example.test>\n"+
				"Subject: Your order\n"+
				"X-PHP-Originating-Script: 33:order.php\n"+
				"\n"+
				"Dear Joe,\n"+
				"\n"+
				".\n"+
				"thanks, trailing blanks  \n"+
				"no final newline")
		})
	}
}

// What Debian's cron sends for a job's output.
func TestSendmailCron(t *testing.T) {
	as := injectAs()
	root := injInstance(t, as)
	msg := "From: root (Cron Daemon)\n" +
		"To: root\n" +
		"Subject: Cron <root@mail> /usr/local/bin/backup\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=UTF-8\n" +
		"Content-Transfer-Encoding: 8bit\n" +
		"X-Cron-Env: <SHELL=/bin/sh>\n" +
		"X-Cron-Env: <HOME=/root>\n" +
		"\n" +
		"backup: 3 files, 0 errors\n"
	r := run(t, proc{
		args:  []string{"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
		env:   []string{"QMAILHOME=" + root, "LOGNAME=root", "USER=root", "HOME=/root"},
		stdin: msg, as: as,
	})
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	m := injOne(t, root)
	injExpect(t, m, "root@mail.example.test", "root@mail.example.test")
	injMatch(t, m, as, "Date: {DATE}\n"+
		"Message-ID: {MSGID}\n"+
		"From: root@mail.example.test (Cron Daemon)\n"+
		"To: root@mail.example.test\n"+
		"Subject: Cron <root@mail> /usr/local/bin/backup\n"+
		"MIME-Version: 1.0\n"+
		"Content-Type: text/plain; charset=UTF-8\n"+
		"Content-Transfer-Encoding: 8bit\n"+
		"X-Cron-Env: <SHELL=/bin/sh>\n"+
		"X-Cron-Env: <HOME=/root>\n"+
		"\n"+
		"backup: 3 files, 0 errors\n")
}

func TestInjectArguments(t *testing.T) {
	as := injectAs()
	root := injInstance(t, as)
	r := run(t, proc{
		args:  []string{"qmail-inject", "-a", "-f", "bounces@example.org", "ann", "bob@example.org"},
		env:   []string{"QMAILHOME=" + root, "QMAILUSER=www", "QMAILNAME=Web Shop"},
		stdin: "To: customer@example.org\r\nSubject: hi\r\n\r\nline\r\n",
		as:    as,
	})
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	m := injOne(t, root)
	injExpect(t, m, "bounces@example.org", "ann@mail.example.test", "bob@example.org")
	injMatch(t, m, as, "Date: {DATE}\n"+
		"Message-ID: {MSGID}\n"+
		"From: \"Web Shop\" <www@mail.example.test>\n"+
		"To: customer@example.org\n"+
		"Subject: hi\n"+
		"\n"+
		"line\n")
}

// A message over databytes (20971520 by default) is refused with the
// 552 text and leaves nothing in the queue.
func TestSendmailTooBig(t *testing.T) {
	as := injectAs()
	root := injInstance(t, as)
	var msg bytes.Buffer
	msg.WriteString("To: joe@example.test\nSubject: big\n\n")
	line := strings.Repeat("x", 75) + "\n"
	for msg.Len() < 21<<20 {
		msg.WriteString(line)
	}
	r := run(t, proc{args: []string{"sendmail", "-t", "-i"}, env: []string{"QMAILHOME=" + root}, stdin: msg.String(), as: as})
	const want = "qmail-inject: 552 sorry, that message size exceeds my databytes limit (#5.3.4)\n"
	if r.code != 100 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 100, %q", r.code, r.stderr, want)
	}
	if msgs := injReadQueue(t, root); len(msgs) != 0 {
		t.Errorf("%d messages queued", len(msgs))
	}
	// Just under the limit, with the fields qmail-inject adds, the same
	// way in, it is queued.
	under := msg.String()[:20971520-200]
	r = run(t, proc{args: []string{"sendmail", "-t", "-i"}, env: []string{"QMAILHOME=" + root}, stdin: under, as: as})
	if r.code != 0 {
		t.Fatalf("20 MiB - 200: exit %d, stderr %q", r.code, r.stderr)
	}
	if m := injOne(t, root); !strings.HasSuffix(m.mess, "\nSubject: big\n\n"+under[len("To: joe@example.test\nSubject: big\n\n"):]) {
		t.Errorf("20 MiB message changed")
	}
}

// Hooks in QMAILQUEUE refuse with their own text, on fd 4 (simscan) or
// fd 6 (notqmail).
func TestSendmailQueueHook(t *testing.T) {
	as := injectAs()
	for _, tc := range []struct {
		name, script string
		code         int
		stderr       string
	}{
		{"permanent on fd 4", "#!/bin/sh\nprintf 'DYour message is refused by policy' >&4\nexit 82\n",
			100, "qmail-inject: fatal: Your message is refused by policy\n"},
		{"temporary on fd 6", "#!/bin/sh\ncat >/dev/null\nprintf 'ZScanner unavailable, try later' >&6\nexit 82\n",
			111, "qmail-inject: fatal: Scanner unavailable, try later\n"},
		{"exit status alone", "#!/bin/sh\ncat >/dev/null\nexit 31\n",
			100, "qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"},
		{"disk full", "#!/bin/sh\nexit 53\n",
			111, "qmail-inject: fatal: qq write error or disk full (#4.3.0)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := injInstance(t, as)
			hook := filepath.Join(filepath.Dir(root), "hook")
			injWrite(t, hook, tc.script, as)
			r := run(t, proc{args: []string{"sendmail", "-t", "-i"}, env: []string{"QMAILHOME=" + root, "QMAILQUEUE=" + hook},
				stdin: phpMessage, as: as})
			if r.code != tc.code || r.stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tc.code, tc.stderr)
			}
			if msgs := injReadQueue(t, root); len(msgs) != 0 {
				t.Errorf("%d messages queued", len(msgs))
			}
		})
	}
}

// sendmail -bp and mailq run bin/qmail-qread; -bs runs bin/qmail-smtpd
// as a connection from localhost, without lifting the size limit.
func TestSendmailRunsPrograms(t *testing.T) {
	as := injectAs()
	root := injInstance(t, as)
	injWrite(t, filepath.Join(root, "bin", "qmail-qread"), "#!/bin/sh\necho \"qread $# $PWD\"\n", as)
	injWrite(t, filepath.Join(root, "bin", "qmail-smtpd"),
		"#!/bin/sh\necho \"smtpd $PWD PROTO=$PROTO TCPREMOTEIP=$TCPREMOTEIP RELAYCLIENT=${RELAYCLIENT-unset} DATABYTES=${DATABYTES-unset}\"\n", as)
	links := filepath.Join(filepath.Dir(root), "links")
	if err := os.Mkdir(links, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mailq", "newaliases"} {
		if err := os.Symlink(filepath.Join(testutil.Bin(t), "sendmail"), filepath.Join(links, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"QMAILHOME=" + root}
	for _, tc := range []struct {
		path           string
		args           []string
		env            []string
		code           int
		stdout, stderr string
	}{
		{"", []string{"sendmail", "-bp"}, nil, 0, "qread 0 " + root + "\n", ""},
		{filepath.Join(links, "mailq"), []string{"mailq"}, nil, 0, "qread 0 " + root + "\n", ""},
		{"", []string{"sendmail", "-bs"}, nil, 0, "smtpd " + root + " PROTO=TCP TCPREMOTEIP=127.0.0.1 RELAYCLIENT= DATABYTES=unset\n", ""},
		{"", []string{"sendmail", "-bs"}, []string{"PROTO=TCP", "TCPREMOTEIP=192.0.2.9"}, 0,
			"smtpd " + root + " PROTO=TCP TCPREMOTEIP=192.0.2.9 RELAYCLIENT=unset DATABYTES=unset\n", ""},
		{filepath.Join(links, "newaliases"), []string{"newaliases"}, nil, 100, "", "sendmail: fatal: please use fastforward/newaliases instead\n"},
		{"", []string{"sendmail", "-q30m"}, nil, 100, "", "sendmail: option -q is not supported: qmail-send runs the queue by itself; usage: sendmail [-t] [-i] [-f sender] [-F name] [-bm | -bp | -bs] [-o option] [--] [recipient ...]\n"},
		{"", []string{"sendmail", "root"}, []string{"QMAILHOME=/nonexistent"}, 111, "", "qmail-inject: fatal: unable to exec qq (#4.3.0)\n"},
	} {
		p := proc{args: tc.args, env: append(append([]string{}, env...), tc.env...), as: as, stdin: "Subject: x\n\nx\n"}
		var r result
		if tc.path != "" {
			r = runPath(t, tc.path, p)
		} else {
			r = run(t, p)
		}
		if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	for _, prog := range []string{"sendmail", "qmail-inject"} {
		r := run(t, proc{args: []string{prog, "--help"}, as: as})
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: "+prog) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", prog, r.code, r.stdout, r.stderr)
		}
	}
}
