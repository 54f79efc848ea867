package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quail-mta/quail/pkg/testutil"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func poolNames(t *testing.T, dir string) (spares, cooling []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), sparePrefix):
			spares = append(spares, e.Name())
		case strings.HasPrefix(e.Name(), coolPrefix):
			cooling = append(cooling, e.Name())
		}
	}
	return spares, cooling
}

func TestSparesReuseInode(t *testing.T) {
	dir := t.TempDir()
	pool := filepath.Join(dir, "pool")
	os.Mkdir(pool, 0o700)
	s := NewSpares(pool)
	done := filepath.Join(dir, "done")
	if err := os.WriteFile(done, []byte("a finished message"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, done)
	if err := s.Retire(done); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(done); !os.IsNotExist(err) {
		t.Fatalf("retired file still at its name: %v", err)
	}
	// Until Flush, the file cools: its old name's removal may not be on
	// disk yet, so nobody may take it.
	if f, _, ok := s.Take(filepath.Join(dir, "early")); ok {
		f.Close()
		t.Fatal("took a file still cooling")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if spares, cooling := poolNames(t, pool); len(spares) != 1 || len(cooling) != 0 {
		t.Fatalf("after Flush: spares %v, cooling %v", spares, cooling)
	}
	target := filepath.Join(dir, "new")
	f, got, ok := s.Take(target)
	if !ok {
		t.Fatal("no spare taken")
	}
	defer f.Close()
	if got != ino || inode(t, target) != ino {
		t.Errorf("took inode %d (at target %d), want the retired %d", got, inode(t, target), ino)
	}
	// The spare kept its blocks and the old bytes in them; Fit cuts
	// what the new content does not cover.
	if _, err := f.WriteString("next"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "nextnished message" {
		t.Errorf("taken file holds %q before Fit, want the new bytes over the old", b)
	}
	if err := Fit(f, 4); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "next" {
		t.Errorf("taken file holds %q, want only what was written to it", b)
	}
	if f2, _, ok := s.Take(filepath.Join(dir, "again")); ok {
		f2.Close()
		t.Error("took a spare from an empty pool")
	}
}

func TestSparesRetireOtherNames(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	intd, todo := filepath.Join(dir, "intd"), filepath.Join(dir, "todo")
	os.WriteFile(intd, []byte("Fsender\x00"), 0o644)
	if err := os.Link(intd, todo); err != nil {
		t.Fatal(err)
	}
	if err := s.Retire(intd, todo); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{intd, todo} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	s.Flush()
	f, _, ok := s.Take(filepath.Join(dir, "taken"))
	if !ok {
		t.Fatal("the retired file did not become a spare")
	}
	f.Close()
	if err := s.Retire(filepath.Join(dir, "never-was")); err != nil {
		t.Errorf("retiring a file already gone: %v, want nil", err)
	}
}

// A crash can bring back a spare's name in the pool after it became a
// message file: both names then count, and Take must leave it alone.
func TestSparesTakeLeavesSharedInode(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	message := filepath.Join(dir, "message")
	os.WriteFile(message, []byte("queued and acknowledged"), 0o644)
	if err := os.Link(message, filepath.Join(dir, sparePrefix+"1")); err != nil {
		t.Fatal(err)
	}
	if f, _, ok := s.Take(filepath.Join(dir, "target")); ok {
		f.Close()
		t.Fatal("took a spare that has another name")
	}
	if b, _ := os.ReadFile(message); string(b) != "queued and acknowledged" {
		t.Errorf("the message now holds %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); !os.IsNotExist(err) {
		t.Error("the refused spare's new name was left behind")
	}
}

func TestSparesTakeTargetExists(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	os.WriteFile(filepath.Join(dir, sparePrefix+"1"), nil, 0o644)
	target := filepath.Join(dir, "intd")
	os.WriteFile(target, []byte("stale"), 0o644)
	if f, _, ok := s.Take(target); ok {
		f.Close()
		t.Fatal("took a spare onto an existing name")
	}
	if b, _ := os.ReadFile(target); string(b) != "stale" {
		t.Errorf("existing target now holds %q", b)
	}
	if spares, _ := poolNames(t, dir); len(spares) != 1 {
		t.Errorf("spares %v, want the one still there", spares)
	}
}

func TestSparesClear(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, coolPrefix+"7"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, sparePrefix+"8"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "123.456.1"), nil, 0o644)
	if err := NewSpares(dir).Clear(); err != nil {
		t.Fatal(err)
	}
	spares, cooling := poolNames(t, dir)
	if len(cooling) != 0 || len(spares) != 1 {
		t.Errorf("after Clear: spares %v, cooling %v; want the spare only", spares, cooling)
	}
	if _, err := os.Stat(filepath.Join(dir, "123.456.1")); err != nil {
		t.Error("Clear removed a name not its own")
	}
}

// Messages queued, finished and cleaned through the pool keep their ids
// apart and reuse the finished ones' inodes.
func TestWriterTakesSpares(t *testing.T) {
	q := Queue{Dir: filepath.Join(t.TempDir(), "queue")}
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	enqueue := func(message string, env Envelope) uint64 {
		w, err := q.Create()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(message))
		if err := w.Commit(Todo(1, 2, env)); err != nil {
			t.Fatal(err)
		}
		return w.ID()
	}
	long := Envelope{Sender: "a-long-sender@example.org", Recipients: []string{"c@d", "e@f"}}
	first := enqueue("Subject: the first\n\na longer body\n", long)
	intdIno := inode(t, q.Intd(first))
	s := q.QueueSpares()
	if err := s.Retire(q.Intd(first), q.Todo(first)); err != nil {
		t.Fatal(err)
	}
	if err := s.Retire(q.Mess(first)); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	// The second message and envelope are shorter: nothing of the
	// first's may show past them.
	short := Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
	second := enqueue("Subject: x\n\nbody\n", short)
	reused := map[uint64]bool{first: true, intdIno: true}
	if !reused[second] || !reused[inode(t, q.Intd(second))] || second == inode(t, q.Intd(second)) {
		t.Errorf("second message: id %d, intd inode %d; want the first's inodes %d and %d", second, inode(t, q.Intd(second)), first, intdIno)
	}
	if b, _ := os.ReadFile(q.Mess(second)); string(b) != "Subject: x\n\nbody\n" {
		t.Errorf("mess/ of the second message holds %q", b)
	}
	if b, _ := os.ReadFile(q.Todo(second)); string(b) != string(Todo(1, 2, short)) {
		t.Errorf("todo/ of the second message holds %q, want %q", b, Todo(1, 2, short))
	}
}

// A .qmail program may keep its message open after its delivery: the
// file must not be emptied and reused under it.
func TestSparesLeaveOpenFiles(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("user A's message"), 0o644)
	held, err := os.Open(done)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	s.Retire(done)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if spares, cooling := poolNames(t, dir); len(spares) != 0 || len(cooling) != 0 {
		t.Errorf("a file open elsewhere was kept: spares %v, cooling %v", spares, cooling)
	}
	b := make([]byte, 64)
	n, _ := held.ReadAt(b, 0)
	if string(b[:n]) != "user A's message" {
		t.Errorf("the open file now reads %q", b[:n])
	}
}

// The sweeps for files of crashed injections go by access and
// modification times: a taken spare must look new.
func TestSparesTakeMakesTimesNew(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	spare := filepath.Join(dir, sparePrefix+"1")
	os.WriteFile(spare, nil, 0o644)
	old := time.Now().Add(-72 * time.Hour)
	os.Chtimes(spare, old, old)
	target := filepath.Join(dir, "target")
	f, _, ok := s.Take(target)
	if !ok {
		t.Fatal("no spare taken")
	}
	f.Close()
	var st syscall.Stat_t
	syscall.Stat(target, &st)
	for name, ts := range map[string]syscall.Timespec{"access": st.Atim, "modification": st.Mtim} {
		if age := time.Since(time.Unix(ts.Sec, ts.Nsec)); age > time.Hour {
			t.Errorf("%s time %v old after Take", name, age.Round(time.Hour))
		}
	}
}

// A target whose directory is missing is the caller's error to report,
// not a reason to try spare after spare.
func TestSparesTakeTargetDirMissing(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	os.WriteFile(filepath.Join(dir, sparePrefix+"1"), nil, 0o644)
	took := make(chan bool, 1)
	go func() {
		f, _, ok := s.Take(filepath.Join(dir, "missing", "target"))
		if ok {
			f.Close()
		}
		took <- ok
	}()
	select {
	case ok := <-took:
		if ok {
			t.Error("took a spare into a missing directory")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Take still trying after 5 s")
	}
	if spares, _ := poolNames(t, dir); len(spares) != 1 {
		t.Errorf("spares %v, want the one left in place", spares)
	}
}

// Without its pool directory a finished file is still removed, as
// before the pools.
func TestSparesRetireWithoutPool(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(filepath.Join(dir, "no-pool"))
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("x"), 0o644)
	if err := s.Retire(done); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(done); !os.IsNotExist(err) {
		t.Errorf("finished file still there: %v", err)
	}
}

// Create takes a spare when the pool has one and makes a new file when
// it has none; either way it reports the inode, and an existing path is
// fs.ErrExist.
func TestSparesCreate(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	first := filepath.Join(dir, "first")
	f, ino, err := s.Create(first, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := inode(t, first); ino != got {
		t.Errorf("new file: Create says inode %d, the file has %d", ino, got)
	}
	if _, _, err := s.Create(first, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file: %v, want fs.ErrExist", err)
	}
	if err := s.Retire(first); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	second := filepath.Join(dir, "second")
	f, got, err := s.Create(second, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got != ino || inode(t, second) != ino {
		t.Errorf("with a spare in the pool: inode %d (file %d), want the retired %d", got, inode(t, second), ino)
	}
}

// sparePool makes a pool directory, dir/pool, holding n empty spares.
func sparePool(t *testing.T, n int) (dir, pool string) {
	t.Helper()
	dir = t.TempDir()
	pool = filepath.Join(dir, "pool")
	if err := os.Mkdir(pool, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(pool, fmt.Sprintf("%s%d", sparePrefix, i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, pool
}

// Concurrent takers (a qmail-queue per qmail-smtpd) read the pool in the
// same order, so one finds the names it read taken by another that got
// ahead. It must go on to spares further on, not give up and allocate
// an inode (which, with the retirement of the surplus, is the cost the
// pool exists to avoid).
func TestSparesTakeBehindAnotherTaker(t *testing.T) {
	const n = 1000 // about eight getdents chunks
	dir, pool := sparePool(t, n)
	behind, ahead := NewSpares(pool), NewSpares(pool)
	take := func(s *Spares, name string) bool {
		f, _, ok := s.Take(filepath.Join(dir, name))
		if ok {
			f.Close()
		}
		return ok
	}
	if !take(behind, "first") {
		t.Fatal("no spare taken from a full pool")
	}
	// The other taker empties the chunks the first has read.
	for i := range 300 {
		if !take(ahead, fmt.Sprintf("ahead%d", i)) {
			t.Fatalf("take %d from a pool of %d: no spare", i, n)
		}
	}
	if !take(behind, "second") {
		spares, _ := poolNames(t, pool)
		t.Fatalf("a taker behind another found no spare among %d", len(spares))
	}
}

// A count that finds the pool near or past its bound cuts it down well
// below, rather than leaving it where every Flush would have to count all
// its names again; the file being retired is still kept.
func TestSparesTrimFullPool(t *testing.T) {
	for _, n := range []int{lowSpares + 500, MaxSpares + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir, pool := sparePool(t, n)
			s := NewSpares(pool) // a new pool's bound is MaxSpares: it counts first
			done := filepath.Join(dir, "done")
			if err := os.WriteFile(done, []byte("a finished message"), 0o600); err != nil {
				t.Fatal(err)
			}
			ino := inode(t, done)
			if err := s.Retire(done); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			spares, cooling := poolNames(t, pool)
			if len(spares) != lowSpares+1 || len(cooling) != 0 {
				t.Fatalf("pool of %d spares after a Flush: %d spares, %d cooling; want %d, 0",
					n, len(spares), len(cooling), lowSpares+1)
			}
			if s.known != len(spares) {
				t.Errorf("bound after the Flush: %d, the pool holds %d", s.known, len(spares))
			}
			kept := false
			for _, name := range spares {
				kept = kept || inode(t, filepath.Join(pool, name)) == ino
			}
			if !kept {
				t.Error("the file just retired was removed, not kept")
			}
		})
	}
}

// The sweeps judge a file by its later time, access or modification.
func TestLastUsed(t *testing.T) {
	early, late := time.Unix(1_000_000_000, 0), time.Unix(1_000_000_100, 0)
	for _, tc := range []struct{ atime, mtime time.Time }{{early, late}, {late, early}} {
		st := syscall.Stat_t{
			Atim: syscall.Timespec{Sec: tc.atime.Unix()},
			Mtim: syscall.Timespec{Sec: tc.mtime.Unix()},
		}
		if got := LastUsed(&st); !got.Equal(late) {
			t.Errorf("atime %v, mtime %v: LastUsed %v, want %v", tc.atime, tc.mtime, got, late)
		}
	}
}

// A spare keeps the blocks of a small file and is emptied when the file
// was bigger than KeepBytes.
func TestSparesKeepSmallFiles(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	os.WriteFile(small, []byte("a small message"), 0o644)
	os.WriteFile(big, make([]byte, KeepBytes+1), 0o644)
	smallIno, bigIno := inode(t, small), inode(t, big)
	s.Retire(small)
	s.Retire(big)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	sizes := spareSizes(t, dir)
	if len(sizes) != 2 || sizes[smallIno] != int64(len("a small message")) || sizes[bigIno] != 0 {
		t.Errorf("spares' sizes by inode %v, want %d: 15 and %d: 0", sizes, smallIno, bigIno)
	}
}

// spareSizes maps the inode of each spare in dir to its size.
func spareSizes(t *testing.T, dir string) map[uint64]int64 {
	t.Helper()
	spares, _ := poolNames(t, dir)
	sizes := map[uint64]int64{}
	for _, name := range spares {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, name), &st); err != nil {
			if err == syscall.ENOENT {
				continue // renamed meanwhile by a running flusher
			}
			t.Fatal(err)
		}
		sizes[st.Ino] = st.Size
	}
	return sizes
}

// EmptyIdle empties the spares that have been spares since before a
// time, keeps them spares, and leaves newer ones their bytes. Idleness
// goes by the change time: the old file's modification time, here an
// hour ahead as qmail-send sets a job file's, does not count.
func TestSparesEmptyIdle(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	spare := func(name, content string) uint64 {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
		ino := inode(t, p)
		s.Retire(p)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		return ino
	}
	oldIno := spare("old", "an old message")
	time.Sleep(50 * time.Millisecond) // past the kernel's coarse clock
	then := time.Now()
	time.Sleep(50 * time.Millisecond)
	recentIno := spare("recent", "a recent message")
	if err := s.EmptyIdle(then); err != nil {
		t.Fatal(err)
	}
	sizes := spareSizes(t, dir)
	if len(sizes) != 2 || sizes[oldIno] != 0 || sizes[recentIno] != int64(len("a recent message")) {
		t.Errorf("spares' sizes by inode %v, want %d: 0 and %d: 16", sizes, oldIno, recentIno)
	}
	if _, cooling := poolNames(t, dir); len(cooling) != 0 {
		t.Errorf("files left cooling: %v", cooling)
	}
}

// An idle spare that is open elsewhere is removed, not emptied under its
// reader.
func TestSparesEmptyIdleLeavesOpenFiles(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("user A's message"), 0o644)
	s.Retire(done)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	spares, _ := poolNames(t, dir)
	if len(spares) != 1 {
		t.Fatalf("spares %v", spares)
	}
	held, err := os.Open(filepath.Join(dir, spares[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := s.EmptyIdle(time.Now()); err != nil {
		t.Fatal(err)
	}
	if spares, cooling := poolNames(t, dir); len(spares) != 0 || len(cooling) != 0 {
		t.Errorf("a file open elsewhere was kept: spares %v, cooling %v", spares, cooling)
	}
	b := make([]byte, 64)
	if n, _ := held.ReadAt(b, 0); string(b[:n]) != "user A's message" {
		t.Errorf("the open file now reads %q", b[:n])
	}
}

// A spare is closed to others and gets its pool's group, whatever mode
// and group the finished file had.
func TestSparesClosedToOthers(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("a message"), 0o644)
	if err := os.Chmod(done, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	ino := inode(t, done)
	s.Retire(done)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var pool syscall.Stat_t
	if err := syscall.Stat(dir, &pool); err != nil {
		t.Fatal(err)
	}
	spares, _ := poolNames(t, dir)
	if len(spares) != 1 {
		t.Fatalf("spares %v", spares)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dir, spares[0]), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != ino || st.Mode&0o7777 != 0o640 || st.Gid != pool.Gid {
		t.Errorf("spare: inode %d mode %o group %d, want inode %d mode 640 group %d", st.Ino, st.Mode&0o7777, st.Gid, ino, pool.Gid)
	}
}

// A .qmail program can keep its message through an O_PATH descriptor,
// which no lease sees, and open it again through /proc/self/fd once the
// inode holds another message. Once the file is a spare, that open must
// fail for anyone outside the queue's accounts. As root: the program
// runs as nobody.
func TestSparesRefuseReopenThroughOPath(t *testing.T) {
	testutil.NeedRoot(t)
	dir := t.TempDir()
	s := NewSpares(dir)
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("user A's message"), 0o644)
	os.Chmod(done, 0o644)
	reopen := func(fd *os.File) error {
		cmd := exec.Command("/bin/cat", "/proc/self/fd/3")
		cmd.ExtraFiles = []*os.File{fd}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	opath, err := unix.Open(done, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	held := os.NewFile(uintptr(opath), done)
	defer held.Close()
	if err := reopen(held); err != nil {
		t.Fatalf("nobody cannot open the message it was given: %v", err)
	}
	s.Retire(done)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if spares, _ := poolNames(t, dir); len(spares) != 1 {
		t.Fatalf("the file did not become a spare: %v", spares)
	}
	if err := reopen(held); err == nil {
		t.Error("nobody opened a spare again through its O_PATH descriptor")
	}
}

// The flusher FlushAfter starts also empties idle spares, on its own.
func TestFlushAfterEmptiesIdle(t *testing.T) {
	emptyEvery, emptyAge = 10*time.Millisecond, 0
	defer func() { emptyEvery, emptyAge = IdleAge/2, IdleAge }()
	dir := t.TempDir()
	s := NewSpares(dir)
	errs := make(chan error, 1)
	s.FlushAfter(0, func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("a finished message"), 0o600)
	ino := inode(t, done)
	if err := s.Retire(done); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sizes := spareSizes(t, dir)
		if size, ok := sizes[ino]; ok && size == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retired file was not made an empty spare: spares by inode %v", sizes)
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// An open that comes while the file is being made a spare waits for the
// lease and breaks it: the file must not become a spare, or the opener
// would read the next message through it.
func TestSparesOpenDuringReclaim(t *testing.T) {
	dir := t.TempDir()
	s := NewSpares(dir)
	done := filepath.Join(dir, "done")
	os.WriteFile(done, []byte("user A's message"), 0o600)
	opened := make(chan *os.File, 1)
	s.whileLeased = func(p string) {
		go func() {
			f, _ := os.Open(p) // waits until the lease is gone
			opened <- f
		}()
		time.Sleep(100 * time.Millisecond) // the open now waits on the lease
	}
	s.Retire(done)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if f := <-opened; f != nil {
		f.Close()
	}
	if spares, cooling := poolNames(t, dir); len(spares) != 0 || len(cooling) != 0 {
		t.Errorf("a file opened during its reclaim was kept: spares %v, cooling %v", spares, cooling)
	}
}
