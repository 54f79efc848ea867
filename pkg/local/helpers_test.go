package local

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/testutil"
)

// The recipient most tests deliver to: joe@example.test, no extension.
const (
	sender = "bob@example.org"
	rpline = "Return-Path: <bob@example.org>\n"
	dtline = "Delivered-To: joe@example.test\n"
)

const sampleMsg = "Subject: hello\nFrom: bob@example.org\n\nFrom the start\n>From quoted\nbody\n"

// newHome makes a home directory (0755) for joe with a Maildir in it.
func newHome(t testing.TB) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "joe")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o755) // whatever the umask
	if err := maildir.Make(filepath.Join(home, "Maildir"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

// request is a delivery to joe@example.test in home, from sender.
func request(home string) Request {
	return Request{
		Root: filepath.Dir(home), User: "joe", Home: home, Local: "joe", Dash: "", Ext: "",
		Domain: "example.test", Sender: sender, DefaultDelivery: "./Maildir/",
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
	}
}

// writeQmail writes a .qmail file in home with mode 0644.
func writeQmail(t testing.TB, home, name, content string) {
	t.Helper()
	writeMode(t, filepath.Join(home, name), content, 0o644)
}

func writeMode(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// message stores content in a file and opens it read-only, as
// qmail-lspawn gives qmail-local the queued message.
func message(t testing.TB, content string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mess")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// run delivers msg for req with the given options and returns the exit
// code and the report.
func runOpt(t testing.TB, ctx context.Context, req Request, msg string, opt options) (int, string) {
	t.Helper()
	var f *os.File
	if !req.DryRun || msg != "" {
		f = message(t, msg)
	}
	var out testutil.SyncBuffer
	code := deliver(ctx, req, f, &out, opt)
	return code, out.String()
}

func run(t testing.TB, req Request, msg string) (int, string) {
	t.Helper()
	return runOpt(t, context.Background(), req, msg, options{lockWait: LockWait})
}

// expect checks a delivery's exit code and report.
func expect(t testing.TB, code int, out string, wantCode int, wantOut string) {
	t.Helper()
	if code != wantCode || out != wantOut {
		t.Errorf("got exit %d, report %q\nwant exit %d, report %q", code, out, wantCode, wantOut)
	}
}

// maildirMessages returns the contents of the messages in dir's new/,
// sorted, and fails if tmp/ holds anything.
func maildirMessages(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%s/tmp holds %d files after delivery", dir, len(tmp))
	}
	slices.Sort(out)
	return out
}

// readFile returns a file's content, "" when it does not exist.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// quoted is the message as an mbox stores it after the From_ line and
// the header lines: >From quoting, a final newline, an empty line.
func quoted(msg string) string {
	if msg == "" {
		return "\n"
	}
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(msg, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
			b.WriteByte('>')
		}
		b.WriteString(line)
	}
	return b.String() + "\n"
}
