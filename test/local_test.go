//go:build integration

package test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// localInstance is an instance with the real delivery side in its bin/,
// a virtual domain example.test with the mailbox joe and the alias
// sales (forwarding to joe), run as cred (nil: as root, with privilege
// separation).
func localInstance(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	root := filepath.Join(ownedDir(t, cred), "q")
	for _, p := range []proc{
		{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mx.example.com"}},
		{args: []string{"qmailctl", "domain", "add", "example.test", "--root", root}},
		{args: []string{"qmailctl", "user", "add", "joe@example.test", "--password-stdin", "--root", root}, stdin: "pw\n"},
	} {
		p.as = cred
		if r := run(t, p); r.code != 0 {
			t.Fatalf("%v: %s", p.args, r.stderr)
		}
	}
	alias := filepath.Join(root, "domains", "example.test", ".qmail-sales")
	if err := os.WriteFile(alias, []byte("joe@example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(alias, int(cred.Uid), int(cred.Gid))
	}
	for _, name := range []string{"qmail-start", "qmail-send", "qmail-clean", "qmail-queue", "qmail-lspawn", "qmail-rspawn", "qmail-local", "qmail-remote", "sendmail"} {
		copyFile(t, filepath.Join(testutil.Bin(t), name), filepath.Join(root, "bin", name), cred)
	}
	if cred == nil && os.Geteuid() == 0 {
		// A root install: qmail-queue is setuid qmailq, so the delivery
		// side (qmailv forwarding) can queue.
		q, err := user.Lookup("qmailq")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(q.Uid)
		gid, _ := strconv.Atoi(q.Gid)
		qq := filepath.Join(root, "bin", "qmail-queue")
		os.Chown(qq, uid, gid)
		if err := os.Chmod(qq, 0o711|os.ModeSetuid); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// waitMaildir waits for n messages in a Maildir's new/ and returns them.
func waitMaildir(t *testing.T, dir string, n int, u *unit) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(dir, "new"))
		if len(entries) >= n {
			var out []string
			for _, e := range entries {
				out = append(out, filepath.Join(dir, "new", e.Name()))
			}
			return out
		}
		if time.Now().After(deadline) {
			u.term(t)
			t.Fatalf("%d of %d messages in %s; log:\n%s", len(entries), n, dir, u.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLocalDelivery(t *testing.T, cred *syscall.Credential) {
	root := localInstance(t, cred)
	u := startUnit(t, root, "/dev/null", cred)
	body := "To: joe@example.test\nSubject: local delivery\n\nLine one.\n.\nFrom the end.\n"
	r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-t", "-i", "-f", "web@example.org"},
		env: []string{"QMAILHOME=" + root}, as: cred, stdin: body})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: %d %s", r.code, r.stderr)
	}
	maildir := filepath.Join(root, "domains", "example.test", "joe", "Maildir")
	files := waitMaildir(t, maildir, 1, u)
	got, _ := os.ReadFile(files[0])
	wantPrefix := "Return-Path: <web@example.org>\nDelivered-To: example.test-joe@example.test\nReceived: (qmail "
	if !strings.HasPrefix(string(got), wantPrefix) || !strings.HasSuffix(string(got), "\n\nLine one.\n.\nFrom the end.\n") {
		t.Errorf("delivered message:\n%s\nwant prefix %q and the body intact", got, wantPrefix)
	}
	// The alias forwards through the queue to joe.
	r = runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "sales@example.test"},
		env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: to the alias\n\nhi\n"})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: %d %s", r.code, r.stderr)
	}
	files = waitMaildir(t, maildir, 2, u)
	u.term(t)
	var forwarded string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "Subject: to the alias") {
			forwarded = string(b)
		}
	}
	if !strings.Contains(forwarded, "Delivered-To: example.test-sales@example.test\n") {
		t.Errorf("forwarded message lacks the alias's Delivered-To line:\n%s", forwarded)
	}
	wantUID := uint32(os.Getuid())
	if cred != nil {
		wantUID = cred.Uid
	} else if os.Geteuid() == 0 {
		v, err := user.Lookup("qmailv")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(v.Uid)
		wantUID = uint32(uid)
	}
	var st syscall.Stat_t
	syscall.Stat(files[0], &st)
	if st.Uid != wantUID {
		t.Errorf("message owned by uid %d, want %d: qmail-local must run as the mailbox's owner", st.Uid, wantUID)
	}
	log := u.log.String()
	if !strings.Contains(log, ": success: did_1+0+0/") || !strings.Contains(log, ": success: did_0+1+0/qp_") {
		t.Errorf("qmail-send log lacks the local successes:\n%s", log)
	}
}

func TestLocalDeliveryAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	testLocalDelivery(t, nil)
}

func TestLocalDeliveryAsOrdinaryUser(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	testLocalDelivery(t, cred)
}

// The alias user, a forwarding loop and an unknown mailbox, end to end:
// postmaster's mail lands in ~alias/Maildir; a loop and an unknown
// mailbox fail permanently and their bounces (RFC 3464 reports) reach
// the sender's own mailbox.
func testLocalFailures(t *testing.T, cred *syscall.Credential) {
	root := localInstance(t, cred)
	loop := filepath.Join(root, "domains", "example.test", ".qmail-loop")
	if err := os.WriteFile(loop, []byte("loop@example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		os.Chown(loop, int(cred.Uid), int(cred.Gid))
	}
	u := startUnit(t, root, "/dev/null", cred)
	send := func(from, to, subject string) {
		t.Helper()
		r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", from, to},
			env: []string{"QMAILHOME=" + root}, as: cred, stdin: "Subject: " + subject + "\n\nbody\n"})
		if r.code != 0 {
			u.term(t)
			t.Fatalf("sendmail: %d %s", r.code, r.stderr)
		}
	}
	send("someone@example.org", "postmaster@mx.example.com", "for the postmaster")
	send("joe@example.test", "loop@example.test", "round and round")
	send("joe@example.test", "bob@example.test", "to nobody")
	alias := waitMaildir(t, filepath.Join(root, "alias", "Maildir"), 1, u)
	bounces := waitMaildir(t, filepath.Join(root, "domains", "example.test", "joe", "Maildir"), 2, u)
	u.term(t)
	if b, _ := os.ReadFile(alias[0]); !strings.Contains(string(b), "Delivered-To: postmaster@mx.example.com\n") || !strings.Contains(string(b), "Subject: for the postmaster") {
		t.Errorf("postmaster's mail in ~alias/Maildir:\n%s", b)
	}
	all := ""
	for _, f := range bounces {
		b, _ := os.ReadFile(f)
		all += string(b)
	}
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status",
		"This message is looping: it already has my Delivered-To line. (#5.4.6)",
		"Sorry, no mailbox here by that name. (#5.1.1)",
		"Final-Recipient: rfc822; bob@example.test",
		"Final-Recipient: rfc822; loop@example.test",
		"Subject: round and round",
		"Subject: to nobody",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the bounces lack %q:\n%s", want, all)
		}
	}
}

func TestLocalFailuresAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	testLocalFailures(t, nil)
}

func TestLocalFailuresAsOrdinaryUser(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	testLocalFailures(t, cred)
}

// A system account takes mail for its name as qmail-getpw finds it,
// delivered by a worker running as that account into its home's default
// delivery (./Maildir/). Root only: it makes a system account.
func TestLocalSystemUser(t *testing.T) {
	testutil.NeedRoot(t)
	const name = "quailtest"
	home := filepath.Join(ownedDir(t, nil), name)
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	} else if out, err := exec.Command("usermod", "--home", home, name).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v %s", err, out)
	}
	acct, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	for _, d := range []string{home, home + "/Maildir", home + "/Maildir/new", home + "/Maildir/cur", home + "/Maildir/tmp"} {
		os.Mkdir(d, 0o700)
		os.Chown(d, uid, gid)
	}
	root := localInstance(t, nil)
	u := startUnit(t, root, "/dev/null", nil)
	r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "a@example.org", name + "-ext@mx.example.com"},
		env: []string{"QMAILHOME=" + root}, stdin: "Subject: to a system user\n\nhi\n"})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: %d %s", r.code, r.stderr)
	}
	// quailtest-ext: the account quailtest with extension ext, and no
	// .qmail-ext file: qmail-local bounces it. Then the bare name lands.
	r = runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-f", "a@example.org", name + "@mx.example.com"},
		env: []string{"QMAILHOME=" + root}, stdin: "Subject: to a system user\n\nhi\n"})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: %d %s", r.code, r.stderr)
	}
	files := waitMaildir(t, filepath.Join(home, "Maildir"), 1, u)
	time.Sleep(200 * time.Millisecond)
	u.term(t)
	var st syscall.Stat_t
	syscall.Stat(files[0], &st)
	b, _ := os.ReadFile(files[0])
	if int(st.Uid) != uid || !strings.Contains(string(b), "Delivered-To: "+name+"@mx.example.com\n") {
		t.Errorf("delivered as uid %d (want %d):\n%s", st.Uid, uid, b)
	}
	if len(files) != 1 {
		t.Errorf("%d messages for the system user, want 1 (the -ext one has no .qmail-ext)", len(files))
	}
	if !strings.Contains(u.log.String(), "failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/") {
		t.Errorf("quailtest-ext was not refused:\n%s", u.log)
	}
}
