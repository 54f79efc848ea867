//go:build integration

package test

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/pkg/testutil"
	"github.com/quail-mta/quail/pkg/timerslack"
	"github.com/quail-mta/quail/queue"
)

// queueRun runs bin/qmail-queue of root with a message and a raw
// envelope, as cred.
func queueRun(t *testing.T, path, root, msg, env string, cred *syscall.Credential) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(env))
	w.Close()
	defer r.Close()
	proc, err := os.StartProcess(path, []string{"qmail-queue"}, &os.ProcAttr{
		Env:   []string{"QMAILHOME=" + root},
		Files: []*os.File{stringFile(t, msg), r, os.Stderr},
		Sys:   &syscall.SysProcAttr{Credential: cred},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := proc.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return st.ExitCode()
}

func stringFile(t *testing.T, s string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in")
	os.WriteFile(p, []byte(s), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestQmailQueueExitCodes(t *testing.T) {
	root := buildInstance(t, nil)
	bin := filepath.Join(testutil.Bin(t), "qmail-queue")
	long := strings.Repeat("a", 1003)
	for _, tc := range []struct {
		name, env string
		root      string
		code      int
	}{
		{"queued", "Fa@b\x00Tc@d\x00\x00", root, 0},
		{"envelope not starting with F", "Tc@d\x00\x00", root, 91},
		{"bad record", "Fa@b\x00Xc@d\x00\x00", root, 91},
		{"address too long", "Fa@b\x00T" + long + "\x00\x00", root, 11},
		{"envelope cut short", "Fa@b\x00Tc@d\x00", root, 54},
		{"no instance", "Fa@b\x00\x00", filepath.Join(root, "missing"), 61},
		{"no queue", "Fa@b\x00\x00", filepath.Join(root, "control"), 62},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := queueRun(t, bin, tc.root, "Subject: x\n\nhi\n", tc.env, nil); got != tc.code {
				t.Errorf("exit %d, want %d", got, tc.code)
			}
		})
	}
	// Only the one good injection is in the queue; the failures left
	// neither todo/ nor mess/ files behind.
	q := queue.New(root)
	c, err := q.Count()
	if err != nil || c.Messages != 1 || c.Todo != 1 {
		t.Errorf("queue holds %+v (%v), want exactly the one queued message", c, err)
	}
}

// Installed setuid qmailq, as in a root install, qmail-queue writes the
// queue as qmailq, names the caller's uid in its Received line and the
// todo record, and ignores QMAILHOME set by an ordinary caller: it serves
// the instance it is installed in.
func TestQmailQueueSetuid(t *testing.T) {
	testutil.NeedRoot(t)
	root := filepath.Join(ownedDir(t, nil), "q")
	if r := run(t, proc{args: []string{"qmailctl", "init", "--root", root, "--hostname", "mx.example.com"}}); r.code != 0 {
		t.Fatal(r.stderr)
	}
	qq := filepath.Join(root, "bin", "qmail-queue")
	copyFile(t, filepath.Join(testutil.Bin(t), "qmail-queue"), qq, nil)
	u, err := user.Lookup("qmailq")
	if err != nil {
		t.Fatal(err)
	}
	quid, _ := strconv.Atoi(u.Uid)
	qgid, _ := strconv.Atoi(u.Gid)
	os.Chown(qq, quid, qgid)
	if err := os.Chmod(qq, 0o711|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	// Run by nobody with QMAILHOME pointing at an instance of the
	// caller's making, it must ignore it and queue into the instance it is
	// installed in.
	other := filepath.Join(ownedDir(t, nobody), "other")
	if r := run(t, proc{args: []string{"qmailctl", "init", "--root", other, "--hostname", "evil.example"}, as: nobody}); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if code := queueRun(t, qq, other, "Subject: x\n\nhi\n", "Fa@b\x00Tc@d\x00\x00", nobody); code != 0 {
		t.Fatalf("setuid qmail-queue run by nobody: exit %d", code)
	}
	if entries, _ := os.ReadDir(filepath.Join(other, "queue", "todo")); len(entries) != 0 {
		t.Fatalf("a setuid qmail-queue run by nobody honoured QMAILHOME and queued into %s", other)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "queue", "todo"))
	if len(entries) != 1 {
		t.Fatalf("%d todo entries", len(entries))
	}
	id, _ := queue.ParseID(entries[0].Name())
	q := queue.New(root)
	var st syscall.Stat_t
	syscall.Stat(q.Mess(id), &st)
	if int(st.Uid) != quid {
		t.Errorf("mess file owned by uid %d, want qmailq (%d)", st.Uid, quid)
	}
	mess, _ := os.ReadFile(q.Mess(id))
	if !regexp.MustCompile(`^Received: \(qmail \d+ invoked by uid 65534\); \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n`).Match(mess) {
		t.Errorf("Received line: %q", strings.SplitN(string(mess), "\n", 2)[0])
	}
	todo, _ := os.ReadFile(q.Todo(id))
	if !strings.HasPrefix(string(todo), "u65534\x00p") {
		t.Errorf("todo record %q does not name the caller's real uid 65534", todo)
	}
}

// The done-when: a message injected with sendmail -t -i is in the
// queue in qmail's format (checked byte for byte in inject_test.go) and
// is picked up by qmail-send, which delivers it through the spawners.
func TestSendmailToQmailSend(t *testing.T) {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = nobody
	}
	root, record := deliveryInstance(t, cred)
	copyFile(t, filepath.Join(testutil.Bin(t), "sendmail"), filepath.Join(root, "bin", "sendmail"), cred)
	u := startUnit(t, root, record, cred)
	r := runPath(t, filepath.Join(root, "bin", "sendmail"), proc{args: []string{"sendmail", "-t", "-i"},
		env: []string{"QMAILHOME=" + root, "USER=www-data"}, as: cred,
		stdin: "To: joe@mx.example.com, far@remote.example\nSubject: from a CGI script\n\nHello.\n"})
	if r.code != 0 {
		u.term(t)
		t.Fatalf("sendmail: exit %d: %s", r.code, r.stderr)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(record)
		if strings.Contains(string(b), " joe@mx.example.com\n") && strings.Contains(string(b), " far@remote.example\n") {
			break
		}
		if time.Now().After(deadline) {
			u.term(t)
			t.Fatalf("not delivered; record %q; log:\n%s", b, u.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u.term(t)
	log := u.log.String()
	for _, want := range []string{"new msg ", " from <www-data@mx.example.com> qp ", " to local joe@mx.example.com\n", " to remote far@remote.example\n", "end msg ", "status: exiting\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("qmail-send log lacks %q:\n%s", want, log)
		}
	}
}

// In a root install every program of the delivery side runs as its own
// account: qmail-send as qmails, qmail-clean as qmailq, qmail-rspawn as
// qmailr, qmail-lspawn as root, all in group qmail.
func TestDeliverySideAccounts(t *testing.T) {
	testutil.NeedRoot(t)
	root, record := deliveryInstance(t, nil)
	// The unit's programs must be able to reach the instance.
	os.Chmod(filepath.Dir(root), 0o755)
	copyFile(t, filepath.Join(testutil.Bin(t), "qmail-lspawn"), filepath.Join(root, "bin", "qmail-lspawn"), nil)
	copyFile(t, filepath.Join(testutil.Bin(t), "qmail-rspawn"), filepath.Join(root, "bin", "qmail-rspawn"), nil)
	u := startUnit(t, root, record, nil)
	defer u.term(t)
	want := map[string]string{"qmail-send": "qmails", "qmail-clean": "qmailq", "qmail-rspawn": "qmailr", "qmail-lspawn": "root"}
	qmailGroup, _ := user.LookupGroup("qmail")
	deadline := time.Now().Add(10 * time.Second)
	seen := map[string]bool{}
	for len(seen) < len(want) && time.Now().Before(deadline) {
		for _, pid := range children(u.cmd.Process.Pid) {
			name, uid, gid := procIdentity(pid)
			account, ok := want[name]
			if !ok {
				continue
			}
			acct, err := user.Lookup(account)
			if err != nil {
				t.Fatal(err)
			}
			if uid != acct.Uid || gid != qmailGroup.Gid {
				t.Errorf("%s runs as uid %s gid %s, want %s (%s) and group qmail (%s)", name, uid, gid, account, acct.Uid, qmailGroup.Gid)
			}
			// qmail-start, started here without it, gives its children
			// quail's timer slack.
			if slack, err := procSlack(pid); err != nil || slack < timerslack.Slack {
				t.Errorf("%s has a timer slack of %d ns (%v), want at least %d", name, slack, err, timerslack.Slack)
			}
			seen[name] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) != len(want) {
		t.Errorf("found only %v among qmail-start's children; log:\n%s", seen, u.log)
	}
}

// TestDeliverySidePipesPoll: the pipes between qmail-send and its helpers
// are waited on in the poller (package pollfd), so an idle daemon holds
// no thread in a read; qmail-send's log, which other programs share,
// stays blocking.
func TestDeliverySidePipesPoll(t *testing.T) {
	root, record := deliveryInstance(t, nil)
	copyFile(t, filepath.Join(testutil.Bin(t), "qmail-lspawn"), filepath.Join(root, "bin", "qmail-lspawn"), nil)
	copyFile(t, filepath.Join(testutil.Bin(t), "qmail-rspawn"), filepath.Join(root, "bin", "qmail-rspawn"), nil)
	u := startUnit(t, root, record, nil)
	defer u.term(t)
	want := map[string][]int{"qmail-send": {1, 2, 3, 4, 5, 6}, "qmail-lspawn": {0, 1}, "qmail-rspawn": {0, 1}, "qmail-clean": {0, 1}}
	// A program is checked until all its descriptors are non-blocking:
	// it sets them once its main runs, a moment after it shows its name.
	blocking := map[string][]int{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, pid := range children(u.cmd.Process.Pid) {
			name, _, _ := procIdentity(pid)
			fds, ok := want[name]
			if !ok {
				continue
			}
			var still []int
			for _, fd := range fds {
				if !nonBlocking(t, pid, fd) {
					still = append(still, fd)
				}
			}
			blocking[name] = still
			if name == "qmail-send" && len(still) == 0 && nonBlocking(t, pid, 0) {
				t.Error("qmail-send made its log (fd 0) non-blocking: programs sharing it would lose lines")
			}
		}
		done := len(blocking) == len(want)
		for _, still := range blocking {
			done = done && len(still) == 0
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	for name := range want {
		if still, ok := blocking[name]; !ok {
			t.Errorf("%s not found among qmail-start's children", name)
		} else if len(still) > 0 {
			t.Errorf("%s: fds %v are blocking", name, still)
		}
	}
	t.Logf("log:\n%s", u.log)
}

// nonBlocking reports whether a process's descriptor has O_NONBLOCK
// (the octal flags line of /proc/PID/fdinfo/FD).
func nonBlocking(t *testing.T, pid, fd int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		t.Fatalf("fd %d of pid %d: %v", fd, pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatalf("fdinfo flags %q: %v", v, err)
			}
			return flags&syscall.O_NONBLOCK != 0
		}
	}
	t.Fatalf("no flags line in fdinfo of fd %d of pid %d", fd, pid)
	return false
}

// children lists the pids whose parent is ppid.
func children(ppid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		rest := s[strings.LastIndexByte(s, ')')+2:]
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// procIdentity is a process's command name and real uid and gid.
func procIdentity(pid int) (name, uid, gid string) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "", "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Name:":
			name = f[1]
		case "Uid:":
			uid = f[1]
		case "Gid:":
			gid = f[1]
		}
	}
	return name, uid, gid
}

// procSlack is a process's timer slack in nanoseconds. Reading another
// process's needs CAP_SYS_NICE.
func procSlack(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "timerslack_ns"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// queueInstance is an instance with qmail-queue installed in its bin/
// (where the injectors run it from) and $QMAILHOME set to it. It returns
// the root and the installed program.
func queueInstance(t *testing.T) (root, installed string) {
	t.Helper()
	root = buildInstance(t, nil)
	installed = filepath.Join(root, "bin", "qmail-queue")
	b, err := os.ReadFile(filepath.Join(testutil.Bin(t), "qmail-queue"))
	if err != nil || os.WriteFile(installed, b, 0o755) != nil {
		t.Fatal("cannot install qmail-queue")
	}
	t.Setenv("QMAILHOME", root)
	return root, installed
}

// qmail-queue serves many messages in one process when its injector
// keeps it (qq.Keeper, as qmail-smtpd does), each queued exactly as a
// single run queues one; a wrapper that execs it in between makes it
// queue one message per process again, so the wrapper runs every time.
func TestQmailQueueServe(t *testing.T) {
	root, installed := queueInstance(t)
	send := func(k *qq.Keeper, rcpt string) (int, error) {
		inj, err := k.Start()
		if err != nil {
			t.Fatal(err)
		}
		inj.Write([]byte("Subject: serve\n\nhi\n"))
		return inj.Pid(), inj.Finish(queue.Envelope{Sender: "a@example.test", Recipients: []string{rcpt}})
	}
	count := func(want int) {
		t.Helper()
		c, err := queue.New(root).Count()
		if err != nil || c.Messages != want || c.Todo != want {
			t.Errorf("queue holds %+v (%v), want %d messages", c, err, want)
		}
	}

	t.Setenv("QMAILQUEUE", "")
	k := qq.NewKeeper(root)
	pids := map[int]bool{}
	for i, rcpt := range []string{"c@example.test", strings.Repeat("a", 1003), "d@example.test"} {
		pid, err := send(k, rcpt)
		pids[pid] = true
		if (i == 1) != (err != nil) {
			t.Errorf("message %d: %v", i, err)
		}
	}
	k.Close()
	if len(pids) != 1 {
		t.Errorf("3 messages took %d qmail-queue processes, want 1", len(pids))
	}
	count(2) // the refused one left nothing behind

	wrapper := filepath.Join(t.TempDir(), "wrapper")
	log := wrapper + ".log"
	os.WriteFile(wrapper, []byte("#!/bin/sh\necho run >> "+log+"\nexec "+installed+"\n"), 0o755)
	t.Setenv("QMAILQUEUE", wrapper)
	k = qq.NewKeeper(root)
	pids = map[int]bool{}
	for i := 0; i < 3; i++ {
		pid, err := send(k, "c@example.test")
		pids[pid] = true
		if err != nil {
			t.Errorf("through the wrapper, message %d: %v", i, err)
		}
	}
	k.Close()
	if b, _ := os.ReadFile(log); len(pids) != 3 || strings.Count(string(b), "run") != 3 {
		t.Errorf("through an exec'ing wrapper: %d processes, wrapper ran %d times; want 3 and 3", len(pids), strings.Count(string(b), "run"))
	}
	count(5)
}

// A kept qmail-queue whose first message fails before it has read it all
// (here: no pid/ directory) lets its injector go, with qmail's reply, as
// a qmail-queue that exits does; it then serves the next message.
func TestQmailQueueServeEarlyFailure(t *testing.T) {
	root, _ := queueInstance(t)
	t.Setenv("QMAILQUEUE", "")
	pid := filepath.Join(root, "queue", "pid")
	if err := os.Rename(pid, pid+".away"); err != nil {
		t.Fatal(err)
	}
	k := qq.NewKeeper(root)
	defer k.Close()
	big := []byte("Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 99)+"\n", 4000)) // 400 KB: more than a pipe holds
	send := func(body []byte) error {
		done := make(chan error, 1)
		go func() {
			inj, err := k.Start()
			if err != nil {
				done <- err
				return
			}
			inj.Write(body)
			done <- inj.Finish(queue.Envelope{Sender: "a@example.test", Recipients: []string{"c@example.test"}})
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("the injector is still blocked after 20 s")
			return nil
		}
	}
	if err := send(big); err == nil || err.Error() != "qq trouble creating files in queue (#4.3.0)" {
		t.Errorf("first message without pid/: %v", err)
	}
	if err := os.Rename(pid+".away", pid); err != nil {
		t.Fatal(err)
	}
	if err := send(big); err != nil {
		t.Errorf("next message: %v", err)
	}
	if c, err := queue.New(root).Count(); err != nil || c.Messages != 1 {
		t.Errorf("queue holds %+v (%v), want the one message", c, err)
	}
}
