package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newMaildir makes an empty Maildir in a fresh temporary directory.
func newMaildir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "Maildir")
	if err := Make(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// names lists the entries of dir/sub.
func names(tb testing.TB, dir, sub string) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func checkEmpty(tb testing.TB, dir, sub string) {
	tb.Helper()
	if n := names(tb, dir, sub); len(n) != 0 {
		tb.Errorf("%s/ holds %q, want nothing", sub, n)
	}
}

var nameRE = regexp.MustCompile(`^([0-9]+)\.M([0-9]{6})P([0-9]+)Q([0-9]+)\.([^,]+),S=([0-9]+)(?:,W=([0-9]+))?$`)

func TestDeliverContent(t *testing.T) {
	dir := newMaildir(t)
	prefix := []byte("Return-Path: <a@b.example>\nDelivered-To: joe@example.test\n")
	// Longer than the copy buffer, with bytes a text transform would touch.
	body := "Subject: x\r\n\nline\x00 with NUL\r\n" + strings.Repeat("0123456789abcdef\n", 5000) + "no final newline"
	before := time.Now()
	w := Writer{Hostname: "mx.example"}
	d, err := w.Deliver(dir, strings.NewReader(body), prefix)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, prefix...), body...)
	got, err := os.ReadFile(filepath.Join(dir, d.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file holds %d bytes, want %d, the prefix and message byte for byte", len(got), len(want))
	}
	if d.Size != int64(len(want)) {
		t.Errorf("Size = %d, want %d", d.Size, len(want))
	}
	if !strings.HasPrefix(d.Name, "new/") {
		t.Errorf("Name = %q, want it in new/", d.Name)
	}
	m := nameRE.FindStringSubmatch(strings.TrimPrefix(d.Name, "new/"))
	if m == nil {
		t.Fatalf("name %q does not match SECONDS.MUSECPpidQn.host,S=size", d.Name)
	}
	// The body has no final newline, so the name has no W=.
	if m[6] != strconv.Itoa(len(want)) || m[7] != "" {
		t.Errorf("name %q: want S=%d and no W=", d.Name, len(want))
	}
	if sec, _ := strconv.ParseInt(m[1], 10, 64); sec < before.Unix() || sec > time.Now().Unix() {
		t.Errorf("seconds %s not the delivery time", m[1])
	}
	if m[3] != strconv.Itoa(os.Getpid()) || m[5] != "mx.example" {
		t.Errorf("pid %s host %s, want %d and mx.example", m[3], m[5], os.Getpid())
	}
	st, err := os.Stat(filepath.Join(dir, d.Name))
	if err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("mode %v, %v: want no access for group and others", st.Mode(), err)
	}
	checkEmpty(t, dir, "tmp")
	checkEmpty(t, dir, "cur")

	// The package-level Deliver, with an empty message.
	d, err = Deliver(dir, strings.NewReader(""), nil)
	if err != nil || d.Size != 0 {
		t.Fatalf("empty message: %+v, %v", d, err)
	}
	if n := names(t, dir, "new"); len(n) != 2 {
		t.Errorf("new/ holds %d files, want 2", len(n))
	}
}

// TestDeliverConcurrent delivers 1000 messages at once from goroutines of
// two Writers whose clock is stopped, so that only the counter keeps the
// names apart.
func TestDeliverConcurrent(t *testing.T) {
	dir := newMaildir(t)
	stopped := time.Unix(1700000000, 123456000)
	writers := []*Writer{
		{Hostname: "h", now: func() time.Time { return stopped }},
		{Hostname: "h", now: func() time.Time { return stopped }},
	}
	const n = 1000
	var wg sync.WaitGroup
	got := make([]Delivery, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			msg := fmt.Sprintf("Subject: %d\n\n%s\n", i, strings.Repeat("x", i))
			got[i], errs[i] = writers[i%2].Deliver(dir, strings.NewReader(msg), []byte("Delivered-To: a@b\n"))
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		if seen[got[i].Name] {
			t.Fatalf("name %s made twice", got[i].Name)
		}
		seen[got[i].Name] = true
		content, err := os.ReadFile(filepath.Join(dir, got[i].Name))
		want := fmt.Sprintf("Delivered-To: a@b\nSubject: %d\n\n%s\n", i, strings.Repeat("x", i))
		if err != nil || string(content) != want {
			t.Fatalf("delivery %d: content %q, %v; want %q", i, content, err, want)
		}
	}
	if files := names(t, dir, "new"); len(files) != n {
		t.Errorf("new/ holds %d files, want %d", len(files), n)
	}
	checkEmpty(t, dir, "tmp")
}

// TestDeliverAcrossProcesses runs four copies of the test binary that
// deliver into one Maildir with the same stopped clock: only the pid keeps
// their names apart (each process counts from 1).
func TestDeliverAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("QUAIL_MAILDIR_CHILD"); dir != "" {
		w := Writer{Hostname: "h", now: func() time.Time { return time.Unix(1700000000, 0) }}
		for i := range 50 {
			if _, err := w.Deliver(dir, strings.NewReader(fmt.Sprintf("%d %d\n", os.Getpid(), i)), nil); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
	}
	dir := newMaildir(t)
	var cmds []*exec.Cmd
	for range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeliverAcrossProcesses$")
		cmd.Env = append(os.Environ(), "QUAIL_MAILDIR_CHILD="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	files := names(t, dir, "new")
	if len(files) != 200 {
		t.Fatalf("new/ holds %d files, want 200", len(files))
	}
	pids := map[string]bool{}
	for _, f := range files {
		m := nameRE.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("bad name %q", f)
		}
		pids[m[3]] = true
		content, _ := os.ReadFile(filepath.Join(dir, "new", f))
		if !strings.HasPrefix(string(content), m[3]+" ") {
			t.Errorf("%s holds %q: written by another process", f, content)
		}
	}
	if len(pids) != 4 {
		t.Errorf("names carry %d pids, want 4", len(pids))
	}
	checkEmpty(t, dir, "tmp")
}

// stepReader returns its data in small pieces, calling at() before each.
type stepReader struct {
	data []byte
	at   func(off int) error
	off  int
}

func (r *stepReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	if err := r.at(r.off); err != nil {
		return 0, err
	}
	n := copy(p[:min(len(p), 100)], r.data[r.off:])
	r.off += n
	return n, nil
}

// TestDeliverOrder checks the steps happen in order: nothing in new/ while
// the message is written or fsynced; link only after the fsync; new/
// synced only after the link, with tmp/ already empty.
func TestDeliverOrder(t *testing.T) {
	dir := newMaildir(t)
	msg := bytes.Repeat([]byte("a line of the message\n"), 50)
	var events []string
	tmpSize := func() int64 {
		n := names(t, dir, "tmp")
		if len(n) != 1 {
			t.Fatalf("tmp/ holds %q, want one file", n)
		}
		st, err := os.Stat(filepath.Join(dir, "tmp", n[0]))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	r := &stepReader{data: msg, at: func(off int) error {
		if off > 0 && len(events) == 0 {
			checkEmpty(t, dir, "new")
			if s := tmpSize(); s != int64(len("P\n")+off) {
				t.Errorf("mid-message: tmp file holds %d bytes, want %d", s, len("P\n")+off)
			}
			events = append(events, "write")
		}
		return nil
	}}
	w := Writer{
		syncFile: func(f *os.File) error {
			checkEmpty(t, dir, "new")
			if s := tmpSize(); s != int64(len("P\n")+len(msg)) {
				t.Errorf("at fsync: tmp file holds %d bytes, want the whole message", s)
			}
			events = append(events, "fsync")
			return f.Sync()
		},
		link: func(oldname, newname string) error {
			events = append(events, "link")
			return os.Link(oldname, newname)
		},
		syncDir: func(d string) error {
			if d != filepath.Join(dir, "new") {
				t.Errorf("synced %s, want new/", d)
			}
			checkEmpty(t, dir, "tmp")
			if n := names(t, dir, "new"); len(n) != 1 {
				t.Errorf("at the sync of new/: new/ holds %q", n)
			}
			events = append(events, "sync new/")
			return nil
		},
	}
	if _, err := w.Deliver(dir, r, []byte("P\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(events, ", "), "write, fsync, link, sync new/"; got != want {
		t.Errorf("steps: %s; want %s", got, want)
	}
}

// TestDeliverFailures makes each step fail in turn: the error says what
// failed, and nothing is left in tmp/ or new/ (except after a failed sync
// of new/, when the message is already there).
func TestDeliverFailures(t *testing.T) {
	errDisk := &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	tests := []struct {
		name    string
		reader  func() io.Reader
		w       Writer
		kind    Kind
		op      string
		inNew   int
		wantErr error
	}{
		{
			name: "reader fails mid-message",
			reader: func() io.Reader {
				return &stepReader{data: make([]byte, 5000), at: func(off int) error {
					if off >= 2000 {
						return syscall.EIO
					}
					return nil
				}}
			},
			kind: KindRead, op: "read", wantErr: syscall.EIO,
		},
		{
			name: "fsync fails",
			w:    Writer{syncFile: func(*os.File) error { return syscall.EIO }},
			kind: KindWrite, op: "fsync", wantErr: syscall.EIO,
		},
		{
			name: "disk full at link",
			w:    Writer{link: func(string, string) error { return errDisk }},
			kind: KindWrite, op: "link", wantErr: syscall.ENOSPC,
		},
		{
			name: "new/ refuses the link",
			w:    Writer{link: func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EACCES} }},
			kind: KindUnwritable, op: "link", wantErr: syscall.EACCES,
		},
		{
			name: "read-only file system",
			w:    Writer{link: func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EROFS} }},
			kind: KindUnwritable, op: "link", wantErr: syscall.EROFS,
		},
		{
			name: "new/ removed before the link",
			w:    Writer{link: func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.ENOENT} }},
			kind: KindMissing, op: "link", wantErr: ErrNotMaildir,
		},
		{
			name: "sync of new/ fails",
			w:    Writer{syncDir: func(string) error { return syscall.EIO }},
			kind: KindWrite, op: "sync", inNew: 1, wantErr: syscall.EIO,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newMaildir(t)
			var r io.Reader = strings.NewReader("Subject: x\n\nbody\n")
			if tt.reader != nil {
				r = tt.reader()
			}
			_, err := tt.w.Deliver(dir, r, []byte("Delivered-To: x@y\n"))
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if de.Kind != tt.kind || de.Op != tt.op || !de.Temporary() || de.Dir != dir {
				t.Errorf("got kind %v op %q dir %q, want %v %q %q", de.Kind, de.Op, de.Dir, tt.kind, tt.op, dir)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "maildir "+dir+": "+tt.op+": ") {
				t.Errorf("message %q lacks its context", err)
			}
			checkEmpty(t, dir, "tmp")
			if n := names(t, dir, "new"); len(n) != tt.inNew {
				t.Errorf("new/ holds %q, want %d files", n, tt.inNew)
			}
		})
	}
}

func TestDeliverMissing(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(dir string)
		notMaildir bool
	}{
		{"no directory", func(dir string) {}, false},
		{"empty directory", func(dir string) { os.Mkdir(dir, 0o700) }, true},
		{"no tmp/", func(dir string) { Make(dir, 0o700); os.Remove(filepath.Join(dir, "tmp")) }, true},
		{"no new/", func(dir string) { Make(dir, 0o700); os.Remove(filepath.Join(dir, "new")) }, true},
		{"new is a file", func(dir string) {
			Make(dir, 0o700)
			os.Remove(filepath.Join(dir, "new"))
			os.WriteFile(filepath.Join(dir, "new"), nil, 0o600)
		}, true},
		{"a file, not a directory", func(dir string) { os.WriteFile(dir, nil, 0o600) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Maildir")
			tt.setup(dir)
			read := false
			_, err := Deliver(dir, readFunc(func([]byte) (int, error) { read = true; return 0, io.EOF }), nil)
			var de *Error
			if !errors.As(err, &de) || de.Kind != KindMissing {
				t.Fatalf("err = %v, want kind missing", err)
			}
			if errors.Is(err, ErrNotMaildir) != tt.notMaildir {
				t.Errorf("err = %v; errors.Is(ErrNotMaildir) should be %v", err, tt.notMaildir)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("err = %v does not name the directory", err)
			}
			if read {
				t.Error("the message was read although the Maildir is missing")
			}
			if st, err := os.Stat(filepath.Join(dir, "new")); err == nil && st.IsDir() {
				checkEmpty(t, dir, "new")
			}
		})
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// TestDeliverNameTaken: when a name is taken in tmp/ or in new/ (another
// host or pid namespace made the same name), a new one is made, and no
// file is replaced.
func TestDeliverNameTaken(t *testing.T) {
	dir := newMaildir(t)
	stopped := time.Unix(1700000000, 0)
	// Foresee the next two names this process makes, and take them: the
	// first in tmp/, the second in new/.
	next := counter.Load()
	name := func(q uint64) string {
		return fmt.Sprintf("1700000000.M000000P%dQ%d.h", os.Getpid(), q)
	}
	os.WriteFile(filepath.Join(dir, "tmp", name(next+1)), []byte("other tmp"), 0o600)
	os.WriteFile(filepath.Join(dir, "new", name(next+2)+",S=4"), []byte("other new"), 0o600)
	w := Writer{Hostname: "h", now: func() time.Time { return stopped }}
	d, err := w.Deliver(dir, strings.NewReader("mine"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "new/" + name(next+3) + ",S=4"; d.Name != want {
		t.Errorf("Name = %s, want %s (the counter moved past the taken names)", d.Name, want)
	}
	for p, want := range map[string]string{
		"tmp/" + name(next+1):          "other tmp",
		"new/" + name(next+2) + ",S=4": "other new",
		d.Name:                         "mine",
	} {
		if got, _ := os.ReadFile(filepath.Join(dir, p)); string(got) != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
	// The tmp file of the second try was linked as the third name, then removed.
	if n := names(t, dir, "tmp"); len(n) != 1 {
		t.Errorf("tmp/ holds %q, want only the other writer's file", n)
	}
}

// TestDeliverWithoutHardLinks: a file system without link(2) gets a rename.
func TestDeliverWithoutHardLinks(t *testing.T) {
	dir := newMaildir(t)
	w := Writer{link: func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM} }}
	d, err := w.Deliver(dir, strings.NewReader("body\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, d.Name)); string(got) != "body\n" {
		t.Errorf("content %q", got)
	}
	checkEmpty(t, dir, "tmp")
}

func TestEscapeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mx.example.com", "mx.example.com"},
		{"", "localhost"},
		{"a/b:c", `a\057b\072c`},
		{"a,S=1", `a\054S=1`},
		{`back\slash`, `back\134slash`},
		{"sp ace\nnl\x7f\xff", `sp\040ace\012nl\177\377`},
	}
	for _, tt := range tests {
		if got := escapeHost(tt.in); got != tt.want {
			t.Errorf("escapeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUniqueName(t *testing.T) {
	next := counter.Load() + 1
	got := uniqueName(time.Unix(1700000000, 42_999), "h")
	if want := fmt.Sprintf("1700000000.M000042P%dQ%d.h", os.Getpid(), next); got != want {
		t.Errorf("uniqueName = %q, want %q", got, want)
	}
	got = uniqueName(time.Unix(5, 999_999_999), "h")
	if !strings.HasPrefix(got, "5.M999999P") {
		t.Errorf("uniqueName = %q, want microseconds 999999", got)
	}
}

func TestMake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	if err := Make(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		st, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !st.IsDir() || st.Mode().Perm()&^0o750 != 0 {
			t.Errorf("%s/: %v, %v", sub, st.Mode(), err)
		}
	}
	// Again, with a subdirectory lost: repaired, the rest kept.
	os.WriteFile(filepath.Join(dir, "new", "m"), []byte("x"), 0o600)
	os.Remove(filepath.Join(dir, "tmp"))
	if err := Make(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new", "m")); err != nil {
		t.Error(err)
	}
	// A file in the way.
	os.Remove(filepath.Join(dir, "cur"))
	os.WriteFile(filepath.Join(dir, "cur"), nil, 0o600)
	if err := Make(dir, 0o700); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Make over a file cur: err = %v", err)
	}
	if err := Make(filepath.Join(t.TempDir(), "no", "parent"), 0o700); err == nil {
		t.Error("Make without the parent directory succeeded")
	}
}
