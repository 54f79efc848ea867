package local

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/testutil"
)

func TestMaildir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, qmail string
		dir         func(home string) string
	}{
		{"relative", "./Maildir/\n", func(home string) string { return filepath.Join(home, "Maildir") }},
		{"absolute", "ABS/box/\n", func(home string) string { return filepath.Join(home, "box") }},
		{"no .qmail: default delivery", "", func(home string) string { return filepath.Join(home, "Maildir") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			if err := maildir.Make(filepath.Join(home, "box"), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.qmail != "" {
				writeQmail(t, home, ".qmail", strings.ReplaceAll(tc.qmail, "ABS", home))
			}
			code, out := run(t, request(home), sampleMsg)
			expect(t, code, out, 0, "did 1+0+0\n")
			got := maildirMessages(t, tc.dir(home))
			if want := rpline + dtline + sampleMsg; len(got) != 1 || got[0] != want {
				t.Errorf("Maildir holds %q, want [%q]", got, want)
			}
		})
	}
}

// TestMessageOffset: the message is read from byte 0 with ReadAt, whatever
// the file's offset, which stays where it was.
func TestMessageOffset(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Maildir/\n./Mailbox\n|cat > stdin.out\n")
	f := message(t, sampleMsg)
	if _, err := f.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out testutil.SyncBuffer
	code := Deliver(context.Background(), request(home), f, &out)
	expect(t, code, out.String(), 0, "did 2+0+1\n")
	if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 1 || got[0] != rpline+dtline+sampleMsg {
		t.Errorf("Maildir holds %q", got)
	}
	if got := readFile(t, filepath.Join(home, "stdin.out")); got != sampleMsg {
		t.Errorf("program read %q, want %q", got, sampleMsg)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 7 {
		t.Errorf("the message file's offset moved to %d", off)
	}
}

var uflineRE = regexp.MustCompile(`(?m)^From bob@example\.org (Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d\d \d\d:\d\d:\d\d \d{4}\n`)

func TestMbox(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Mailbox\n")
	msg1 := "Subject: one\n\nFrom here\n>From there\n>>From everywhere\nFrom\nFromage\n >From indented\nno final newline"
	msg2 := "Subject: two\n\nsecond\n"
	for _, m := range []string{msg1, msg2} {
		code, out := run(t, request(home), m)
		expect(t, code, out, 0, "did 1+0+0\n")
	}
	got := readFile(t, filepath.Join(home, "Mailbox"))
	entries := uflineRE.Split(got, -1)
	if len(entries) != 3 || entries[0] != "" {
		t.Fatalf("mbox %q does not hold two entries starting with From_ lines", got)
	}
	want1 := rpline + dtline + "Subject: one\n\n>From here\n>>From there\n>>>From everywhere\nFrom\nFromage\n >From indented\nno final newline\n\n"
	if entries[1] != want1 {
		t.Errorf("first entry %q\nwant %q", entries[1], want1)
	}
	if want2 := rpline + dtline + msg2 + "\n"; entries[2] != want2 {
		t.Errorf("second entry %q\nwant %q", entries[2], want2)
	}
	st, err := os.Stat(filepath.Join(home, "Mailbox"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("Mailbox mode %v, %v; want 0600", st.Mode(), err)
	}
}

// TestMboxSender: the From_ line of a bounce, and of a sender with blanks.
func TestMboxSender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sender, from, rp string }{
		{"", "From MAILER-DAEMON ", "Return-Path: <>\n"},
		{"a b\tc@x", "From a-b-c@x ", "Return-Path: <\"a b\tc\"@x>\n"},
	} {
		home := newHome(t)
		writeQmail(t, home, ".qmail", "./Mailbox\n")
		req := request(home)
		req.Sender = tc.sender
		code, out := run(t, req, "x\n")
		expect(t, code, out, 0, "did 1+0+0\n")
		got := readFile(t, filepath.Join(home, "Mailbox"))
		first, rest, _ := strings.Cut(got, "\n")
		if !strings.HasPrefix(first, tc.from) || rest != tc.rp+dtline+"x\n\n" {
			t.Errorf("sender %q: mbox %q", tc.sender, got)
		}
	}
}

func TestQuoteFrom(t *testing.T) {
	t.Parallel()
	long := strings.Repeat(">", 100) + "From " + strings.Repeat("x", 100) + "\n"
	for _, in := range []string{
		"", "\n", "From ", "From", ">", ">>>", "From x", "x\nFrom y\n", ">From \n", "From\tx\n",
		long, strings.Repeat(">", 40), "a\n" + strings.Repeat(">", 33) + "From", "\n\nFrom \n\n",
		strings.Repeat("y", 50) + "From \nFrom " + strings.Repeat("z", 40),
	} {
		if got, want := quoteSmall(t, in), quoted(in); got != want {
			t.Errorf("quoteFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzQuoteFrom compares the streaming quoting, through a 16-byte buffer,
// with the obvious line-by-line one.
func FuzzQuoteFrom(f *testing.F) {
	f.Add("From x\n>From y\nz")
	f.Add(strings.Repeat(">", 20) + "From ")
	f.Fuzz(func(t *testing.T, in string) {
		if got, want := quoteSmall(t, in), quoted(in); got != want {
			t.Errorf("quoteFrom(%q) = %q, want %q", in, got, want)
		}
	})
}

// quoteSmall runs quoteFrom with the smallest buffers bufio allows, so
// that lines and runs of '>' cross buffer boundaries, and adds the empty
// line mbox does.
func quoteSmall(t *testing.T, in string) string {
	var b strings.Builder
	w := newSmallWriter(&b)
	if err := quoteFrom(w, newSmallReader(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	w.WriteByte('\n')
	w.Flush()
	return b.String()
}

func newSmallWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 16) }
func newSmallReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 16) }

func TestMboxOpenError(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Maildir/\n./nosuchdir/Mailbox\n./Maildir/\n")
	code, out := run(t, request(home), sampleMsg)
	expect(t, code, out, 111, "Unable to open ./nosuchdir/Mailbox: no such file or directory. (#4.2.1)\n")
	if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 1 {
		t.Errorf("the Maildir lines before and after the failing one delivered %d messages, want 1", len(got))
	}
}

func TestMboxWriteError(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	home := newHome(t)
	writeQmail(t, home, ".qmail", "/dev/full\n")
	code, out := run(t, request(home), sampleMsg)
	expect(t, code, out, 111, "Unable to write /dev/full: no space left on device. (#4.3.0)\n")
}

// TestMboxLocked: a lock held by someone else defers the delivery after
// the wait, and leaves the file alone; so does a cancelled wait.
func TestMboxLocked(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Mailbox\n")
	box := filepath.Join(home, "Mailbox")
	writeMode(t, box, "old\n", 0o600)
	holder, err := os.OpenFile(box, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	code, out := runOpt(t, context.Background(), request(home), sampleMsg, options{lockWait: 200e6})
	expect(t, code, out, 111, "File has been locked for 30 seconds straight. (#4.3.0)\n")

	ctx, cancel := context.WithTimeout(context.Background(), 200e6)
	defer cancel()
	code, out = runOpt(t, ctx, request(home), sampleMsg, options{lockWait: LockWait})
	expect(t, code, out, 111, "Delivery interrupted: context deadline exceeded. (#4.3.0)\n")
	if got := readFile(t, box); got != "old\n" {
		t.Errorf("mbox changed to %q", got)
	}

	// Released, the next delivery goes through.
	syscall.Flock(int(holder.Fd()), syscall.LOCK_UN)
	code, out = run(t, request(home), sampleMsg)
	expect(t, code, out, 0, "did 1+0+0\n")
}

// failingCtx is a context whose Err turns to Canceled after n calls:
// the delivery then stops in the middle of copying the message, as if
// reading it had failed there.
type failingCtx struct {
	context.Context
	mu chan struct{}
	n  int
}

func newFailingCtx(n int) *failingCtx {
	return &failingCtx{Context: context.Background(), mu: make(chan struct{}, 1), n: n}
}

func (c *failingCtx) Err() error {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestInterruptedCopy: a delivery that stops in the middle of the
// message leaves nothing behind: the mbox is cut back to its old end,
// the Maildir has no file in tmp/ or new/.
func TestInterruptedCopy(t *testing.T) {
	t.Parallel()
	big := "Subject: big\n\n" + strings.Repeat("From a line of a long message\n", 100000) // 3 MB
	for _, qmail := range []string{"./Mailbox\n", "./Maildir/\n"} {
		home := newHome(t)
		writeQmail(t, home, ".qmail", qmail)
		box := filepath.Join(home, "Mailbox")
		writeMode(t, box, "old\n", 0o600)
		code, out := runOpt(t, newFailingCtx(30), request(home), big, options{lockWait: LockWait})
		expect(t, code, out, 111, "Delivery interrupted: context canceled. (#4.3.0)\n")
		if got := readFile(t, box); got != "old\n" {
			t.Errorf("%q: mbox holds %d bytes after the failure, want the old 4", qmail, len(got))
		}
		if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 0 {
			t.Errorf("%q: Maildir holds %d messages", qmail, len(got))
		}
	}
}

func TestMaildirErrors(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	os.Mkdir(filepath.Join(home, "notamaildir"), 0o755)
	for _, tc := range []struct{ line, want string }{
		{"./nosuch/", "Unable to chdir to maildir. (#4.2.1)\n"},
		{"./notamaildir/", "Unable to chdir to maildir. (#4.2.1)\n"},
	} {
		writeQmail(t, home, ".qmail", tc.line+"\n")
		code, out := run(t, request(home), sampleMsg)
		expect(t, code, out, 111, tc.want)
	}
	// A message that cannot be read: a directory in its place.
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	writeQmail(t, home, ".qmail", "./Maildir/\n")
	var out testutil.SyncBuffer
	code := Deliver(context.Background(), request(home), dir, &out)
	expect(t, code, out.String(), 111, "Unable to read message: is a directory. (#4.3.0)\n")
}

func TestHomeChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(home string) string // returns the home to use
		dryRun  bool
		code    int
		report  string // a regular expression
		deliver bool
	}{
		{name: "world-writable", setup: chmod(0o777), code: 111, report: `^Uh-oh: home directory is writable\. \(#4\.7\.0\)\n$`},
		{name: "sticky", setup: chmod(0o755 | os.ModeSticky), code: 111, report: `^Home directory is sticky: user is editing his \.qmail file\. \(#4\.2\.1\)\n$`},
		{name: "sticky -n", setup: chmod(0o755 | os.ModeSticky), dryRun: true, code: 0, report: `^Warning: home directory is sticky\.\nmaildir \./Maildir/\ndid 1\+0\+0\n$`},
		{name: "group-writable is fine", setup: chmod(0o775), code: 0, report: `^did 1\+0\+0\n$`, deliver: true},
		{name: "missing", setup: func(home string) string { return home + "/nosuch" }, code: 111, report: `^Unable to switch to /.*/joe/nosuch: no such file or directory\. \(#4\.3\.0\)\n$`},
		{name: "a file", setup: func(home string) string { return home + "/Maildir/.keep" }, code: 111, report: `^Unable to switch to /.*/\.keep: not a directory\. \(#4\.3\.0\)\n$`},
		{name: "relative", setup: func(string) string { return "joe" }, code: 111, report: `^Internal error: home directory joe is not an absolute path\. \(#4\.3\.0\)\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			os.WriteFile(filepath.Join(home, "Maildir", ".keep"), nil, 0o644)
			req := request(home)
			req.Home = tc.setup(home)
			req.DryRun = tc.dryRun
			code, out := run(t, req, sampleMsg)
			if code != tc.code || !regexp.MustCompile(tc.report).MatchString(out) {
				t.Errorf("exit %d, report %q; want %d, %s", code, out, tc.code, tc.report)
			}
			if got := maildirMessages(t, filepath.Join(home, "Maildir")); (len(got) == 1) != tc.deliver {
				t.Errorf("Maildir holds %d messages, want delivered %v", len(got), tc.deliver)
			}
		})
	}
}

func chmod(mode os.FileMode) func(string) string {
	return func(home string) string {
		if err := os.Chmod(home, mode); err != nil {
			panic(err)
		}
		return home
	}
}

func TestLoop(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	code, out := run(t, request(home), "Received: x\nDelivered-To: joe@example.test\nSubject: y\n\nbody\n")
	expect(t, code, out, 100, "This message is looping: it already has my Delivered-To line. (#5.4.6)\n")
	// Another recipient's line, or this one in the body, is no loop.
	code, out = run(t, request(home), "Delivered-To: jim@example.test\nDelivered-To: joe@example.test.\n\nDelivered-To: joe@example.test\n")
	expect(t, code, out, 0, "did 1+0+0\n")
	// -n does not look.
	req := request(home)
	req.DryRun = true
	code, out = run(t, req, "Delivered-To: joe@example.test\n\n")
	expect(t, code, out, 0, "maildir ./Maildir/\ndid 1+0+0\n")
	if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 1 {
		t.Errorf("Maildir holds %d messages, want 1", len(got))
	}
}

func TestChoice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		files    map[string]string
		dash     string
		ext      string
		dd       string
		code     int
		report   string
		delivers bool
	}{
		{name: "no mailbox", dash: "-", ext: "nosuch", code: 100, report: "Sorry, no mailbox here by that name. (#5.1.1)\n"},
		{name: "default file", files: map[string]string{".qmail-default": "./Maildir/\n"}, dash: "-", ext: "nosuch", report: "did 1+0+0\n", delivers: true},
		{name: "empty .qmail: default delivery", files: map[string]string{".qmail": ""}, report: "did 1+0+0\n", delivers: true},
		{name: "empty .qmail-ext: default delivery", files: map[string]string{".qmail-ext": ""}, dash: "-", ext: "ext", report: "did 1+0+0\n", delivers: true},
		{name: "default delivery mbox", dd: "./Mailbox", report: "did 1+0+0\n"},
		{name: "empty default delivery", dd: "-", code: 111, report: "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n"},
		{name: "comment only", files: map[string]string{".qmail": "# nothing\n"}, report: "did 0+0+0\n"},
		{name: "writable .qmail", files: map[string]string{".qmail": "./Maildir/\n!0666"}, code: 111, report: "Uh-oh: .qmail file is writable. (#4.7.0)\n"},
		{name: "forward-only", files: map[string]string{".qmail": "&a@b\n./Maildir/\n!0744"}, code: 111, report: "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"},
		{name: "forward-only program", files: map[string]string{".qmail": "+list\n|true\n"}, code: 111, report: "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n"},
		{name: "empty forward", files: map[string]string{".qmail": "./Maildir/\n&\n"}, code: 100, report: "Sorry, .qmail file has a forward line without an address. (#5.1.3)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			for name, content := range tc.files {
				mode := os.FileMode(0o644)
				if c, m, ok := strings.Cut(content, "!"); ok {
					content = c
					switch m {
					case "0666":
						mode = 0o666
					case "0744":
						mode = 0o744
					}
				}
				writeMode(t, filepath.Join(home, name), content, mode)
			}
			req := request(home)
			req.Dash, req.Ext, req.Local = tc.dash, tc.ext, "joe"+tc.dash+tc.ext
			if tc.dd == "-" {
				req.DefaultDelivery = ""
			} else if tc.dd != "" {
				req.DefaultDelivery = tc.dd
			}
			code, out := run(t, req, sampleMsg)
			expect(t, code, out, tc.code, tc.report)
			if got := maildirMessages(t, filepath.Join(home, "Maildir")); (len(got) == 1) != tc.delivers {
				t.Errorf("Maildir holds %d messages, want delivered %v", len(got), tc.delivers)
			}
			if tc.dd == "./Mailbox" && !strings.HasSuffix(readFile(t, filepath.Join(home, "Mailbox")), sampleMsg[len(sampleMsg)-5:]+"\n") {
				t.Error("the default delivery ./Mailbox got nothing")
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail-list", "# a list\n./Maildir/\n/var/mail/joe\n|echo hi >> delivered\n&a@example.com\nc@example.com\n+list\n&d@example.com\n")
	req := request(home)
	req.Dash, req.Ext, req.Local, req.DryRun = "-", "list", "joe-list", true
	var out testutil.SyncBuffer
	code := Deliver(context.Background(), req, nil, &out) // -n reads no message
	expect(t, code, out.String(), 0, "maildir ./Maildir/\nmbox /var/mail/joe\nprogram echo hi >> delivered\nforward a@example.com\nforward c@example.com\nforward d@example.com\ndid 2+3+1\n")
	if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 0 {
		t.Errorf("-n delivered %d messages", len(got))
	}
	if _, err := os.Stat(filepath.Join(home, "delivered")); err == nil {
		t.Error("-n ran the program")
	}
}
