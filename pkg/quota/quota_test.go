package quota

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/testutil"
)

func TestLimit(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "# sizes in bytes\nother.test:5\nexample.test:1048576\nzero.test:0\n")
	for _, tc := range []struct {
		domain string
		want   int64
	}{
		{"example.test", 1048576},
		{"Example.TEST", 1048576},
		{"other.test", 5},
		{"zero.test", 0},
		{"none.test", 0},
		{"../../etc", 0},
		{"", 0},
	} {
		got, err := Limit(root, tc.domain)
		if err != nil || got != tc.want {
			t.Errorf("Limit(%q) = %d, %v; want %d", tc.domain, got, err, tc.want)
		}
	}
	writeFile(t, filepath.Join(root, "control", "quotas"), "example.test:20MB\n")
	if _, err := Limit(root, domain); err == nil || !strings.Contains(err.Error(), "control/quotas:1") {
		t.Errorf("a malformed quota gave %v, want an error naming control/quotas:1", err)
	}
	if over, err := Over(root, domain, 1); err == nil || over {
		t.Errorf("Over with a malformed quota = %v, %v; want an error", over, err)
	}
}

// TestCurrentCounts: the first Current counts new/ and cur/ of every
// mailbox in passwd, by ,S= or by stat, and keeps the result.
func TestCurrentCounts(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe", "ann")
	var want Usage
	for i, user := range []string{"joe", "joe", "ann", "joe", "ann"} {
		want.Bytes += deliver(t, root, user, 100*(i+1))
		want.Messages++
	}
	// Written by another program: no sizes in the name.
	writeFile(t, filepath.Join(maildirOf(root, "ann"), "cur", "1700000000.M1P1.other:2,S"), "seventeen bytes!\n")
	want.Bytes += 17
	want.Messages++
	// Not messages: dot files, directories, tmp/, another Maildir.
	writeFile(t, filepath.Join(maildirOf(root, "joe"), "new", ".hidden,S=100"), "x")
	if err := os.Mkdir(filepath.Join(maildirOf(root, "joe"), "cur", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(maildirOf(root, "joe"), "tmp", "1.M1P1.h"), "in flight")
	stray := addMaildir(t, root, "stray") // not in passwd
	if _, err := maildir.Deliver(stray, strings.NewReader("x\n"), nil); err != nil {
		t.Fatal(err)
	}

	if got := mustCurrent(t, root); got != want {
		t.Fatalf("Current = %+v, want %+v", got, want)
	}
	if r := reality(t, root, "joe", "ann"); r != want {
		t.Fatalf("test bug: reality %+v, want %+v", r, want)
	}
	file := filepath.Join(root, "domains", domain, Dir, File)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("record mode %v, want 0644", st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Dir(file)); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("quota directory: %v, %v; want mode 0755", st, err)
	}
	data, _ := os.ReadFile(file)
	lines := strings.Split(string(data), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "recounted ") || lines[1] != fmt.Sprintf("%d %d", want.Bytes, want.Messages) || lines[2] != "" {
		t.Errorf("record:\n%s", data)
	}
	if when, _ := strconv.ParseInt(strings.Fields(lines[0])[1], 10, 64); time.Since(time.Unix(when, 0)).Abs() > time.Minute {
		t.Errorf("record's time %d is not now", when)
	}
}

// TestAddKeepsCount: after a recount, Current sums the record and does
// not look at the Maildirs until the record is due.
func TestAddKeepsCount(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	first := Usage{deliver(t, root, "joe", 300), 1}
	if got := mustCurrent(t, root); got != first {
		t.Fatalf("Current = %+v, want %+v", got, first)
	}
	// Delivered behind the record's back: not seen until a recount.
	unrecorded := deliver(t, root, "joe", 50)
	if err := Add(root, domain, 1000, 1); err != nil {
		t.Fatal(err)
	}
	if err := Add(root, domain, -300, -1); err != nil {
		t.Fatal(err)
	}
	if err := Add(root, domain, 0, 0); err != nil {
		t.Fatal(err)
	}
	want := Usage{first.Bytes + 1000 - 300, 1}
	if got := mustCurrent(t, root); got != want {
		t.Errorf("Current = %+v, want %+v: the record summed, no recount", got, want)
	}
	data, _ := os.ReadFile(filepath.Join(root, "domains", domain, Dir, File))
	if !bytes.HasSuffix(data, []byte(fmt.Sprintf("\n%d 1\n1000 1\n-300 -1\n", first.Bytes))) {
		t.Errorf("record:\n%s", data)
	}
	// Past MaxAge the record is recounted, and sees what is there.
	later := time.Now().Add(MaxAge + time.Minute)
	got, err := current(root, domain, later)
	if want := (Usage{first.Bytes + unrecorded, 2}); err != nil || got != want {
		t.Errorf("after MaxAge: %+v, %v; want %+v", got, err, want)
	}
}

func TestAddWithoutRecord(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	if err := Add(root, domain, 100, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "domains", domain, Dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Add without a record made the quota directory: %v", err)
	}
	if err := Add(root, "missing.test", 100, 1); err != nil {
		t.Errorf("Add for a domain without a directory: %v", err)
	}
	if err := Add(root, "not a domain", 100, 1); err == nil {
		t.Error("Add for an invalid domain: no error")
	}
	// The next check counts the Maildirs, which hold nothing.
	if got := mustCurrent(t, root); got != (Usage{}) {
		t.Errorf("Current = %+v, want zero", got)
	}
}

// TestDue: each reason to recount makes Current look at the Maildirs.
func TestDue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, root, file string)
	}{
		{"grown past MaxRecordSize", func(t *testing.T, root, file string) {
			for i := 0; i < MaxRecordSize/len("1 0\n")+1; i++ {
				if err := Add(root, domain, 1, 0); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"passwd replaced", func(t *testing.T, root, file string) {
			data, _ := os.ReadFile(filepath.Join(root, "domains", domain, "passwd"))
			writeFile(t, filepath.Join(root, "domains", domain, "passwd"), string(data))
		}},
		{"a line it cannot read", func(t *testing.T, root, file string) { appendTo(t, file, "12 x\n") }},
		{"a blank line", func(t *testing.T, root, file string) { appendTo(t, file, "\n") }},
		{"negative total", func(t *testing.T, root, file string) { appendTo(t, file, "-999999999 -1\n") }},
		{"no header", func(t *testing.T, root, file string) { writeFile(t, file, "5 1\n") }},
		{"empty", func(t *testing.T, root, file string) { writeFile(t, file, "") }},
		{"recounted in the future", func(t *testing.T, root, file string) {
			writeFile(t, file, fmt.Sprintf("recounted %d x\n0 0\n", time.Now().Add(time.Hour).Unix()))
		}},
		{"missing", func(t *testing.T, root, file string) { os.Remove(file) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newDomain(t, "", "joe")
			want := Usage{deliver(t, root, "joe", 10), 1}
			mustCurrent(t, root)
			want.Bytes += deliver(t, root, "joe", 20) // unrecorded
			want.Messages++
			file := filepath.Join(root, "domains", domain, Dir, File)
			tc.change(t, root, file)
			if got := mustCurrent(t, root); got != want {
				t.Errorf("Current = %+v, want the recount %+v", got, want)
			}
			if rec, _ := readRecord(t, root); rec.due(time.Now(), rec.stamp) || rec.usage != want {
				t.Errorf("record after the recount: %+v", rec)
			}
		})
	}
}

// TestUnfinishedLine: a last line without its newline (an append in
// progress) is not counted and does not make the record due.
func TestUnfinishedLine(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	want := Usage{deliver(t, root, "joe", 10), 1}
	mustCurrent(t, root)
	deliver(t, root, "joe", 20) // unrecorded: a recount would see it
	appendTo(t, filepath.Join(root, "domains", domain, Dir, File), "123")
	if got := mustCurrent(t, root); got != want {
		t.Errorf("Current = %+v, want %+v", got, want)
	}
}

func appendTo(t *testing.T, file, s string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestRecountMatchesReality: deliveries, reads (new/ to cur/) and
// deletions, each recorded as qmail-local and qmail-pop3d record them,
// leave the record equal to a recount and to the files on disk.
func TestRecountMatchesReality(t *testing.T) {
	t.Parallel()
	users := []string{"joe", "ann", "bob"}
	root := newDomain(t, "example.test:100000000\n", users...)
	mustCurrent(t, root)
	for i := range 60 {
		user := users[i%3]
		if err := Add(root, domain, deliver(t, root, user, 37*i), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range users {
		msgs, err := maildir.Scan(maildirOf(root, user))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			switch i % 3 {
			case 0: // deleted, as qmail-pop3d at QUIT
				if err := os.Remove(filepath.Join(maildirOf(root, user), m.Name)); err != nil {
					t.Fatal(err)
				}
				if err := Add(root, domain, -m.Size, -1); err != nil {
					t.Fatal(err)
				}
			case 1: // read and kept
				if _, err := maildir.MoveToCur(maildirOf(root, user), m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	rec, _ := readRecord(t, root)
	if rec.due(time.Now(), rec.stamp) {
		t.Fatalf("test bug: the record is due (%d bytes); make fewer changes", rec.size)
	}
	real := reality(t, root, users...)
	if got := mustCurrent(t, root); got != real {
		t.Errorf("record sums to %+v, files on disk %+v", got, real)
	}
	b, _ := newBook(root, domain)
	if got, err := b.scan(); err != nil || got != real {
		t.Errorf("recount %+v, %v; files on disk %+v", got, err, real)
	}
	if real.Messages != 39 {
		t.Errorf("test bug: %d messages left, want 39", real.Messages)
	}
}

// TestConcurrentAdds: Adds from many goroutines and processes at once
// all reach the record, whole.
func TestConcurrentAdds(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	mustCurrent(t, root)
	const goroutines, procs, each = 16, 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for range goroutines {
		wg.Go(func() {
			for range each {
				if err := Add(root, domain, 3, 1); err != nil {
					errs <- err
				}
			}
		})
	}
	for range procs {
		wg.Go(func() {
			helper(t, nil, helperEnv+"=add", rootEnv+"="+root, countEnv+"="+strconv.Itoa(each))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rec, _ := readRecord(t, root)
	want := Usage{goroutines*each*3 + procs*each*7, goroutines*each + procs*each}
	if rec.bad || rec.usage != want {
		t.Errorf("record: bad %v, sum %+v; want %+v", rec.bad, rec.usage, want)
	}
}

// TestConcurrentRecounts: deliveries and their Adds while other
// goroutines recount and read: no error, never a torn record, and once
// all is quiet a recount equals the files on disk.
func TestConcurrentRecounts(t *testing.T) {
	t.Parallel()
	users := []string{"joe", "ann"}
	root := newDomain(t, "", users...)
	mustCurrent(t, root)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	stop := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			for j := range 25 {
				user := users[(i+j)%2]
				d, err := maildir.Deliver(maildirOf(root, user), strings.NewReader(strings.Repeat("y\n", i*j)), nil)
				if err == nil {
					err = Add(root, domain, d.Size, 1)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for i := range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Half force a recount (a time past MaxAge), half read.
				now := time.Now()
				if i%2 == 0 {
					now = now.Add(MaxAge + time.Hour)
				}
				if _, err := current(root, domain, now); err != nil {
					errs <- err
					return
				}
				if rec, found := readRecord(t, root); !found || rec.bad {
					errs <- fmt.Errorf("record found %v, torn %v", found, rec.bad)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A change made just before a recount's scan and recorded just
	// after it is counted twice until the next recount: the record may
	// be off here by the deliveries that raced a recount, by design.
	// The next recount is exact.
	if err := os.Remove(filepath.Join(root, "domains", domain, Dir, File)); err != nil {
		t.Fatal(err)
	}
	got := mustCurrent(t, root)
	rec, _ := readRecord(t, root)
	if real := reality(t, root, users...); got != real || rec.usage != real || real.Messages != 200 {
		t.Errorf("final recount %+v, record %+v; on disk %+v (want 200 messages)", got, rec.usage, real)
	}
}

func TestOver(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	used := deliver(t, root, "joe", 500)
	// Without a quota: never over, and no record is made.
	for _, size := range []int64{0, 1, 1 << 40} {
		if over, err := Over(root, domain, size); over || err != nil {
			t.Errorf("no quota: Over(%d) = %v, %v", size, over, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "domains", domain, Dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Over without a quota touched the quota directory: %v", err)
	}
	if over, err := Over(root, "elsewhere.test", 1); over || err != nil {
		t.Errorf("a domain that is not hosted: %v, %v", over, err)
	}
	for _, tc := range []struct {
		name  string
		limit int64
		size  int64
		over  bool
	}{
		{"fits exactly", used + 100, 100, false},
		{"one byte more", used + 100, 101, true},
		{"size 0, room left", used + 1, 0, false},
		{"size 0, full", used, 0, true},
		{"size 0, past it", used - 1, 0, true},
		{"negative size counts as 0", used, -5, true},
		{"far below", used * 10, 1000, false},
	} {
		writeFile(t, filepath.Join(root, "control", "quotas"), fmt.Sprintf("example.test:%d\n", tc.limit))
		over, err := Over(root, "EXAMPLE.test", tc.size)
		if err != nil || over != tc.over {
			t.Errorf("%s: usage %d, limit %d, Over(%d) = %v, %v; want %v", tc.name, used, tc.limit, tc.size, over, err, tc.over)
		}
	}
	// Removals make room again.
	writeFile(t, filepath.Join(root, "control", "quotas"), fmt.Sprintf("example.test:%d\n", used))
	if over, _ := Over(root, domain, 1); !over {
		t.Fatal("not over before the removal")
	}
	if err := Add(root, domain, -used, -1); err != nil {
		t.Fatal(err)
	}
	if over, err := Over(root, domain, used); over || err != nil {
		t.Errorf("after the removal: Over = %v, %v", over, err)
	}
}

// TestReadOnlyChecker: qmail-smtpd's view. It may read the record but
// neither count the Maildirs nor write the quota directory: without a
// record it cannot judge (not over); with one it uses it, even when a
// recount is due.
func TestReadOnlyChecker(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "example.test:100\n", "joe")
	openUp(t, root)
	deliver(t, root, "joe", 500) // far over
	dd := filepath.Join(root, "domains", domain)
	var cred *syscall.Credential
	restrict, release := func(string, os.FileMode) {}, func() {}
	if privsep.Root() {
		// Another account, as qmaild is: the Maildirs (0700) and, once
		// made, the quota directory belong to others.
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
	} else {
		// The same account with the rights taken away.
		var undo []func()
		restrict = func(p string, mode os.FileMode) {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			undo = append(undo, func() { os.Chmod(p, st.Mode().Perm()) })
		}
		release = func() {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			undo = nil
		}
		t.Cleanup(release)
		restrict(filepath.Join(maildirOf(root, "joe"), "new"), 0)
	}
	ask := func() string {
		return helper(t, cred, helperEnv+"=over", rootEnv+"="+root)
	}

	restrict(dd, 0o555)
	if got := ask(); got != "false <nil>" {
		t.Errorf("no record: %q, want not over", got)
	}
	if _, err := os.Stat(filepath.Join(dd, Dir, File)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the checker made a record: %v", err)
	}
	release()

	mustCurrent(t, root) // as the deliverer would
	if !privsep.Root() {
		restrict(filepath.Join(maildirOf(root, "joe"), "new"), 0)
		restrict(filepath.Join(dd, Dir), 0o555)
	}
	if got := ask(); got != "true <nil>" {
		t.Errorf("with a record: %q, want over", got)
	}
	before, _ := os.ReadFile(filepath.Join(dd, Dir, File))
	data, _ := os.ReadFile(filepath.Join(dd, "passwd"))
	if !privsep.Root() {
		restrict(dd, 0o755) // to replace passwd
	}
	writeFile(t, filepath.Join(dd, "passwd"), string(data)) // the record is due
	if got := ask(); got != "true <nil>" {
		t.Errorf("with a record due for a recount: %q, want over", got)
	}
	if after, _ := os.ReadFile(filepath.Join(dd, Dir, File)); !bytes.Equal(before, after) {
		t.Errorf("the checker changed the record:\n%s\nto\n%s", before, after)
	}
}

// TestRootOwnership: a recount by root keeps the quota directory and the
// record the virtual mailboxes' owner's, who delivers and appends.
func TestRootOwnership(t *testing.T) {
	testutil.NeedRoot(t) // as another user everything is the user's own
	t.Parallel()
	root := newDomain(t, "", "joe")
	want, err := privsep.Lookup(privsep.Virtual)
	if err != nil {
		t.Fatal(err)
	}
	mustCurrent(t, root)
	if err := Add(root, domain, 5, 1); err != nil {
		t.Fatal(err)
	}
	mustCurrent(t, root)
	if _, err := current(root, domain, time.Now().Add(2*MaxAge)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{Dir, Dir + "/" + File} {
		st, err := os.Stat(filepath.Join(root, "domains", domain, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != want.UID || int(sys.Gid) != want.GID {
			t.Errorf("%s owned by %d:%d, want %s %d:%d", p, sys.Uid, sys.Gid, privsep.Virtual, want.UID, want.GID)
		}
	}
}

func TestDomainOf(t *testing.T) {
	t.Parallel()
	root := newDomain(t, "", "joe")
	writeFile(t, filepath.Join(root, "domains", domain, "passwd"), "joe:joe\nann:homes/ann\n")
	for _, tc := range []struct {
		dir    string
		domain string
	}{
		{root + "/domains/example.test/joe/Maildir", domain},
		{root + "/domains/example.test/joe/Maildir/", domain},
		{root + "/domains/example.test/joe/./Maildir/", domain},
		{root + "/domains/example.test/bob/../joe/Maildir/", domain},
		{root + "/domains/example.test/homes/ann/Maildir/", domain},
		{root + "//domains/example.test/joe/Maildir", domain},
		{root + "/domains/example.test/ann/Maildir/", ""},     // not ann's DIR
		{root + "/domains/example.test/joe/box/", ""},         // not the mailbox's Maildir
		{root + "/domains/example.test/Maildir/", ""},         // the domain's own
		{root + "/domains/other.test/joe/Maildir/", ""},       // no such domain
		{root + "/domains/EXAMPLE.test/joe/Maildir/", ""},     // not as qmailctl writes it
		{root + "/domains/example.test/../x/joe/Maildir", ""}, // outside
		{"/home/joe/Maildir/", ""},
		{root + "/alias/Maildir/", ""},
	} {
		d, ok, err := DomainOf(root, tc.dir)
		if err != nil || d != tc.domain || ok != (tc.domain != "") {
			t.Errorf("DomainOf(%q) = %q, %v, %v; want %q", tc.dir, d, ok, err, tc.domain)
		}
	}
	writeFile(t, filepath.Join(root, "domains", domain, "passwd"), "joe\n")
	if _, _, err := DomainOf(root, root+"/domains/example.test/joe/Maildir"); err == nil {
		t.Error("a malformed passwd: no error")
	}
}
