package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/quota"
)

// hostedHome makes an instance hosting example.test with the mailbox
// joe, as qmailctl lays it out, and returns the root and joe's home.
func hostedHome(t *testing.T) (root, home string) {
	t.Helper()
	root = t.TempDir()
	dd := filepath.Join(root, "domains", "example.test")
	home = filepath.Join(dd, "joe")
	for _, d := range []string{filepath.Join(root, "control"), home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	if err := maildir.Make(filepath.Join(home, "Maildir"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeMode(t, filepath.Join(dd, "passwd"), "joe:joe\n", 0o644)
	return root, home
}

// hostedRequest is a delivery to joe@example.test after qmail-send's
// virtualdomains prefixing, as qmail-lspawn makes it.
func hostedRequest(root, home string) Request {
	r := request(home)
	r.Root, r.Local = root, "example.test-joe"
	return r
}

func setQuota(t *testing.T, root string, limit int64) {
	t.Helper()
	writeMode(t, filepath.Join(root, "control", "quotas"), fmt.Sprintf("example.test:%d\n", limit), 0o644)
}

// TestQuota: a delivery into a hosted mailbox fits the contract's quota
// and is counted, or it is deferred with the mailbox untouched.
func TestQuota(t *testing.T) {
	t.Parallel()
	root, home := hostedHome(t)
	box := filepath.Join(home, "Maildir")
	req := hostedRequest(root, home)
	stored := int64(len(rpline) + len("Delivered-To: example.test-joe@example.test\n") + len(sampleMsg))

	setQuota(t, root, 1<<20)
	code, out := run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")
	if got := len(maildirMessages(t, box)); got != 1 {
		t.Fatalf("%d messages delivered, want 1", got)
	}
	usage, err := quota.Current(root, "example.test")
	if want := (quota.Usage{Bytes: stored, Messages: 1}); err != nil || usage != want {
		t.Fatalf("usage %+v, %v; want %+v", usage, err, want)
	}
	// Counted by an append (the check before made the record: nothing),
	// not by a recount.
	record := readFile(t, filepath.Join(root, "domains", "example.test", quota.Dir, quota.File))
	if !strings.HasSuffix(record, fmt.Sprintf("\n0 0\n%d 1\n", stored)) {
		t.Errorf("record:\n%s", record)
	}

	// One byte short of room for the next: deferred, nothing written.
	setQuota(t, root, 2*stored-1)
	code, out = run(t, req, sampleMsg)
	expect(t, code, out, 111, "Sorry, the mailbox is full. (#4.2.2)\n")
	if got := len(maildirMessages(t, box)); got != 1 {
		t.Errorf("%d messages after the deferral, want 1", got)
	}
	if u, _ := quota.Current(root, "example.test"); u.Messages != 1 || u.Bytes != stored {
		t.Errorf("a deferral changed the usage to %+v", u)
	}

	// Exactly room for it: delivered.
	setQuota(t, root, 2*stored)
	code, out = run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")
	if u, _ := quota.Current(root, "example.test"); u.Messages != 2 || u.Bytes != 2*stored {
		t.Errorf("usage %+v after the second delivery", u)
	}

	// Full: every further delivery is deferred, of any size.
	code, out = run(t, req, "")
	expect(t, code, out, 111, "Sorry, the mailbox is full. (#4.2.2)\n")

	// Without a quota: delivered, and still counted.
	writeMode(t, filepath.Join(root, "control", "quotas"), "", 0o644)
	code, out = run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")
	if u, _ := quota.Current(root, "example.test"); u.Messages != 3 || u.Bytes != 3*stored {
		t.Errorf("usage %+v after a delivery without quota", u)
	}
}

// TestQuotaOnlyMailboxes: Maildirs that are not a hosted mailbox's own
// are neither checked nor counted, however full the contract.
func TestQuotaOnlyMailboxes(t *testing.T) {
	t.Parallel()
	root, home := hostedHome(t)
	setQuota(t, root, 1)
	if err := maildir.Make(filepath.Join(home, "archive"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeQmail(t, home, ".qmail-archive", "./archive/\n")
	req := hostedRequest(root, home)
	req.Local, req.Dash, req.Ext = "example.test-joe-archive", "-", "archive"
	code, out := run(t, req, sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")

	// A system account's Maildir, outside domains/.
	other := newHome(t)
	plain := request(other)
	plain.Root = root
	code, out = run(t, plain, sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")

	if u, err := quota.Current(root, "example.test"); err != nil || u != (quota.Usage{}) {
		t.Errorf("usage %+v, %v; want nothing counted", u, err)
	}
	// While joe's own Maildir is refused.
	code, out = run(t, hostedRequest(root, home), sampleMsg)
	expect(t, code, out, 111, "Sorry, the mailbox is full. (#4.2.2)\n")
}

// TestQuotaBroken: a quota that cannot be read defers, naming the file.
func TestQuotaBroken(t *testing.T) {
	t.Parallel()
	root, home := hostedHome(t)
	writeMode(t, filepath.Join(root, "control", "quotas"), "example.test:20MB\n", 0o644)
	code, out := run(t, hostedRequest(root, home), sampleMsg)
	if code != 111 || !strings.HasPrefix(out, "Unable to check the domain's disk quota: control/quotas:1: ") {
		t.Errorf("exit %d, report %q", code, out)
	}
	if got := len(maildirMessages(t, filepath.Join(home, "Maildir"))); got != 0 {
		t.Errorf("%d messages delivered", got)
	}
}
