package maildir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

// interopMaildir delivers three messages with Deliver and leaves the
// first in new/, moves the second to cur/ as qmail-pop3d's QUIT does, and
// marks the third seen. It returns what a reader must find, by UIDL.
func interopMaildir(t *testing.T, dir string) map[string]wantMsg {
	t.Helper()
	prefix := []byte("Return-Path: <sender@example.org>\nDelivered-To: joe@example.test\n")
	want := map[string]wantMsg{}
	for i, how := range []string{"new", "cur", "seen"} {
		body := fmt.Sprintf("From: sender@example.org\nSubject: message %d\n\nbody %d\n.leading dot\n", i, i)
		d, err := Deliver(dir, strings.NewReader(body), prefix)
		if err != nil {
			t.Fatal(err)
		}
		m := Message{Name: d.Name, UIDL: strings.TrimPrefix(d.Name, "new/")}
		switch how {
		case "cur":
			m, err = MoveToCur(dir, m)
		case "seen":
			if m, err = MoveToCur(dir, m); err == nil {
				m, err = SetFlags(dir, m, "S")
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		// What the reader must see, written out rather than taken from m.
		w := wantMsg{Subdir: "cur", Content: string(prefix) + body}
		switch how {
		case "new":
			w.Subdir = "new"
		case "seen":
			w.Flags = "S"
		}
		want[m.UIDL] = w
	}
	return want
}

type wantMsg struct {
	Subdir, Flags, Content string
}

// pythonMaildir reads a Maildir with Python's mailbox.Maildir: for each
// key, its subdirectory, flags and bytes.
const pythonMaildir = `
import json, mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = {}
for key in md.iterkeys():
    msg = md.get_message(key)
    out[key] = {"Subdir": msg.get_subdir(), "Flags": msg.get_flags(),
                "Content": md.get_bytes(key).decode("latin-1")}
json.dump(out, sys.stdout)
`

// pythonAdd delivers a message with Python's mailbox.Maildir and prints its key.
const pythonAdd = `
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
sys.stdout.write(md.add(b"Subject: from python\n\nhello\n"))
`

// TestPythonMailbox checks our Maildir against Python's mailbox module, a
// reader and writer written from the Maildir specification: it must list
// what we delivered with the same keys (our UIDLs), places, flags and
// bytes; and we must list what it delivers.
func TestPythonMailbox(t *testing.T) {
	python := testutil.NeedTool(t, "python3", "python3")
	dir := newMaildir(t)
	want := interopMaildir(t, dir)

	out, err := exec.Command(python, "-c", pythonMaildir, dir).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderrOf(err))
	}
	got := map[string]wantMsg{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(got) != len(want) {
		t.Errorf("python lists %d messages, want %d", len(got), len(want))
	}
	for uidl, w := range want {
		if got[uidl] != w {
			t.Errorf("python reads %s as %+v, want %+v", uidl, got[uidl], w)
		}
	}

	// The other way: Python delivers, Scan lists and MoveToCur moves.
	key, err := exec.Command(python, "-c", pythonAdd, dir).Output()
	if err != nil {
		t.Fatalf("python add: %v\n%s", err, stderrOf(err))
	}
	msgs, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(msgs, func(m Message) bool { return m.UIDL == string(key) })
	if len(msgs) != 4 || i < 0 || msgs[i].Name != "new/"+string(key) || msgs[i].Size != int64(len("Subject: from python\n\nhello\n")) {
		t.Fatalf("after Python's delivery of %s, Scan = %+v", key, msgs)
	}
	if _, err := MoveToCur(dir, msgs[i]); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(python, "-c", pythonMaildir, dir).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderrOf(err))
	}
	got = map[string]wantMsg{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if m := got[string(key)]; m.Subdir != "cur" || m.Flags != "" {
		t.Errorf("after MoveToCur python reads %s as %+v, want in cur/ without flags", key, m)
	}
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// TestDovecot has Dovecot's IMAP server (preauthenticated, on stdin and
// stdout) read the Maildir read-only: every message with its flags and
// bytes. Then Dovecot's POP3 server, with UIDLs made from file names as
// qmail-pop3d makes them, must list our UIDLs.
func TestDovecot(t *testing.T) {
	imap := testutil.NeedTool(t, "/usr/lib/dovecot/imap", "dovecot-imapd")
	pop3 := testutil.NeedTool(t, "/usr/lib/dovecot/pop3", "dovecot-pop3d")
	home := t.TempDir()
	dir := filepath.Join(home, "Maildir")
	if err := Make(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	want := interopMaildir(t, dir)
	conf := dovecotConf(t, home)

	// EXAMINE opens the mailbox read-only, so Dovecot leaves new/ alone.
	session := "a EXAMINE INBOX\r\nb FETCH 1:* (FLAGS BODY.PEEK[])\r\nc LOGOUT\r\n"
	out := runDovecot(t, imap, conf, home, session)
	got := parseFetch(t, out)
	if len(got) != len(want) {
		t.Errorf("Dovecot IMAP lists %d messages, want %d:\n%s", len(got), len(want), out)
	}
	// Dovecot names a message by its IMAP UID, not its file: match on
	// content, which differs in each message.
	for uidl, w := range want {
		i := slices.IndexFunc(got, func(f fetched) bool { return f.content == w.Content })
		if i < 0 {
			t.Errorf("Dovecot IMAP did not return %s byte for byte", uidl)
			continue
		}
		wantFlags := ""
		if HasFlag(w.Flags, FlagSeen) {
			wantFlags = `\Seen`
		}
		if got[i].flags != wantFlags {
			t.Errorf("Dovecot IMAP gives %s flags %q, want %q", uidl, got[i].flags, wantFlags)
		}
	}

	out = runDovecot(t, pop3, conf, home, "UIDL\r\nQUIT\r\n")
	var uidls []string
	for _, line := range strings.Split(out, "\r\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] != "+OK" {
			uidls = append(uidls, f[1])
		}
	}
	slices.Sort(uidls)
	wantUIDLs := slices.Sorted(func(yield func(string) bool) {
		for u := range want {
			if !yield(u) {
				return
			}
		}
	})
	if !slices.Equal(uidls, wantUIDLs) {
		t.Errorf("Dovecot POP3 UIDLs %q, want %q\n%s", uidls, wantUIDLs, out)
	}
}

// dovecotConf writes a Dovecot configuration for the Maildir in home.
// Dovecot refuses to open mail as root, so as root the files go to
// nobody and Dovecot drops to nobody.
func dovecotConf(t *testing.T, home string) string {
	t.Helper()
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
		err := filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
		// t.TempDir's parents are private to root; let nobody through.
		for _, p := range []string{home, filepath.Dir(home)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := t.TempDir()
	conf := filepath.Join(run, "dovecot.conf")
	text := fmt.Sprintf(`base_dir = %[1]s
state_dir = %[1]s
log_path = /dev/stderr
ssl = no
protocols =
first_valid_uid = %[2]d
first_valid_gid = %[3]d
mail_uid = %[2]d
mail_gid = %[3]d
mail_location = maildir:%[4]s/Maildir:INDEX=MEMORY
pop3_uidl_format = %%f
`, run, uid, gid, home)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

func runDovecot(t *testing.T, prog, conf, home, session string) string {
	t.Helper()
	cmd := exec.Command(prog, "-c", conf)
	cmd.Env = []string{"USER=tester", "HOME=" + home, "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(session)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", prog, err, out, stderr.Bytes())
	}
	return string(out)
}

type fetched struct {
	flags   string // system flags other than \Recent, space-separated
	content string // with Dovecot's CRLF turned back into LF
}

var fetchRE = regexp.MustCompile(`^\* \d+ FETCH \(FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}$`)

// parseFetch reads the untagged FETCH replies to "FETCH (FLAGS BODY[])".
func parseFetch(t *testing.T, out string) []fetched {
	t.Helper()
	var res []fetched
	r := bufio.NewReader(strings.NewReader(out))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return res
		}
		m := fetchRE.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("short literal in %q", out)
		}
		var flags []string
		for _, f := range strings.Fields(m[1]) {
			if f != `\Recent` {
				flags = append(flags, f)
			}
		}
		res = append(res, fetched{
			flags:   strings.Join(flags, " "),
			content: strings.ReplaceAll(string(body), "\r\n", "\n"),
		})
	}
}
