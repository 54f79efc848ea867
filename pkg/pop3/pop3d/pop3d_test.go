package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/pop3"
)

// scriptConn is a client that sends its script and records what the
// server writes, each Write call apart. With oneLine set it hands the
// server one line per Read, as a client that waits for every response.
type scriptConn struct {
	in      io.Reader
	oneLine bool
	writes  []string
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if !c.oneLine {
		return c.in.Read(p)
	}
	var line []byte
	var b [1]byte
	for len(line) < len(p) {
		n, err := c.in.Read(b[:])
		if n == 0 {
			if len(line) > 0 {
				break
			}
			return 0, err
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
	}
	return copy(p, line), nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}
func (c *scriptConn) out() string                      { return strings.Join(c.writes, "") }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// testMessages are delivered in this order, each a second older than
// the next, so that they are numbered 1, 2, 3.
var testMessages = []string{
	"Subject: one\n\nfirst\n.dot line\n",
	"Subject: two\r\n\r\nsecond, stored with CRLF\r\n",
	"Subject: three\n\nthird\nno final newline",
}

// sent is what RETR sends for each of testMessages, terminator included.
var sent = []string{
	"Subject: one\r\n\r\nfirst\r\n..dot line\r\n.\r\n",
	"Subject: two\r\n\r\nsecond, stored with CRLF\r\n.\r\n",
	"Subject: three\r\n\r\nthird\r\nno final newline\r\n.\r\n",
}

func sizeOf(i int) int { return len(sent[i]) - len(".\r\n") - strings.Count(sent[i], "\r\n..") }

// newDrop makes a Maildir holding testMessages: the first two delivered
// by maildir.Deliver (W= in the name for the first; the second is moved
// to cur/ and flagged seen), the third written by hand without sizes in
// its name. It returns the directory and the UIDLs. The deliveries are
// made once (they fsync) and copied.
func newDrop(t testing.TB) (string, []string) {
	t.Helper()
	tmplOnce.Do(func() { tmplNames, tmplErr = makeTemplate() })
	if tmplErr != nil {
		t.Fatal(tmplErr)
	}
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var uidls []string
	base := time.Now().Add(-time.Hour)
	for i, name := range tmplNames {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(testMessages[i]), 0o600); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(filepath.Join(dir, name), at, at); err != nil {
			t.Fatal(err)
		}
		uidl, _ := maildir.SplitName(filepath.Base(name))
		uidls = append(uidls, uidl)
	}
	return dir, uidls
}

var (
	tmplOnce  sync.Once
	tmplNames []string
	tmplErr   error
)

func makeTemplate() ([]string, error) {
	tmp, err := os.MkdirTemp("", "pop3d-test")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "Maildir")
	if err := maildir.Make(dir, 0o700); err != nil {
		return nil, err
	}
	var names []string
	for i, body := range testMessages {
		name := "new/1700000000.handmade.host"
		if i < 2 {
			d, err := maildir.Deliver(dir, strings.NewReader(body), nil)
			if err != nil {
				return nil, err
			}
			name = d.Name
		}
		if i == 1 {
			m, err := maildir.SetFlags(dir, maildir.Message{Name: name}, "S")
			if err != nil {
				return nil, err
			}
			name = m.Name
		}
		names = append(names, name)
	}
	return names, nil
}

// files lists the Maildir's new/ and cur/ as "sub/name" entries.
func files(t testing.TB, dir string) []string {
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

func serve(t testing.TB, dir, script string) (string, error) {
	t.Helper()
	c := &scriptConn{in: strings.NewReader(script)}
	err := Serve(c, Config{Maildir: dir})
	return c.out(), err
}

func TestSession(t *testing.T) {
	sz := func(i int) string { return fmt.Sprint(sizeOf(i)) }
	total := fmt.Sprint(sizeOf(0) + sizeOf(1) + sizeOf(2))
	cases := []struct {
		name, script, want string
	}{
		{"stat", "STAT\r\n", "+OK 3 " + total + "\r\n"},
		{"list", "LIST\r\n", "+OK \r\n1 " + sz(0) + "\r\n2 " + sz(1) + "\r\n3 " + sz(2) + "\r\n.\r\n"},
		{"list one", "list 2\r\n", "+OK 2 " + sz(1) + "\r\n"},
		{"uidl", "UIDL\r\n", "+OK \r\n1 U1\r\n2 U2\r\n3 U3\r\n.\r\n"},
		{"uidl one", "UIDL 3\r\n", "+OK 3 U3\r\n"},
		{"retr each", "RETR 1\r\nRETR 2\r\nRETR 3\r\n", "+OK \r\n" + sent[0] + "+OK \r\n" + sent[1] + "+OK \r\n" + sent[2]},
		{"top 0", "TOP 1 0\r\n", "+OK \r\nSubject: one\r\n\r\n.\r\n"},
		{"top 1", "TOP 1 1\r\n", "+OK \r\nSubject: one\r\n\r\nfirst\r\n.\r\n"},
		{"top crlf", "TOP 2 0\r\n", "+OK \r\nSubject: two\r\n\r\n.\r\n"},
		{"top without k", "TOP 3\r\n", "+OK \r\n" + sent[2]},
		{"dele", "DELE 2\r\nSTAT\r\nLIST\r\nLIST 2\r\nRETR 2\r\nDELE 2\r\nLAST\r\n",
			"+OK \r\n+OK 2 " + fmt.Sprint(sizeOf(0)+sizeOf(2)) + "\r\n+OK \r\n1 " + sz(0) + "\r\n3 " + sz(2) + "\r\n.\r\n" +
				"-ERR already deleted\r\n-ERR already deleted\r\n-ERR already deleted\r\n+OK 2\r\n"},
		{"rset", "DELE 3\r\nLAST\r\nRSET\r\nLAST\r\nSTAT\r\n", "+OK \r\n+OK 3\r\n+OK \r\n+OK 0\r\n+OK 3 " + total + "\r\n"},
		{"last ignores retr", "RETR 3\r\nLAST\r\n", "+OK \r\n" + sent[2] + "+OK 0\r\n"},
		{"bad numbers", "RETR\r\nRETR x\r\nRETR 0\r\nRETR 4\r\nDELE 99999999999999999999\r\nTOP -1 1\r\n",
			"-ERR syntax error\r\n-ERR syntax error\r\n-ERR messages are counted from 1\r\n-ERR not that many messages\r\n-ERR not that many messages\r\n-ERR syntax error\r\n"},
		{"unimplemented", "USER joe\r\nPASS x\r\nAPOP a b\r\nSTLS\r\nAUTH\r\n\r\n",
			strings.Repeat("-ERR unimplemented\r\n", 6)},
		{"noop", "NOOP\r\nnoop\r\n", "+OK \r\n+OK \r\n"},
		{"capa", "CAPA\r\n", "+OK capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n"},
		{"bare LF lines", "STAT\nNOOP\n", "+OK 3 " + total + "\r\n+OK \r\n"},
		{"long line", strings.Repeat("x", 2000) + "\r\nNOOP\r\n", "-ERR command line too long\r\n+OK \r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, uidls := newDrop(t)
			before := files(t, dir)
			got, err := serve(t, dir, tc.script)
			if err != io.EOF {
				t.Errorf("Serve ended with %v, want EOF", err)
			}
			want := "+OK \r\n" + strings.NewReplacer("U1", uidls[0], "U2", uidls[1], "U3", uidls[2]).Replace(tc.want)
			if got != want {
				t.Errorf("script %q:\n got %q\nwant %q", tc.script, got, want)
			}
			// Without QUIT nothing changes, whatever was deleted.
			if after := files(t, dir); !slices.Equal(after, before) {
				t.Errorf("the Maildir changed without QUIT: %q, was %q", after, before)
			}
		})
	}
}

// TestUIDLsStable: a new/ message keeps its UIDL when QUIT moves it to
// cur/, so a client that leaves mail on the server sees the same UIDLs
// in every session.
func TestUIDLsStable(t *testing.T) {
	dir, uidls := newDrop(t)
	want := "+OK \r\n+OK \r\n1 " + uidls[0] + "\r\n2 " + uidls[1] + "\r\n3 " + uidls[2] + "\r\n.\r\n+OK \r\n"
	for range 3 {
		if got, err := serve(t, dir, "UIDL\r\nQUIT\r\n"); got != want || err != nil {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}

func TestQuitCommits(t *testing.T) {
	dir, uidls := newDrop(t)
	// Something in new/ delivered after the session started is neither
	// listed nor moved. The session goes by the file's mtime, so that is
	// set a minute ahead: written "now", the file could fall in the
	// second before the session's start if the clock ticks in between.
	late := "new/" + fmt.Sprint(time.Now().Unix()) + ".late.host"
	os.WriteFile(filepath.Join(dir, late), []byte("late\n"), 0o600)
	ahead := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, late), ahead, ahead); err != nil {
		t.Fatal(err)
	}

	got, err := serve(t, dir, "STAT\r\nDELE 1\r\nQUIT\r\nNOOP\r\n")
	if err != nil {
		t.Fatal(err)
	}
	// STAT does not see the late message; nothing is read after QUIT.
	if want := fmt.Sprintf("+OK \r\n+OK 3 %d\r\n+OK \r\n+OK \r\n", sizeOf(0)+sizeOf(1)+sizeOf(2)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	want := []string{"cur/" + uidls[1] + ":2,S", "cur/" + uidls[2] + ":2,", late}
	slices.Sort(want)
	if f := files(t, dir); !slices.Equal(f, want) {
		t.Errorf("after QUIT the Maildir holds %q, want %q", f, want)
	}
	// A QUIT with nothing to do answers +OK.
	if got, err := serve(t, dir, "QUIT\r\n"); got != "+OK \r\n+OK \r\n" || err != nil {
		t.Errorf("%q %v", got, err)
	}
}

// TestConcurrentSessions: another session's QUIT moves or deletes
// messages this one numbered. A moved message is found where QUIT put
// it; a deleted one cannot be opened, and deleting it again is no error.
func TestConcurrentSessions(t *testing.T) {
	dir, _ := newDrop(t)
	c := &scriptConn{in: strings.NewReader("")}
	s := &session{cfg: Config{Maildir: dir, Log: io.Discard}}
	var err error
	if s.md, err = openMaildrop(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The other session deletes message 1 and, at its QUIT, moves 3
	// from new/ to cur/.
	if out, err := serve(t, dir, "DELE 1\r\nQUIT\r\n"); err != nil || !strings.HasSuffix(out, "+OK \r\n+OK \r\n") {
		t.Fatalf("%q %v", out, err)
	}
	s.r = pop3.NewReader(strings.NewReader("RETR 3\r\nRETR 1\r\nDELE 1\r\nDELE 3\r\nQUIT\r\n"), 0)
	s.w = bufio.NewWriterSize(c, writeBuffer)
	if err := s.loop(); err != nil {
		t.Fatal(err)
	}
	want := "+OK \r\n" + sent[2] + "-ERR unable to open that message\r\n+OK \r\n+OK \r\n+OK \r\n"
	if got := c.out(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if f := files(t, dir); len(f) != 1 || !strings.HasSuffix(f[0], ":2,S") {
		t.Errorf("Maildir holds %q, want only message 2", f)
	}
}

// TestOneWritePerResponse: a client that waits for each response gets
// each in one write, status line and message together (a status line
// sent alone meets Nagle and the client's delayed ACK); pipelined
// commands get their responses batched.
func TestOneWritePerResponse(t *testing.T) {
	dir, _ := newDrop(t)
	c := &scriptConn{in: strings.NewReader("RETR 1\r\nLIST\r\nRETR 3\r\nQUIT\r\n"), oneLine: true}
	if err := Serve(c, Config{Maildir: dir}); err != nil {
		t.Fatal(err)
	}
	if len(c.writes) != 5 || c.writes[1] != "+OK \r\n"+sent[0] || c.writes[3] != "+OK \r\n"+sent[2] {
		t.Errorf("writes %q, want the greeting and one per response", c.writes)
	}
	dir, _ = newDrop(t)
	c = &scriptConn{in: strings.NewReader("RETR 1\r\nLIST\r\nRETR 3\r\nQUIT\r\n")}
	if err := Serve(c, Config{Maildir: dir}); err != nil {
		t.Fatal(err)
	}
	if len(c.writes) != 2 {
		t.Errorf("pipelined: %d writes %q, want the greeting and one batch", len(c.writes), c.writes)
	}
}

func TestNoMaildir(t *testing.T) {
	for name, dir := range map[string]string{
		"missing":    filepath.Join(t.TempDir(), "nope"),
		"not a dir":  "/dev/null",
		"no new/cur": t.TempDir(),
	} {
		got, err := serve(t, dir, "STAT\r\n")
		if got != "-ERR unable to scan $HOME/Maildir\r\n" || !errors.Is(err, ErrNoMaildir) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

func TestCleansTmp(t *testing.T) {
	dir, _ := newDrop(t)
	old, fresh := filepath.Join(dir, "tmp", "old"), filepath.Join(dir, "tmp", "fresh")
	os.WriteFile(old, nil, 0o600)
	os.WriteFile(fresh, nil, 0o600)
	long := time.Now().Add(-37 * time.Hour)
	os.Chtimes(old, long, long)
	serve(t, dir, "")
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tmp/old (37 h) still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("tmp/fresh removed: %v", err)
	}
}

// TestSizesWithoutReading: sizes of messages with W= in their name come
// from the name. Proved by making the file lie: LIST reports the name's
// size, not the content's.
func TestSizesWithoutReading(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	maildir.Make(dir, 0o700)
	name := "new/1700000000.M1P1Q1.host,S=5,W=12345"
	os.WriteFile(filepath.Join(dir, name), []byte("abcd\n"), 0o600)
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(dir, name), past, past)
	got, _ := serve(t, dir, "LIST\r\nSTAT\r\n")
	if want := "+OK \r\n+OK \r\n1 12345\r\n.\r\n+OK 1 12345\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzSession runs arbitrary input through a session over a fresh
// Maildir: every response line ends in CRLF, and the Maildir changes
// only when the input holds a QUIT.
func FuzzSession(f *testing.F) {
	f.Add([]byte("STAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 1\r\nDELE 3\r\nRSET\r\nQUIT\r\n"))
	f.Add([]byte("DELE 1\nDELE 2\nLAST\nQUIT\n"))
	f.Add([]byte("top 1 99999999999999999999\r\nlist 0\r\n"))
	f.Fuzz(func(t *testing.T, script []byte) {
		dir, _ := newDrop(t)
		before := files(t, dir)
		c := &scriptConn{in: bytes.NewReader(script)}
		err := Serve(c, Config{Maildir: dir})
		out := c.out()
		if !strings.HasSuffix(out, "\r\n") || strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") {
			t.Fatalf("response %q has a line not ended by CRLF", out)
		}
		quit := false
		for _, line := range strings.Split(string(script), "\n") {
			if v, _ := pop3.ParseCommand([]byte(strings.TrimSuffix(line, "\r"))); v == "QUIT" {
				quit = true
			}
		}
		if !quit && !slices.Equal(files(t, dir), before) {
			t.Fatalf("script %q changed the Maildir without QUIT", script)
		}
		if err != nil && err != io.EOF {
			t.Fatalf("script %q: Serve = %v", script, err)
		}
	})
}

// TestQuitReleasesQuota: QUIT tells the quota record what it removed, in
// bytes on disk, and only what it removed.
func TestQuitReleasesQuota(t *testing.T) {
	dir, _ := newDrop(t)
	var gotBytes, gotMessages int64
	calls := 0
	cfg := Config{Maildir: dir, Released: func(b, m int64) error {
		calls++
		gotBytes, gotMessages = b, m
		return nil
	}}
	c := &scriptConn{in: strings.NewReader("DELE 1\r\nDELE 3\r\nQUIT\r\n")}
	if err := Serve(c, cfg); err != nil {
		t.Fatal(err)
	}
	want := int64(len(testMessages[0]) + len(testMessages[2]))
	if calls != 1 || gotBytes != want || gotMessages != 2 {
		t.Errorf("released %d bytes, %d messages in %d calls; want %d, 2 in 1", gotBytes, gotMessages, calls, want)
	}
	// Nothing deleted, nothing released.
	c = &scriptConn{in: strings.NewReader("QUIT\r\n")}
	calls = 0
	Serve(c, cfg)
	if calls != 0 {
		t.Errorf("a QUIT without deletions released %d times", calls)
	}
}

// A message whose size the scan knows is read to that size and no
// further (no read(2) for the end), through the directory descriptors;
// one whose size is unknown, to its end.
func TestOpenRawSized(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.Mkdir(filepath.Join(dir, sub), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "new", "1.a"), []byte("0123456789"), 0o600)
	md, err := openMaildrop(dir, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer md.close()
	for _, tc := range []struct {
		size int64
		want string
	}{{10, "0123456789"}, {-1, "0123456789"}, {4, "0123"}} {
		f, err := md.openRaw("new/1.a", tc.size)
		if err != nil {
			t.Fatal(err)
		}
		// Four bytes at a time: with the size known as 4, the end
		// comes after the first read, from the size, not the file.
		var got []byte
		buf := make([]byte, 4)
		for {
			n, rerr := f.Read(buf)
			got = append(got, buf[:n]...)
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				break
			}
		}
		f.Close()
		if err != nil || string(got) != tc.want {
			t.Errorf("size %d: read %q, %v; want %q", tc.size, got, err, tc.want)
		}
	}
	// Read in one go, a message is cut at the size the listing gave:
	// RETR sends what LIST counted, even if the file grew.
	f, err := md.openRaw("new/1.a", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(f); err != nil || string(got) != "0123" {
		t.Errorf("size 4, one read: %q, %v", got, err)
	}
	f.Close()
	if _, err := md.openRaw("cur/1.a", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cur/1.a: %v, want not found", err)
	}
}
