package dotqmail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

const home = "home/joe"

// recFS is a MapFS that records the names it is asked to Stat.
type recFS struct {
	fstest.MapFS
	stats *[]string
}

func (r recFS) Stat(name string) (fs.FileInfo, error) {
	*r.stats = append(*r.stats, name)
	return r.MapFS.Stat(name)
}

// errFS fails every Stat of a name ending in bad with err.
type errFS struct {
	fstest.MapFS
	bad string
	err error
}

func (e errFS) Stat(name string) (fs.FileInfo, error) {
	if strings.HasSuffix(name, e.bad) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: e.err}
	}
	return e.MapFS.Stat(name)
}

// homeFS is a MapFS with home as an ordinary directory and the given
// .qmail files (mode 0644, content "&x\n") in it.
func homeFS(names ...string) fstest.MapFS {
	m := fstest.MapFS{home: {Mode: fs.ModeDir | 0o755}}
	for _, n := range names {
		m[home+"/"+n] = &fstest.MapFile{Data: []byte("&x\n"), Mode: 0o644}
	}
	return m
}

func TestSearchOrder(t *testing.T) {
	t.Parallel()
	// qmail-local's comment lists these sequences; reference §5.5.
	tests := []struct {
		dash, ext string
		want      []string
	}{
		{"-", "a-b-c", []string{".qmail-a-b-c", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-b-", []string{".qmail-a-b-", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-b", []string{".qmail-a-b", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-", []string{".qmail-a-", ".qmail-a-default", ".qmail-default"}},
		{"-", "a", []string{".qmail-a", ".qmail-default"}},
		{"-", "", []string{".qmail-", ".qmail-default"}},
		{"", "", []string{".qmail", ".qmaildefault"}},
		{"-", "Foo.Bar-X", []string{".qmail-foo:bar-x", ".qmail-foo:bar-default", ".qmail-default"}},
	}
	for _, tt := range tests {
		t.Run(tt.dash+"|"+tt.ext, func(t *testing.T) {
			t.Parallel()
			var stats []string
			_, err := Search(recFS{homeFS(), &stats}, home, tt.dash, tt.ext)
			if tt.dash != "" && !errors.Is(err, ErrNoMailbox) {
				t.Fatalf("err = %v, want ErrNoMailbox", err)
			}
			var want []string
			for _, n := range tt.want {
				want = append(want, home+"/"+n)
			}
			if !slices.Equal(stats, want) {
				t.Errorf("tried %q\nwant %q", stats, want)
			}
		})
	}
}

func TestSearchChoice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		files      []string
		dash, ext  string
		want       string // chosen file; "" for the default delivery
		wantDef    string
		hasDefault bool
	}{
		{"exact", []string{".qmail-a-b-c", ".qmail-default"}, "-", "a-b-c", ".qmail-a-b-c", "", false},
		{"longest default", []string{".qmail-a-b-default", ".qmail-a-default", ".qmail-default"}, "-", "a-b-c", ".qmail-a-b-default", "c", true},
		{"middle default", []string{".qmail-a-default", ".qmail-default"}, "-", "a-b-c", ".qmail-a-default", "b-c", true},
		{"bare default", []string{".qmail-default"}, "-", "a-b-c", ".qmail-default", "a-b-c", true},
		{"case folded", []string{".qmail-foo"}, "-", "FoO", ".qmail-foo", "", false},
		{"A to Z folded", []string{".qmail-az@[`{"}, "-", "AZ@[`{", ".qmail-az@[`{", "", false},
		{"dot to colon", []string{".qmail-foo:bar"}, "-", "foo.bar", ".qmail-foo:bar", "", false},
		{"dot never matches dot", []string{".qmail-foo.bar", ".qmail-default"}, "-", "foo.bar", ".qmail-default", "foo.bar", true},
		{"DEFAULT keeps case and dots", []string{".qmail-list-default"}, "-", "List-Joe.Smith", ".qmail-list-default", "Joe.Smith", true},
		{"non-ASCII not folded", []string{".qmail-É"}, "-", "É", ".qmail-É", "", false},
		{"exact name ending in default", []string{".qmail-xdefault"}, "-", "xDEFAULT", ".qmail-xdefault", "DEFAULT", true},
		{"trailing dash", []string{".qmail-a-default"}, "-", "a-", ".qmail-a-default", "", true},
		{"empty ext", []string{".qmail-default"}, "-", "", ".qmail-default", "", true},
		{"no dash, own file", []string{".qmail"}, "", "", ".qmail", "", false},
		{"no dash, nothing", nil, "", "", "", "", false},
		{"subdirectory", []string{".qmail-a/b"}, "-", "a/b", ".qmail-a/b", "", false},
		{"many dashes", []string{".qmail-default"}, "-", strings.Repeat("-", 2000), ".qmail-default", strings.Repeat("-", 2000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Find(homeFS(tt.files...), home, tt.dash, tt.ext)
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != tt.want || c.Default != tt.wantDef || c.HasDefault != tt.hasDefault {
				t.Errorf("got %q DEFAULT=%q (%v), want %q DEFAULT=%q (%v)", c.Name, c.Default, c.HasDefault, tt.want, tt.wantDef, tt.hasDefault)
			}
			if tt.want != "" && string(c.Content) != "&x\n" {
				t.Errorf("content %q", c.Content)
			}
		})
	}
}

func TestSearchSkipsNonRegular(t *testing.T) {
	t.Parallel()
	m := homeFS(".qmail-default")
	m[home+"/.qmail-a"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	c, err := Find(m, home, "-", "a")
	if err != nil || c.Name != ".qmail-default" {
		t.Fatalf("got %q, %v; want .qmail-default", c.Name, err)
	}
}

func TestFindErrors(t *testing.T) {
	t.Parallel()
	withFile := func(mode fs.FileMode, data string) fstest.MapFS {
		m := homeFS()
		m[home+"/.qmail-a"] = &fstest.MapFile{Data: []byte(data), Mode: mode}
		return m
	}
	withHome := func(mode fs.FileMode) fstest.MapFS {
		m := homeFS(".qmail-a")
		m[home].Mode = mode
		return m
	}
	tests := []struct {
		name string
		fsys FS
		dash string
		want string
		perm bool
	}{
		{"no mailbox", homeFS(".qmail-b"), "-", "Sorry, no mailbox here by that name. (#5.1.1)", true},
		{"writable file", withFile(0o646, "&x\n"), "-", "Uh-oh: .qmail file is writable. (#4.7.0)", false},
		{"writable home", withHome(fs.ModeDir | 0o757), "-", "Uh-oh: home directory is writable. (#4.7.0)", false},
		{"sticky home", withHome(fs.ModeDir | fs.ModeSticky | 0o755), "-", "Home directory is sticky: user is editing his .qmail file. (#4.2.1)", false},
		{"no home", fstest.MapFS{}, "-", "Unable to stat home directory: file does not exist. (#4.3.0)", false},
		{"too large", withFile(0o644, strings.Repeat("x", MaxSize+1)), "-", ErrTooLarge.Error(), false},
		{"stat error", errFS{homeFS(".qmail-default"), ".qmail-a", syscall.EIO}, "-", "Unable to open .qmail-a: input/output error. (#4.3.0)", false},
		{"permission", errFS{homeFS(".qmail-default"), ".qmail-a", syscall.EACCES}, "-", "Unable to open .qmail-a: permission denied. (#4.3.0)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Find(tt.fsys, home, tt.dash, "a")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if e.Error() != tt.want {
				t.Errorf("text %q\nwant %q", e.Error(), tt.want)
			}
			wantCode := 111
			if tt.perm {
				wantCode = 100
			}
			if e.Temporary() == tt.perm || e.ExitCode() != wantCode {
				t.Errorf("Temporary() = %v, ExitCode() = %d; want permanent=%v", e.Temporary(), e.ExitCode(), tt.perm)
			}
		})
	}
}

func TestSearchAbsentErrors(t *testing.T) {
	t.Parallel()
	// Errors that mean "no such file" move on to the next candidate.
	for _, errno := range []error{syscall.ENOTDIR, syscall.ENAMETOOLONG, syscall.ELOOP, fs.ErrInvalid} {
		c, err := Find(errFS{homeFS(".qmail-default"), ".qmail-a", errno}, home, "-", "a")
		if err != nil || c.Name != ".qmail-default" {
			t.Errorf("%v: got %q, %v; want .qmail-default", errno, c.Name, err)
		}
	}
}

func TestEmptyFileMeansDefault(t *testing.T) {
	t.Parallel()
	m := homeFS()
	m[home+"/.qmail-a"] = &fstest.MapFile{Mode: 0o744} // x bit too: ignored for the default
	c, err := Find(m, home, "-", "a")
	if err != nil || c.Name != ".qmail-a" {
		t.Fatalf("got %q, %v", c.Name, err)
	}
	ins, err := c.Instructions("./Maildir/")
	if err != nil || !slices.Equal(ins, []Instruction{{Maildir, "./Maildir/"}}) {
		t.Fatalf("Instructions = %v, %v; want the default delivery", ins, err)
	}
	// No file, no dash: the default delivery too.
	c, err = Find(homeFS(), home, "", "")
	if err != nil || c.Name != "" {
		t.Fatalf("got %q, %v", c.Name, err)
	}
	if ins, err = c.Instructions("./Mailbox"); err != nil || !slices.Equal(ins, []Instruction{{Mbox, "./Mailbox"}}) {
		t.Fatalf("Instructions = %v, %v", ins, err)
	}
}

func TestChoiceForwardOnly(t *testing.T) {
	t.Parallel()
	m := homeFS()
	m[home+"/.qmail-a"] = &fstest.MapFile{Data: []byte("./Maildir/\n"), Mode: 0o744}
	c, err := Find(m, home, "-", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instructions("./Mailbox"); !errors.Is(err, ErrFileForwardOnly) {
		t.Fatalf("err = %v, want ErrFileForwardOnly", err)
	}
}

// TestOSFS runs the search on a real directory: modes, a FIFO (which must
// not hang the search), symbolic links, and a name too long for the
// system.
func TestOSFS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(".qmail-default", "./Maildir/\n", 0o644)
	write(".qmail-w", "&x\n", 0o666)
	write(".qmail-target", "&target\n", 0o600)
	if err := syscall.Mkfifo(filepath.Join(dir, ".qmail-fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".qmail-target", filepath.Join(dir, ".qmail-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".qmail-loop", filepath.Join(dir, ".qmail-loop")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ext, want, wantErr string
	}{
		{"fifo", ".qmail-default", ""},
		{"link", ".qmail-link", ""},
		{"loop", ".qmail-default", ""},
		{strings.Repeat("x", 300), ".qmail-default", ""},
		{"w", "", "Uh-oh: .qmail file is writable. (#4.7.0)"},
		{"nodir/x", ".qmail-default", ""},
		{"default/x", ".qmail-default", ""}, // .qmail-default is not a directory: ENOTDIR
	}
	for _, tt := range tests {
		c, err := Find(OSFS{}, dir, "-", tt.ext)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%.20s: err = %v, want %q", tt.ext, err, tt.wantErr)
			}
			continue
		}
		if err != nil || c.Name != tt.want {
			t.Errorf("%.20s: got %q, %v; want %q", tt.ext, c.Name, err, tt.want)
		}
	}
	c, err := Find(OSFS{}, dir, "-", "link")
	if err != nil || string(c.Content) != "&target\n" || c.Mode.Perm() != 0o600 {
		t.Errorf("through the link: %q mode %v, %v", c.Content, c.Mode, err)
	}

	for _, mode := range []os.FileMode{0o777, 0o755 | os.ModeSticky} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Find(OSFS{}, dir, "-", "a")
		want := ErrHomeWritable
		if mode&os.ModeSticky != 0 {
			want = ErrHomeSticky
		}
		if !errors.Is(err, want) {
			t.Errorf("home mode %v: err = %v, want %v", mode, err, want)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestNewSender(t *testing.T) {
	t.Parallel()
	owner := homeFS(".qmail-list-owner")
	verp := homeFS(".qmail-list-owner", ".qmail-list-owner-default")
	ownerDir := homeFS()
	ownerDir[home+"/.qmail-list-owner"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	tests := []struct {
		name   string
		fsys   FS
		sender string
		ext    string
		want   string
	}{
		{"no owner file", homeFS(".qmail-list"), "bob@example.org", "list", "bob@example.org"},
		{"owner file", owner, "bob@example.org", "list", "joe-list-owner@example.com"},
		{"owner is any type", ownerDir, "bob@example.org", "list", "joe-list-owner@example.com"},
		{"owner and owner-default: VERP", verp, "bob@example.org", "list", "joe-list-owner-@example.com-@[]"},
		{"only owner-default", homeFS(".qmail-list-owner-default"), "bob@example.org", "list", "bob@example.org"},
		{"empty sender kept", verp, "", "list", ""},
		{"double bounce sender kept", verp, "#@[]", "list", "#@[]"},
		{"ext folded for the file, local kept", owner, "bob@example.org", "LiSt", "joe-LiSt-owner@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := Args{Home: home, Local: "joe-" + tt.ext, Dash: "-", Ext: tt.ext, Host: "example.com", Sender: tt.sender}
			got, err := NewSender(tt.fsys, a)
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	a := Args{Home: home, Local: "joe-list", Dash: "-", Ext: "list", Host: "example.com", Sender: "bob@example.org"}
	_, err := NewSender(errFS{owner, "-owner", syscall.EIO}, a)
	if err == nil || err.Error() != "Unable to open .qmail-list-owner: input/output error. (#4.3.0)" {
		t.Errorf("stat error: %v", err)
	}
}

// swapFS answers Stat for name as if it were a regular file, but opens
// what the MapFS has: a file swapped between the two calls.
type swapFS struct {
	fstest.MapFS
	name string
}

func (s swapFS) Stat(name string) (fs.FileInfo, error) {
	if strings.HasSuffix(name, s.name) {
		return s.MapFS.Stat(home + "/.qmail-default")
	}
	return s.MapFS.Stat(name)
}

func TestSearchDecidesOnTheOpenedFile(t *testing.T) {
	t.Parallel()
	m := homeFS(".qmail-default")
	m[home+"/.qmail-a"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	c, err := Find(swapFS{m, ".qmail-a"}, home, "-", "a")
	if err != nil || c.Name != ".qmail-default" {
		t.Fatalf("got %q, %v; want .qmail-default", c.Name, err)
	}
	m[home+"/.qmail-a"] = &fstest.MapFile{Mode: 0o666}
	if _, err := Find(swapFS{m, ".qmail-a"}, home, "-", "a"); !errors.Is(err, ErrWritable) {
		t.Fatalf("err = %v, want ErrWritable", err)
	}
}

func TestOSFSOpenFIFODoesNotBlock(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := OSFS{}.Open(p)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO blocked") // the goroutine stays stuck; the test binary ends anyway
	}
}
