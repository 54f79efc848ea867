//go:build integration

package test

// POP3 end to end: qmail-popup, checkpassword and qmail-pop3d under
// tcpserver (ucspi-tcp's, and quail's qmail-tcpserver), driven by real
// clients (Python's poplib, fetchmail, curl), with the Maildir read back
// by Dovecot afterwards.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/popgrant"
	"github.com/quail-mta/quail/pkg/testutil"
)

const popPassword = "pass word 1" // joe's, from buildInstance

// popMessages are delivered into joe's Maildir by popFill: the first two
// by maildir.Deliver (sizes in their names), the last by hand, without.
var popSeq int

var popMessages = []string{
	"From: sender@example.org\nSubject: one\n\n.a line starting with a dot\nbody one\n",
	"From: sender@example.org\nSubject: two\n\nbody two\n",
	"From: sender@example.org\nSubject: three\n\nno sizes in this name\n",
}

// popServers are the tcpserver implementations to test under.
func popServers(t *testing.T) map[string]string {
	t.Helper()
	servers := map[string]string{"tcpserver": testutil.NeedTool(t, "tcpserver", "ucspi-tcp")}
	if p := filepath.Join(testutil.Bin(t), "qmail-tcpserver"); popExists(p) {
		servers["qmail-tcpserver"] = p
	}
	return servers
}

// popMaildir is joe's Maildir in the instance at root.
func popMaildir(root string) string {
	return filepath.Join(root, "domains", "example.test", "joe", "Maildir")
}

// popFill delivers popMessages into dir, owned by dir's owner, dated a
// minute ago one second apart (so they are numbered in order and not
// held back as delivered in the session's second), and returns the
// UIDLs.
func popFill(t *testing.T, dir string) []string {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	var uidls []string
	base := time.Now().Add(-time.Minute)
	for i, body := range popMessages {
		popSeq++
		name := fmt.Sprintf("new/%d.M%dP%d.handmade", base.Unix(), popSeq, os.Getpid())
		if i < 2 {
			d, err := maildir.Deliver(dir, strings.NewReader(body), nil)
			if err != nil {
				t.Fatal(err)
			}
			name = d.Name
		} else if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		at := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, int(owner.Uid), int(owner.Gid)); err != nil {
			t.Fatal(err)
		}
		uidls = append(uidls, strings.TrimPrefix(name, "new/"))
	}
	return uidls
}

// popServer is a running tcpserver with qmail-popup behind it.
type popServer struct {
	port int
	log  *testutil.SyncBuffer
}

// startPOP3 runs `SERVER -1 -R -H -l localhost 127.0.0.1 0 qmail-popup
// mail.example.test CHECKER qmail-pop3d Maildir` as cred (nil: as root
// when root, else as ourselves) for the instance at root.
func startPOP3(t *testing.T, server, root string, cred *syscall.Credential, checker ...string) *popServer {
	t.Helper()
	bin := testutil.Bin(t)
	if len(checker) == 0 {
		checker = []string{filepath.Join(bin, "checkpassword"), filepath.Join(bin, "qmail-pop3d"), "Maildir"}
	}
	args := append([]string{"-1", "-R", "-H", "-l", "localhost", "127.0.0.1", "0",
		filepath.Join(bin, "qmail-popup"), "mail.example.test"}, checker...)
	cmd := exec.Command(server, args...)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "QMAILHOME=" + root}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	log := &testutil.SyncBuffer{}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", server, log.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s printed no port: %v\n%s", server, err, log.String())
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("%s printed %q", server, line)
	}
	return &popServer{port: port, log: log}
}

// popClient speaks POP3 line by line, for what the real clients cannot
// show: timing, dropped connections, processes during a session.
type popClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, port int) (*popClient, string) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	p := &popClient{c: c, r: bufio.NewReader(c)}
	return p, p.line(t)
}

func (p *popClient) line(t *testing.T) string {
	t.Helper()
	s, err := p.r.ReadString('\n')
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSuffix(s, "\r\n")
}

func (p *popClient) cmd(t *testing.T, line string) string {
	t.Helper()
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		return "<" + err.Error() + ">"
	}
	return p.line(t)
}

// multi reads a multi-line response body up to the terminating dot.
func (p *popClient) multi(t *testing.T) []string {
	t.Helper()
	var out []string
	for {
		l := p.line(t)
		if l == "." || strings.HasPrefix(l, "<") {
			return out
		}
		out = append(out, l)
	}
}

func (p *popClient) login(t *testing.T, user, pass string) {
	t.Helper()
	if r := p.cmd(t, "USER "+user); r != "+OK " {
		t.Fatalf("USER: %q", r)
	}
	if r := p.cmd(t, "PASS "+pass); r != "+OK " {
		t.Fatalf("PASS: %q", r)
	}
}

// poplibClient drives Python's poplib; it prints what it saw as JSON.
const poplibClient = `
import json, poplib, ssl, sys
a = json.loads(sys.argv[1])
out = {}
try:
    p = poplib.POP3('127.0.0.1', a['port'], timeout=30)
    out['welcome'] = p.getwelcome().decode()
    if a.get('stls'):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        out['stls'] = p.stls(context=ctx).decode()
    out['capa'] = sorted(p.capa().keys())
    if a['auth'] == 'apop':
        out['auth'] = p.apop(a['user'], a['password']).decode()
    else:
        p.user(a['user'])
        out['auth'] = p.pass_(a['password']).decode()
    out['stat'] = list(p.stat())
    out['list'] = [l.decode() for l in p.list()[1]]
    out['uidl'] = [l.decode() for l in p.uidl()[1]]
    out['retr'] = [b'\n'.join(p.retr(i)[1]).decode('latin-1') + '\n' for i in range(1, out['stat'][0] + 1)]
    for i in a.get('dele', []):
        p.dele(i)
    if a.get('quit', True):
        out['quit'] = p.quit().decode()
    else:
        p.sock.close()
except Exception as e:
    out['error'] = repr(e)
print(json.dumps(out))
`

type poplibResult struct {
	Welcome, STLS, Auth, Quit, Error string
	Capa, List, UIDL, Retr           []string
	Stat                             []int
}

func runPoplib(t *testing.T, args map[string]any) poplibResult {
	t.Helper()
	python := testutil.NeedTool(t, "python3", "python3")
	a, _ := json.Marshal(args)
	out, err := exec.Command(python, "-c", poplibClient, string(a)).Output()
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, popStderr(err))
	}
	var r poplibResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("poplib printed %q: %v", out, err)
	}
	return r
}

func popStderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// crlfSize is the size POP3 gives a stored message.
func crlfSize(body string) int { return len(body) + strings.Count(body, "\n") }

// popFiles lists new/ and cur/ of a Maildir.
func popFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, sub+"/"+e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// popAs is the identity the non-root variants run as.
func popAs() *syscall.Credential {
	if os.Geteuid() == 0 {
		return nobody
	}
	return nil
}

func TestPOP3AsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	testPOP3(t, nil)
}

func TestPOP3AsOrdinaryUser(t *testing.T) { testPOP3(t, popAs()) }

// testPOP3 runs the whole client matrix against an instance made as
// cred: poplib with USER/PASS, APOP, and STLS; curl; fetchmail; then
// Dovecot reads what the sessions left.
func testPOP3(t *testing.T, cred *syscall.Credential) {
	for name, server := range popServers(t) {
		t.Run(name, func(t *testing.T) {
			root := buildInstance(t, cred)
			md := popMaildir(root)
			srv := startPOP3(t, server, root, cred)

			// USER/PASS in plain text: no certificate, so it is allowed.
			uidls := popFill(t, md)
			r := runPoplib(t, map[string]any{"port": srv.port, "auth": "user", "user": "joe@example.test", "password": popPassword, "dele": []int{1}})
			popCheckSession(t, r, uidls, popMessages)
			want := []string{"cur/" + uidls[1] + ":2,", "cur/" + uidls[2] + ":2,"}
			slices.Sort(want)
			if got := popFiles(t, md); !slices.Equal(got, want) {
				t.Errorf("after DELE 1 and QUIT the Maildir holds %q, want %q", got, want)
			}
			if !strings.Contains(srv.log.String(), `qmail-popup: ip=127.0.0.1 login user="joe@example.test" tls=no`) {
				t.Errorf("no login line in the log:\n%s", srv.log.String())
			}
			// The UIDLs stay when the messages are in cur/.
			r = runPoplib(t, map[string]any{"port": srv.port, "auth": "apop", "user": "joe@example.test", "password": popPassword})
			if r.Error != "" || !slices.Equal(r.UIDL, []string{"1 " + uidls[1], "2 " + uidls[2]}) {
				t.Errorf("APOP session: %+v; want UIDLs %q", r, uidls[1:])
			}
			popCheckDovecot(t, root, cred, uidls[1:], popMessages[1:])

			// A login records a POP-before-SMTP grant for 127.0.0.1.
			if ok, err := popgrant.Allowed(root, "127.0.0.1", 20*time.Minute, time.Now()); !ok || err != nil {
				t.Errorf("no grant after a login: %v, %v", ok, err)
			}

			// Dropping the connection after DELE deletes nothing and
			// moves nothing.
			before := popFiles(t, md)
			r = runPoplib(t, map[string]any{"port": srv.port, "auth": "apop", "user": "joe@example.test", "password": popPassword, "dele": []int{1, 2}, "quit": false})
			if r.Error != "" {
				t.Fatalf("%+v", r)
			}
			time.Sleep(200 * time.Millisecond)
			if got := popFiles(t, md); !slices.Equal(got, before) {
				t.Errorf("a dropped connection changed the Maildir: %q, was %q", got, before)
			}

			// STLS, with a certificate: USER/PASS refused before it,
			// allowed after.
			popCert(t, root, cred)
			r = runPoplib(t, map[string]any{"port": srv.port, "auth": "user", "user": "joe@example.test", "password": popPassword})
			if !strings.Contains(r.Error, "need STLS first") || slices.Contains(r.Capa, "USER") || !slices.Contains(r.Capa, "STLS") {
				t.Errorf("USER/PASS before STLS: %+v", r)
			}
			r = runPoplib(t, map[string]any{"port": srv.port, "stls": true, "auth": "user", "user": "joe@example.test", "password": popPassword})
			if r.Error != "" || r.STLS == "" || !slices.Contains(r.Capa, "USER") || slices.Contains(r.Capa, "STLS") || len(r.Retr) != 2 || r.Retr[0] != popMessages[1] {
				t.Errorf("STLS session: %+v", r)
			}
			if !strings.Contains(srv.log.String(), `login user="joe@example.test" tls=yes`) {
				t.Errorf("no TLS login in the log:\n%s", srv.log.String())
			}
			// Over TLS too, a dropped connection changes nothing, and a
			// wrong password gets qmail's refusal.
			before = popFiles(t, md)
			r = runPoplib(t, map[string]any{"port": srv.port, "stls": true, "auth": "user", "user": "joe@example.test", "password": popPassword, "dele": []int{1, 2}, "quit": false})
			time.Sleep(200 * time.Millisecond)
			if got := popFiles(t, md); r.Error != "" || !slices.Equal(got, before) {
				t.Errorf("a dropped TLS session (%+v) changed the Maildir: %q, was %q", r, got, before)
			}
			r = runPoplib(t, map[string]any{"port": srv.port, "stls": true, "auth": "user", "user": "joe@example.test", "password": "guess"})
			if !strings.Contains(r.Error, "-ERR authorization failed") {
				t.Errorf("wrong password over TLS: %+v", r)
			}
			os.Remove(filepath.Join(root, "run", "popfail", "127.0.0.1"))

			popCurl(t, srv.port, md)
			popFetchmail(t, srv.port, md, cred)
		})
	}
}

// popCheckSession checks a poplib session over popMessages numbered
// from the UIDLs given.
func popCheckSession(t *testing.T, r poplibResult, uidls, msgs []string) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("poplib: %s", r.Error)
	}
	if !regexp.MustCompile(`^\+OK <\d+\.\d+@mail\.example\.test>$`).MatchString(r.Welcome) {
		t.Errorf("greeting %q", r.Welcome)
	}
	total := 0
	var list, uidl []string
	for i, m := range msgs {
		total += crlfSize(m)
		list = append(list, fmt.Sprintf("%d %d", i+1, crlfSize(m)))
		uidl = append(uidl, fmt.Sprintf("%d %s", i+1, uidls[i]))
	}
	if len(r.Stat) != 2 || r.Stat[0] != len(msgs) || r.Stat[1] != total {
		t.Errorf("STAT %v, want %d %d", r.Stat, len(msgs), total)
	}
	if !slices.Equal(r.List, list) || !slices.Equal(r.UIDL, uidl) || !slices.Equal(r.Retr, msgs) {
		t.Errorf("LIST %q UIDL %q RETR %q;\nwant %q %q %q", r.List, r.UIDL, r.Retr, list, uidl, msgs)
	}
	if r.Quit != "+OK " {
		t.Errorf("QUIT: %q", r.Quit)
	}
}

// popCert writes a self-signed certificate and its key into
// control/servercert.pem with openssl.
func popCert(t *testing.T, root string, cred *syscall.Credential) {
	t.Helper()
	openssl := testutil.NeedTool(t, "openssl", "openssl")
	dir := t.TempDir()
	cmd := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", filepath.Join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=mail.example.test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	cert, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	key, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
	p := filepath.Join(root, "control", "servercert.pem")
	if err := os.WriteFile(p, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(p, int(cred.Uid), int(cred.Gid))
	}
}

// popCurl lists and retrieves with curl: it uses APOP here, the greeting
// having a timestamp and USER being refused before STLS.
func popCurl(t *testing.T, port int, md string) {
	t.Helper()
	curl := testutil.NeedTool(t, "curl", "curl")
	popFill(t, md)
	base := fmt.Sprintf("pop3://127.0.0.1:%d/", port)
	list, err := exec.Command(curl, "-sS", "--max-time", "30", "-u", "joe@example.test:"+popPassword, base).Output()
	if err != nil {
		t.Fatalf("curl LIST: %v %s", err, popStderr(err))
	}
	// Two messages left in cur/ by the sessions before, and the three
	// just delivered: five, each one of popMessages.
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(list), "\r\n", "\n")), "\n")
	if len(lines) != 5 {
		t.Fatalf("curl LIST: %q, want 5 messages", list)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != strconv.Itoa(i+1) {
			t.Errorf("curl LIST line %q", l)
		}
	}
	for i := 1; i <= 5; i++ {
		msg, err := exec.Command(curl, "-sS", "--max-time", "30", "-u", "joe@example.test:"+popPassword, base+strconv.Itoa(i)).Output()
		if err != nil {
			t.Fatalf("curl RETR %d: %v %s", i, err, popStderr(err))
		}
		size, _ := strconv.Atoi(strings.Fields(lines[i-1])[1])
		got := string(msg)
		if len(got) != size || !strings.HasSuffix(got, "\r\n") || strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\n") {
			t.Errorf("curl RETR %d: %d bytes %q; LIST said %d, all lines CRLF", i, len(got), got, size)
		}
		lf := strings.ReplaceAll(got, "\r\n", "\n")
		if !slices.Contains(popMessages, lf) {
			t.Errorf("curl RETR %d: %q is none of the messages", i, lf)
		}
	}
}

// popFetchmail fetches everything with fetchmail over APOP into a file
// and checks that the mailbox is empty afterwards (fetchmail deletes
// what it fetched).
func popFetchmail(t *testing.T, port int, md string, cred *syscall.Credential) {
	t.Helper()
	fetchmail := testutil.NeedTool(t, "fetchmail", "fetchmail")
	home := ownedDir(t, cred)
	out := filepath.Join(home, "fetched")
	rc := filepath.Join(home, "fetchmailrc")
	conf := fmt.Sprintf("set no bouncemail\npoll 127.0.0.1 service %d protocol APOP timeout 30\n"+
		"  user \"joe@example.test\" there with password %q mda \"cat >> %s\" sslproto ''\n", port, popPassword, out)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(rc, int(cred.Uid), int(cred.Gid))
	}
	before := len(popFiles(t, md))
	cmd := exec.Command(fetchmail, "--nosyslog", "-f", rc)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetchmail: %v\n%s", err, o)
	}
	got, _ := os.ReadFile(out)
	for _, m := range popMessages {
		if !strings.Contains(string(got), strings.TrimSuffix(m, "\n")) {
			t.Errorf("fetchmail's output lacks %q:\n%s", m, got)
		}
	}
	if n := bytes.Count(got, []byte("Subject: ")); n != before {
		t.Errorf("fetchmail stored %d messages, the mailbox had %d", n, before)
	}
	if left := popFiles(t, md); len(left) != 0 {
		t.Errorf("after fetchmail the Maildir holds %q", left)
	}
}

// popCheckDovecot has Dovecot's IMAP server read the Maildir left by
// the sessions: the messages are there, in cur/, without flags (qmail's
// QUIT moves them with an empty info), byte for byte; and Dovecot's
// POP3, with UIDLs from file names, gives the same UIDLs. Dovecot
// numbers messages in its own order, so both are compared as sets.
func popCheckDovecot(t *testing.T, root string, cred *syscall.Credential, uidls, msgs []string) {
	t.Helper()
	imap := testutil.NeedTool(t, "/usr/lib/dovecot/imap", "dovecot-imapd")
	pop3 := testutil.NeedTool(t, "/usr/lib/dovecot/pop3", "dovecot-pop3d")
	home := filepath.Dir(popMaildir(root))
	st, err := os.Stat(popMaildir(root))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := st.Sys().(*syscall.Stat_t).Uid, st.Sys().(*syscall.Stat_t).Gid
	run := t.TempDir()
	conf := filepath.Join(run, "dovecot.conf")
	text := fmt.Sprintf("base_dir = %[1]s\nstate_dir = %[1]s\nlog_path = /dev/stderr\nssl = no\nprotocols =\n"+
		"first_valid_uid = %[2]d\nfirst_valid_gid = %[3]d\nmail_uid = %[2]d\nmail_gid = %[3]d\n"+
		"mail_location = maildir:%[4]s/Maildir:INDEX=MEMORY\npop3_uidl_format = %%f\n", run, uid, gid, home)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dovecot := func(prog, session string) string {
		cmd := exec.Command(prog, "-c", conf)
		cmd.Env = []string{"USER=joe", "HOME=" + home, "PATH=/usr/bin:/bin"}
		cmd.Stdin = strings.NewReader(session)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", prog, err, out, stderr.Bytes())
		}
		return string(out)
	}
	out := dovecot(imap, "a EXAMINE INBOX\r\nb FETCH 1:* (FLAGS BODY.PEEK[])\r\nc LOGOUT\r\n")
	re := regexp.MustCompile(`(?m)^\* \d+ FETCH \(FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}\r\n`)
	found := re.FindAllStringSubmatchIndex(out, -1)
	if len(found) != len(msgs) {
		t.Fatalf("Dovecot IMAP lists %d messages, want %d:\n%s", len(found), len(msgs), out)
	}
	var bodies []string
	for i, m := range found {
		flags := strings.Fields(out[m[2]:m[3]])
		flags = slices.DeleteFunc(flags, func(f string) bool { return f == `\Recent` })
		n, _ := strconv.Atoi(out[m[4]:m[5]])
		bodies = append(bodies, strings.ReplaceAll(out[m[1]:m[1]+n], "\r\n", "\n"))
		if len(flags) != 0 {
			t.Errorf("Dovecot IMAP message %d: flags %q, want none", i+1, flags)
		}
	}
	slices.Sort(bodies)
	if want := slices.Sorted(slices.Values(msgs)); !slices.Equal(bodies, want) {
		t.Errorf("Dovecot IMAP reads %q, want %q", bodies, want)
	}
	out = dovecot(pop3, "UIDL\r\nQUIT\r\n")
	var got []string
	for _, line := range strings.Split(out, "\r\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] != "+OK" {
			got = append(got, f[1])
		}
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(uidls)); !slices.Equal(got, want) {
		t.Errorf("Dovecot POP3 UIDLs %q, ours %q", got, want)
	}
}

// TestPOP3Privileges: in a root install qmail-pop3d runs as the virtual
// mailbox owner (qmailv), and qmail-popup, once the login is recorded,
// as qmaild; the grant directory is root's.
func TestPOP3Privileges(t *testing.T) {
	testutil.NeedRoot(t)
	root := buildInstance(t, nil)
	popFill(t, popMaildir(root))
	srv := startPOP3(t, testutil.NeedTool(t, "tcpserver", "ucspi-tcp"), root, nil)
	c, _ := dialPOP3(t, srv.port)
	c.login(t, "joe@example.test", popPassword)
	if r := c.cmd(t, "STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Fatalf("STAT: %q", r)
	}
	v, err := user.Lookup("qmailv")
	if err != nil {
		t.Fatal(err)
	}
	d, err := user.Lookup("qmaild")
	if err != nil {
		t.Fatal(err)
	}
	pop3d := filepath.Join(testutil.Bin(t), "qmail-pop3d")
	found := false
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != pop3d {
			continue
		}
		found = true
		_, uid, gid := procIdentity(pid)
		if uid != v.Uid || gid != v.Gid {
			t.Errorf("qmail-pop3d runs as %s:%s, want qmailv %s:%s", uid, gid, v.Uid, v.Gid)
		}
		// Its parent is qmail-popup (checkpassword exec'd it).
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		s := string(b)
		ppid := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[1]
		n, _ := strconv.Atoi(ppid)
		name, uid, _ := procIdentity(n)
		for end := time.Now().Add(2 * time.Second); uid != d.Uid && time.Now().Before(end); {
			// qmail-popup drops root once it has recorded the login,
			// while the session runs: give it a moment.
			time.Sleep(10 * time.Millisecond)
			name, uid, _ = procIdentity(n)
		}
		if name != "qmail-popup" || uid != d.Uid {
			t.Errorf("qmail-pop3d's parent is %s as uid %s, want qmail-popup as qmaild (%s)", name, uid, d.Uid)
		}
	}
	if !found {
		t.Error("no qmail-pop3d process during the session")
	}
	c.cmd(t, "QUIT")
	st, err := os.Stat(filepath.Join(root, "run", "popgrant"))
	if err != nil || st.Mode().Perm() != 0o711 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("run/popgrant: %v, %v; want root's, mode 0711", st.Mode(), err)
	}
}

func popExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestPOP3Refusals: wrong passwords end the connection after qmail's
// text and slow the next attempt from the same address; a missing or
// crashing checker is a temporary failure, never a login; the
// pop3plaintext switch; timeouts; popbeforesmtp 0.
func TestPOP3Refusals(t *testing.T) {
	cred := popAs()
	root := buildInstance(t, cred)
	popFill(t, popMaildir(root))
	tcpserver := testutil.NeedTool(t, "tcpserver", "ucspi-tcp")
	srv := startPOP3(t, tcpserver, root, cred)

	t.Run("wrong password", func(t *testing.T) {
		for i, minWait := range []time.Duration{time.Second, 2 * time.Second} {
			c, _ := dialPOP3(t, srv.port)
			c.cmd(t, "USER joe@example.test")
			start := time.Now()
			if r := c.cmd(t, "PASS guess"); r != "-ERR authorization failed" {
				t.Errorf("attempt %d: %q", i+1, r)
			}
			// checkpassword waits 1 s; the second attempt waits 1 s more
			// before it is checked.
			if took := time.Since(start); took < minWait {
				t.Errorf("attempt %d answered after %v, want at least %v", i+1, took, minWait)
			}
			if r := c.line(t); !strings.HasPrefix(r, "<") {
				t.Errorf("the connection stays open after a failure: %q", r)
			}
		}
		st, err := os.Stat(filepath.Join(root, "run", "popfail", "127.0.0.1"))
		if err != nil || st.Size() != 2 {
			t.Errorf("run/popfail/127.0.0.1: %v, %v; want 2 failures", st, err)
		}
		// A login forgets them.
		c, _ := dialPOP3(t, srv.port)
		c.login(t, "joe@example.test", popPassword)
		c.cmd(t, "QUIT")
		if _, err := os.Stat(filepath.Join(root, "run", "popfail", "127.0.0.1")); !os.IsNotExist(err) {
			t.Errorf("failures kept after a login: %v", err)
		}
	})

	t.Run("APOP for an account without the secret", func(t *testing.T) {
		c, _ := dialPOP3(t, srv.port)
		if r := c.cmd(t, "APOP ann@example.test 0123456789abcdef0123456789abcdef"); r != "-ERR authorization failed" {
			t.Errorf("%q", r)
		}
		os.Remove(filepath.Join(root, "run", "popfail", "127.0.0.1"))
	})

	for name, checker := range map[string][]string{
		"missing checker":   {"/nonexistent/checkpassword", "qmail-pop3d", "Maildir"},
		"crashing checker":  {"/bin/sh", "-c", "kill -SEGV $$"},
		"checker exits 111": {"/bin/sh", "-c", "exit 111"},
	} {
		t.Run(name, func(t *testing.T) {
			s := startPOP3(t, tcpserver, root, cred, checker...)
			c, _ := dialPOP3(t, s.port)
			c.cmd(t, "USER joe@example.test")
			r := c.cmd(t, "PASS "+popPassword)
			want := "-ERR [SYS/TEMP] unable to check the password now; try again later"
			if name == "crashing checker" {
				want = "-ERR aack, child crashed"
			}
			if r != want {
				t.Errorf("%q, want %q", r, want)
			}
		})
	}

	t.Run("pop3plaintext", func(t *testing.T) {
		popCert(t, root, cred)
		defer os.Remove(filepath.Join(root, "control", "servercert.pem"))
		c, _ := dialPOP3(t, srv.port)
		if r := c.cmd(t, "USER joe@example.test"); !strings.Contains(r, "STLS") {
			t.Errorf("USER with a certificate: %q", r)
		}
		p := filepath.Join(root, "control", "pop3plaintext")
		os.WriteFile(p, []byte("1\n"), 0o644)
		defer os.Remove(p)
		c, _ = dialPOP3(t, srv.port)
		c.login(t, "joe@example.test", popPassword)
		c.cmd(t, "QUIT")
	})

	t.Run("timeouts", func(t *testing.T) {
		p := filepath.Join(root, "control", "timeoutpop3")
		os.WriteFile(p, []byte("1\n"), 0o644)
		defer os.Remove(p)
		c, _ := dialPOP3(t, srv.port)
		start := time.Now()
		if r := c.line(t); !strings.HasPrefix(r, "<") || time.Since(start) > 10*time.Second {
			t.Errorf("idle before login: %q after %v", r, time.Since(start))
		}
		c, _ = dialPOP3(t, srv.port)
		c.login(t, "joe@example.test", popPassword)
		start = time.Now()
		if r := c.line(t); !strings.HasPrefix(r, "<") || time.Since(start) > 10*time.Second {
			t.Errorf("idle after login: %q after %v", r, time.Since(start))
		}
	})

	t.Run("popbeforesmtp 0", func(t *testing.T) {
		os.RemoveAll(filepath.Join(root, "run", "popgrant"))
		p := filepath.Join(root, "control", "popbeforesmtp")
		os.WriteFile(p, []byte("0\n"), 0o644)
		defer os.Remove(p)
		c, _ := dialPOP3(t, srv.port)
		c.login(t, "joe@example.test", popPassword)
		c.cmd(t, "QUIT")
		if _, err := os.Stat(filepath.Join(root, "run", "popgrant", "127.0.0.1")); !os.IsNotExist(err) {
			t.Errorf("a grant was recorded with popbeforesmtp 0: %v", err)
		}
	})
}

// BenchmarkPOP3Session is one full session as bench-pop3.sh runs it
// (LIST, UIDL, RETR of every message, QUIT) over n messages of 4 KB,
// against qmail-pop3d and, as the baseline in the same run, Dovecot's
// pop3 (preauthenticated on its stdin, indexes in memory: every session
// cold, as quail's). The server is a child process on a socket pair;
// its CPU time and peak RSS come from its rusage. Each session starts
// from messages in new/, refilled outside the timer. "quail-named" has
// the sizes in the names, as quail's delivery writes them; "quail" and
// "dovecot" read files named as bench-pop3.sh names them, without.
func BenchmarkPOP3Session(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		var dovecotCPU float64
		b.Run(fmt.Sprintf("dovecot/%d", n), func(b *testing.B) {
			prog := testutil.NeedTool(b, "/usr/lib/dovecot/pop3", "dovecot-pop3d")
			dovecotCPU = popBench(b, n, false, false, func(home string) *exec.Cmd {
				conf := popBenchDovecotConf(b, home)
				cmd := exec.Command(prog, "-c", conf)
				cmd.Env = []string{"USER=joe", "HOME=" + home, "PATH=/usr/bin:/bin"}
				return cmd
			})
		})
		for _, named := range []bool{false, true} {
			name := "quail"
			if named {
				name = "quail-named"
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				prog := filepath.Join(testutil.Bin(b), "qmail-pop3d")
				cpu := popBench(b, n, named, true, func(home string) *exec.Cmd {
					cmd := exec.Command(prog, "Maildir")
					cmd.Dir = home
					cmd.Env = []string{"USER=joe", "HOME=" + home, "QMAILHOME=" + home}
					cmd.SysProcAttr = &syscall.SysProcAttr{Credential: popAs()}
					return cmd
				})
				if dovecotCPU > 0 {
					b.ReportMetric(cpu/dovecotCPU, "cpu-vs-dovecot")
				}
			})
		}
	}
}

// popBench runs b.N sessions and returns the server's mean CPU time.
// greeting: whether the server greets (Dovecot's pop3 started
// preauthenticated does not).
func popBench(b *testing.B, n int, named, greeting bool, server func(home string) *exec.Cmd) float64 {
	home := b.TempDir()
	for _, d := range []string{filepath.Dir(home), home} {
		os.Chmod(d, 0o755)
	}
	if cred := popAs(); cred != nil {
		os.Chown(home, int(cred.Uid), int(cred.Gid))
	}
	md := filepath.Join(home, "Maildir")
	var cpu time.Duration
	var rss, total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		popBenchFill(b, md, n, named)
		// Pipes, not a socket: Dovecot's pop3 takes a socket on stdin
		// for inetd and refuses it.
		inR, inW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := server(home)
		cmd.Stdin, cmd.Stdout = inR, outW
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b.StartTimer()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		inR.Close()
		outW.Close()
		got, hwm := popBenchClient(b, inW, outR, n, greeting, cmd.Process.Pid)
		total += got
		rss = max(rss, hwm)
		inW.Close()
		outR.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.Bytes())
		}
		b.StopTimer()
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu += time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		b.StartTimer()
	}
	mean := float64(cpu.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(mean, "server-cpu-ms/op")
	b.ReportMetric(float64(rss)/1024, "server-peak-rss-MB")
	b.SetBytes(total / int64(b.N))
	return mean
}

// popBenchClient is poplib's session without its parsing cost. It
// returns the bytes received and the server's peak RSS in KB, read from
// /proc before QUIT (rusage's maxrss would count the test binary the
// child was forked from).
func popBenchClient(b testing.TB, w, rd *os.File, n int, greeting bool, pid int) (int64, int64) {
	w.SetDeadline(time.Now().Add(5 * time.Minute))
	rd.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(rd, 64<<10)
	var got int64
	line := func() []byte {
		l, err := r.ReadSlice('\n')
		if err != nil {
			b.Fatalf("read: %v", err)
		}
		got += int64(len(l))
		return l
	}
	status := func(cmd string) {
		if _, err := w.Write([]byte(cmd)); err != nil {
			b.Fatal(err)
		}
		if l := line(); !bytes.HasPrefix(l, []byte("+OK")) {
			b.Fatalf("%q: %q", cmd, l)
		}
	}
	body := func() int {
		lines := 0
		for {
			l := line()
			if len(l) == 3 && l[0] == '.' {
				return lines
			}
			lines++
		}
	}
	if greeting {
		if l := line(); !bytes.HasPrefix(l, []byte("+OK")) {
			b.Fatalf("greeting %q", l)
		}
	}
	for _, c := range []string{"LIST\r\n", "UIDL\r\n"} {
		status(c)
		if m := body(); m != n {
			b.Fatalf("%s listed %d messages, want %d", c, m, n)
		}
	}
	for i := 1; i <= n; i++ {
		status("RETR " + strconv.Itoa(i) + "\r\n")
		body()
	}
	var hwm int64
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				hwm, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	status("QUIT\r\n")
	return got, hwm
}

// popBenchFill empties md and writes n messages of 4096 bytes into new/,
// as bench_pop3.py does; named gives them quail's ",S=,W=" names.
func popBenchFill(b testing.TB, md string, n int, named bool) {
	popBenchFillSize(b, md, n, 4096, named)
}

// popBenchFillSize is popBenchFill with messages of size bytes.
func popBenchFillSize(b testing.TB, md string, n, size int, named bool) {
	os.RemoveAll(md)
	if err := maildir.Make(md, 0o700); err != nil {
		b.Fatal(err)
	}
	line := strings.Repeat("x", 75) + "\n"
	base := time.Now().Add(-time.Minute)
	cred := popAs()
	for i := range n {
		h := fmt.Sprintf("Return-Path: <sender@example.org>\nDelivered-To: popuser@example.test\n"+
			"From: sender@example.org\nTo: popuser@example.test\nSubject: lab message %d\n"+
			"Message-ID: <%d.lab@example.test>\nDate: Thu, 26 Nov 2026 12:00:00 +0000\n\n", i, i)
		body := strings.Repeat(line, (size-len(h))/76+1)[:size-len(h)-1] + "\n"
		name := fmt.Sprintf("%d.M%dP%d.lab", base.Unix(), i, os.Getpid())
		if named {
			name += fmt.Sprintf(",S=%d,W=%d", size, crlfSize(h+body))
		}
		p := filepath.Join(md, "new", name)
		if err := os.WriteFile(p, []byte(h+body), 0o600); err != nil {
			b.Fatal(err)
		}
		os.Chtimes(p, base, base)
		if cred != nil {
			os.Chown(p, int(cred.Uid), int(cred.Gid))
		}
	}
	if cred != nil {
		for _, d := range []string{"", "new", "cur", "tmp"} {
			os.Chown(filepath.Join(md, d), int(cred.Uid), int(cred.Gid))
		}
	}
}

// TestPOP3MemoryFlat: qmail-pop3d's memory does not grow with the size
// of the messages. Three messages of 16 MB, without sizes in their names
// (so LIST reads them too), are listed and retrieved; the server's peak
// resident size stays far below one message.
func TestPOP3MemoryFlat(t *testing.T) {
	home := t.TempDir()
	for _, d := range []string{filepath.Dir(home), home} {
		os.Chmod(d, 0o755)
	}
	cred := popAs()
	if cred != nil {
		os.Chown(home, int(cred.Uid), int(cred.Gid))
	}
	const n, size = 3, 16 << 20
	popBenchFillSize(t, filepath.Join(home, "Maildir"), n, size, false)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	cmd := exec.Command(filepath.Join(testutil.Bin(t), "qmail-pop3d"), "Maildir")
	cmd.Dir = home
	cmd.Env = []string{"USER=joe", "QMAILHOME=" + home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin, cmd.Stdout = inR, outW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	got, hwm := popBenchClient(t, inW, outR, n, true, cmd.Process.Pid)
	inW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got < n*size {
		t.Errorf("received %d bytes, want at least %d", got, n*size)
	}
	if hwm == 0 || hwm > 12<<10 {
		t.Errorf("qmail-pop3d peaked at %d KB resident over messages of %d MB, want under 12 MB", hwm, size>>20)
	}
	t.Logf("peak resident size %d KB", hwm)
}

func popBenchDovecotConf(b *testing.B, home string) string {
	uid, gid := os.Getuid(), os.Getgid()
	if cred := popAs(); cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	run := b.TempDir()
	conf := filepath.Join(run, "dovecot.conf")
	text := fmt.Sprintf("base_dir = %[1]s\nstate_dir = %[1]s\nlog_path = /dev/stderr\nssl = no\nprotocols =\n"+
		"first_valid_uid = %[2]d\nfirst_valid_gid = %[3]d\nmail_uid = %[2]d\nmail_gid = %[3]d\n"+
		"mail_location = maildir:%[4]s/Maildir:INDEX=MEMORY\npop3_uidl_format = %%f\n", run, uid, gid, home)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	return conf
}
