package ratelimit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// t0 falls on a minute, so buckets of a 1h window (1m each) start on it.
var t0 = time.Unix(1_800_000_000, 0)

func newRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func count(t testing.TB, root, domain string, d Direction, lim Limits, n int, at time.Time) {
	t.Helper()
	if err := Count(root, domain, d, lim, n, at); err != nil {
		t.Fatalf("Count(%s, %v, %d, %v): %v", domain, d, n, at.Sub(t0), err)
	}
}

// expect checks Blocked at each offset from t0.
func expect(t testing.TB, root, domain string, d Direction, lim Limits, want bool, offsets ...time.Duration) {
	t.Helper()
	for _, off := range offsets {
		got, err := Blocked(root, domain, d, lim, t0.Add(off))
		if err != nil {
			t.Fatalf("Blocked(%s, %v) at t0%+v: %v", domain, d, off, err)
		}
		if got != want {
			t.Errorf("Blocked(%s, %v) at t0%+v = %v, want %v", domain, d, off, got, want)
		}
	}
}

// stored is the count in the state file as of at, or -1 with no file.
func stored(t testing.TB, root, domain string, d Direction, window time.Duration, at time.Time) int {
	t.Helper()
	p, err := path(root, domain, d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	st, ok := decode(b)
	if !ok {
		t.Fatalf("%s: %d bytes, not a state", p, len(b))
	}
	st.advance(window, at.UnixNano())
	return int(st.sum())
}

func TestNoLimitTouchesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "absent") // no instance at all
	for _, lim := range []Limits{
		{},
		{Receive: 5, Window: time.Hour}, // no Send limit
		{Send: 5},                       // no window: no limit
	} {
		if blocked, err := Blocked(root, "example.com", Send, lim, t0); blocked || err != nil {
			t.Errorf("%+v: Blocked = %v, %v; want false, nil", lim, blocked, err)
		}
		if err := Count(root, "example.com", Send, lim, 1, t0); err != nil {
			t.Errorf("%+v: Count = %v", lim, err)
		}
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was created: %v", root, err)
	}
}

func TestMissingIsNoHistory(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 1, Window: time.Hour}
	expect(t, root, "example.com", Send, lim, false, 0)
	count(t, root, "example.com", Send, lim, 1, t0)
	fi, err := os.Stat(filepath.Join(root, Dir))
	if err != nil || fi.Mode().Perm() != DirPerm {
		t.Fatalf("%s: %v, %v; want mode %o", Dir, fi, err, DirPerm)
	}
	fi, err = os.Stat(filepath.Join(root, Dir, "example.com.send"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != stateLen {
		t.Fatalf("state file: %v, %v; want mode 600, %d bytes", fi, err, stateLen)
	}
	expect(t, root, "example.com", Send, lim, true, 0)
	// The directory, though empty, tells nothing either.
	os.Remove(filepath.Join(root, Dir, "example.com.send"))
	expect(t, root, "example.com", Send, lim, false, 0)
}

func TestMissingRunIsAnError(t *testing.T) {
	root := t.TempDir() // no run/
	lim := Limits{Send: 1, Window: time.Hour}
	if err := Count(root, "example.com", Send, lim, 1, t0); err == nil {
		t.Error("Count without run/ succeeded; want an error")
	}
	expect(t, root, "example.com", Send, lim, false, 0)
}

func TestWindowSlides(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 3, Window: time.Hour} // 1-minute buckets
	count(t, root, "example.com", Send, lim, 1, t0)
	count(t, root, "example.com", Send, lim, 1, t0.Add(10*time.Minute))
	expect(t, root, "example.com", Send, lim, false, 10*time.Minute)
	count(t, root, "example.com", Send, lim, 1, t0.Add(20*time.Minute+30*time.Second))
	// Three in the window: the third was accepted, a fourth is not.
	expect(t, root, "example.com", Send, lim, true, 20*time.Minute+30*time.Second, 59*time.Minute+59*time.Second)
	// The first leaves the window an hour after its bucket began.
	expect(t, root, "example.com", Send, lim, false, time.Hour, 70*time.Minute-time.Nanosecond)
	count(t, root, "example.com", Send, lim, 1, t0.Add(time.Hour))
	expect(t, root, "example.com", Send, lim, true, time.Hour, 70*time.Minute-time.Nanosecond)
	expect(t, root, "example.com", Send, lim, false, 70*time.Minute)
	if got := stored(t, root, "example.com", Send, lim.Window, t0.Add(time.Hour)); got != 3 {
		t.Errorf("count at t0+1h = %d, want 3", got)
	}
	// Long after, all is forgotten and the file is back to empty.
	count(t, root, "example.com", Send, lim, 1, t0.Add(48*time.Hour))
	if got := stored(t, root, "example.com", Send, lim.Window, t0.Add(48*time.Hour)); got != 1 {
		t.Errorf("count at t0+48h = %d, want 1", got)
	}
}

func TestCountMany(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Receive: 10, Window: time.Hour, Block: time.Hour}
	count(t, root, "example.com", Receive, lim, 9, t0)
	expect(t, root, "example.com", Receive, lim, false, 0)
	count(t, root, "example.com", Receive, lim, 0, t0) // no-op
	expect(t, root, "example.com", Receive, lim, false, 0)
	if err := Count(root, "example.com", Receive, lim, -1, t0); err == nil {
		t.Error("Count of -1 succeeded")
	}
	count(t, root, "example.com", Receive, lim, 5, t0)
	expect(t, root, "example.com", Receive, lim, true, 0, time.Hour-time.Nanosecond)
	expect(t, root, "example.com", Receive, lim, false, time.Hour)
}

func TestBlock(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Window: 10 * time.Minute, Block: 30 * time.Minute}
	count(t, root, "example.com", Send, lim, 1, t0)
	expect(t, root, "example.com", Send, lim, false, time.Minute)
	count(t, root, "example.com", Send, lim, 1, t0.Add(time.Minute)) // reaches the limit: block from t0+1m
	// The window forgets both by t0+11m; the block holds to t0+31m.
	expect(t, root, "example.com", Send, lim, true, time.Minute, 11*time.Minute, 31*time.Minute-time.Nanosecond)
	// A message counted during the block (a race) does not lengthen it.
	count(t, root, "example.com", Send, lim, 1, t0.Add(20*time.Minute))
	expect(t, root, "example.com", Send, lim, false, 31*time.Minute)
	// The block cleans itself: the next update drops it from the file.
	count(t, root, "example.com", Send, lim, 1, t0.Add(45*time.Minute))
	st := readState(t, root, "example.com", Send)
	if st.blockFrom != 0 || st.blockUntil != 0 {
		t.Errorf("after the block: block %d..%d still stored", st.blockFrom, st.blockUntil)
	}
	expect(t, root, "example.com", Send, lim, false, 45*time.Minute)
}

func TestBlockShorterThanWindow(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Window: time.Hour, Block: time.Minute}
	count(t, root, "example.com", Send, lim, 2, t0)
	// Refused while the window holds the limit, block or not.
	expect(t, root, "example.com", Send, lim, true, 0, 2*time.Minute, 59*time.Minute)
	expect(t, root, "example.com", Send, lim, false, time.Hour)
	// Without a block time only the window counts.
	lim0 := Limits{Send: 2, Window: time.Hour}
	count(t, root, "zero.example", Send, lim0, 2, t0)
	if st := readState(t, root, "zero.example", Send); st.blockUntil != 0 {
		t.Errorf("block time 0 started a block until %d", st.blockUntil)
	}
	expect(t, root, "zero.example", Send, lim0, true, 59*time.Minute)
	expect(t, root, "zero.example", Send, lim0, false, time.Hour)
}

func TestBlockCappedAndChanged(t *testing.T) {
	root := newRoot(t)
	long := Limits{Send: 1, Window: time.Minute, Block: 5 * time.Hour}
	count(t, root, "example.com", Send, long, 1, t0)
	expect(t, root, "example.com", Send, long, true, MaxBlock-time.Nanosecond)
	expect(t, root, "example.com", Send, long, false, MaxBlock)

	// Lowering the block time shortens a running block.
	lim := Limits{Send: 1, Window: time.Minute, Block: time.Hour}
	count(t, root, "short.example", Send, lim, 1, t0)
	shorter := lim
	shorter.Block = 10 * time.Minute
	expect(t, root, "short.example", Send, shorter, true, 10*time.Minute-time.Nanosecond)
	expect(t, root, "short.example", Send, shorter, false, 10*time.Minute)
	expect(t, root, "short.example", Send, lim, true, 10*time.Minute) // and putting it back restores it

	// Raising the limit lifts the block; lowering it keeps it.
	raised := lim
	raised.Send = 5
	expect(t, root, "short.example", Send, raised, false, 5*time.Minute)
	lowered := Limits{Send: 1, Receive: 1, Window: time.Minute, Block: time.Hour}
	count(t, root, "low.example", Receive, Limits{Receive: 3, Window: time.Minute, Block: time.Hour}, 3, t0)
	expect(t, root, "low.example", Receive, lowered, true, 30*time.Minute)
}

func TestWindowChanged(t *testing.T) {
	root := newRoot(t)
	hour := Limits{Send: 100, Window: time.Hour}
	for i := range 60 {
		count(t, root, "example.com", Send, hour, 1, t0.Add(time.Duration(i)*time.Minute))
	}
	at := t0.Add(59*time.Minute + 30*time.Second)
	// A longer window keeps every count.
	day := Limits{Send: 100, Window: 24 * time.Hour}
	if got := stored(t, root, "example.com", Send, day.Window, at); got != 60 {
		t.Errorf("window 1h -> 1d: %d counted, want 60", got)
	}
	// A shorter one keeps those within it, and perhaps one bucket more,
	// never fewer.
	ten := Limits{Send: 100, Window: 10 * time.Minute}
	if got := stored(t, root, "example.com", Send, ten.Window, at); got != 10 && got != 11 {
		t.Errorf("window 1h -> 10m: %d counted, want 10 or 11", got)
	}
	// The new width is written by the next update.
	count(t, root, "example.com", Send, day, 1, at)
	if st := readState(t, root, "example.com", Send); st.width != bucketWidth(day.Window) {
		t.Errorf("width %d, want %d", st.width, bucketWidth(day.Window))
	}
	if got := stored(t, root, "example.com", Send, day.Window, at); got != 61 {
		t.Errorf("after counting with 1d: %d, want 61", got)
	}
}

func TestIndependent(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Receive: 2, Window: time.Hour, Block: time.Hour}
	count(t, root, "a.example", Send, lim, 2, t0)
	expect(t, root, "a.example", Send, lim, true, 0)
	expect(t, root, "a.example", Receive, lim, false, 0)
	expect(t, root, "b.example", Send, lim, false, 0)
	expect(t, root, "b.example", Receive, lim, false, 0)
	count(t, root, "b.example", Receive, lim, 1, t0)
	expect(t, root, "b.example", Receive, lim, false, 0)
	count(t, root, "B.Example", Receive, lim, 1, t0) // the same contract
	expect(t, root, "b.example", Receive, lim, true, 0)
	expect(t, root, "b.example", Send, lim, false, 0)
	expect(t, root, "a.example", Receive, lim, false, 0)
}

func TestClockBack(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 3, Window: time.Hour}
	count(t, root, "example.com", Send, lim, 3, t0.Add(30*time.Minute))
	// Set back a day: the counts are not lost...
	back := t0.Add(-24 * time.Hour)
	expect(t, root, "example.com", Send, lim, true, -24*time.Hour)
	// ...and they age from the step on, not for a day more.
	expect(t, root, "example.com", Send, lim, true, -23*time.Hour-time.Minute)
	expect(t, root, "example.com", Send, lim, false, -23*time.Hour)
	if got := stored(t, root, "example.com", Send, lim.Window, back); got != 3 {
		t.Errorf("stored at the step: %d, want 3", got)
	}

	// A block keeps the time it had left.
	blk := Limits{Send: 1, Window: time.Minute, Block: time.Hour}
	count(t, root, "block.example", Send, blk, 1, t0)
	expect(t, root, "block.example", Send, blk, true, 20*time.Minute)
	// Set back 10 days at t0+20m. The file last changed at t0, with
	// the hour to run; the step is taken to have come then.
	expect(t, root, "block.example", Send, blk, true, 20*time.Minute-240*time.Hour)
	expect(t, root, "block.example", Send, blk, true, 80*time.Minute-240*time.Hour-time.Nanosecond)
	expect(t, root, "block.example", Send, blk, false, 80*time.Minute-240*time.Hour)

	// Processes a moment apart: no step, nothing moved, all counted.
	count(t, root, "skew.example", Send, lim, 1, t0.Add(500*time.Millisecond))
	count(t, root, "skew.example", Send, lim, 1, t0)
	count(t, root, "skew.example", Send, lim, 1, t0.Add(-time.Millisecond)) // crosses a bucket boundary back
	if got := stored(t, root, "skew.example", Send, lim.Window, t0.Add(time.Second)); got != 3 {
		t.Errorf("skewed counts: %d, want 3", got)
	}
	expect(t, root, "skew.example", Send, lim, true, time.Second)
}

func TestDamagedState(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Window: time.Hour}
	count(t, root, "example.com", Send, lim, 2, t0)
	p := filepath.Join(root, Dir, "example.com.send")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"empty":     {},
		"truncated": good[:100],
		"flipped":   append(append([]byte{}, good[:60]...), append([]byte{good[60] ^ 1}, good[61:]...)...),
		"too long":  append(append([]byte{}, good...), "junk after a crash"...),
		"garbage":   []byte(strings.Repeat("x", stateLen)),
	} {
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		expect(t, root, "example.com", Send, lim, false, 0)
		count(t, root, "example.com", Send, lim, 1, t0)
		if fi, err := os.Stat(p); err != nil || fi.Size() != stateLen {
			t.Errorf("%s: after Count: %v, %v; want %d bytes", name, fi, err, stateLen)
		}
		if got := stored(t, root, "example.com", Send, lim.Window, t0); got != 1 {
			t.Errorf("%s: count %d, want 1 (history lost, new count kept)", name, got)
		}
	}
}

func TestUnreadableState(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Window: time.Hour}
	if err := os.MkdirAll(filepath.Join(root, Dir, "dir.example.send"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, Dir, "link.example.send")); err != nil {
		t.Fatal(err)
	}
	for _, dom := range []string{"dir.example", "link.example"} {
		if _, err := Blocked(root, dom, Send, lim, t0); err == nil || !strings.Contains(err.Error(), dom+".send") {
			t.Errorf("Blocked(%s) error = %v; want one naming the file", dom, err)
		}
		if err := Count(root, dom, Send, lim, 1, t0); err == nil {
			t.Errorf("Count(%s) succeeded", dom)
		}
	}
	if os.Geteuid() != 0 {
		count(t, root, "perm.example", Send, lim, 1, t0)
		p := filepath.Join(root, Dir, "perm.example.send")
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Blocked(root, "perm.example", Send, lim, t0)
		if err == nil || !strings.Contains(err.Error(), "qmailctl init") {
			t.Errorf("unreadable file: Blocked error = %v; want one telling what to do", err)
		}
		// Readable but not writable: answered all the same.
		if err := os.Chmod(p, 0o400); err != nil {
			t.Fatal(err)
		}
		expect(t, root, "perm.example", Send, lim, false, 0)
		expect(t, root, "perm.example", Send, lim, false, -48*time.Hour) // cannot absorb the step, still answers
	}
}

func TestBadDomain(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Receive: 2, Window: time.Hour}
	for _, dom := range []string{"", "../../etc", "a/b.example", "localhost", "*", ".example.com"} {
		if _, err := Blocked(root, dom, Send, lim, t0); err == nil {
			t.Errorf("Blocked(%q) succeeded", dom)
		}
		if err := Count(root, dom, Receive, lim, 1, t0); err == nil {
			t.Errorf("Count(%q) succeeded", dom)
		}
	}
	if err := Count(root, "example.com", Direction(7), lim, 1, t0); err == nil {
		t.Error("Count with direction 7 succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Join(root, Dir)); len(ents) != 0 {
		t.Errorf("files made for bad names: %v", ents)
	}
}

func TestRootGivesFilesToDirOwner(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 2, Window: time.Hour}
	dir := filepath.Join(root, Dir)
	if err := os.Mkdir(dir, DirPerm); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 54321, 54322 // any owner but root
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	count(t, root, "example.com", Send, lim, 1, t0)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "example.com.send"), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("state file owned by %d:%d, want the directory's %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	root := newRoot(t)
	lim := Limits{Send: 1 << 30, Receive: 1 << 30, Window: time.Hour, Block: time.Hour}
	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Clocks a little apart, as in separate processes.
				at := t0.Add(time.Duration(i*workers+w) * time.Millisecond)
				if err := Count(root, "example.com", Send, lim, 1, at); err != nil {
					errs <- err
					return
				}
				if _, err := Blocked(root, "example.com", Send, lim, at); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := stored(t, root, "example.com", Send, lim.Window, t0.Add(time.Minute)); got != workers*each {
		t.Errorf("%d goroutines x %d: counted %d, want %d", workers, each, got, workers*each)
	}
}

// Child process mode for TestConcurrentProcesses.
const childEnv = "QUAIL_RATELIMIT_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

// child counts as one process of TestConcurrentProcesses: "ROOT N".
func child(spec string) int {
	root, nstr, _ := strings.Cut(spec, " ")
	n, _ := strconv.Atoi(nstr)
	lim := Limits{Send: 1 << 30, Window: time.Hour, Block: time.Hour}
	for i := range n {
		if err := Count(root, "example.com", Send, lim, 1, t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestConcurrentProcesses(t *testing.T) {
	root := newRoot(t)
	const procs, each = 6, 300
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), childEnv+"="+root+" "+strconv.Itoa(each))
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// And this process counts alongside them.
	lim := Limits{Send: 1 << 30, Window: time.Hour, Block: time.Hour}
	for i := range each {
		count(t, root, "example.com", Send, lim, 1, t0.Add(time.Duration(i)*time.Millisecond))
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	if got := stored(t, root, "example.com", Send, lim.Window, t0.Add(time.Minute)); got != (procs+1)*each {
		t.Errorf("%d processes x %d: counted %d, want %d", procs+1, each, got, (procs+1)*each)
	}
}

func readState(t testing.TB, root, domain string, d Direction) state {
	t.Helper()
	p, _ := path(root, domain, d)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := decode(b)
	if !ok {
		t.Fatalf("%s is not a state", p)
	}
	return st
}

// Benchmarks: what qmail-smtpd adds per message for one limited
// direction (a check, then a count), against the cheapest file access
// and against the fsync every queued message costs anyway.

func BenchmarkBlockedCount(b *testing.B) {
	root := newRoot(b)
	lim := Limits{Send: 1 << 30, Window: time.Hour, Block: time.Hour}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		if _, err := Blocked(root, "example.com", Send, lim, now); err != nil {
			b.Fatal(err)
		}
		if err := Count(root, "example.com", Send, lim, 1, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlockedCountParallel(b *testing.B) {
	for _, tc := range []struct {
		name    string
		domains int
	}{{"OneContract", 1}, {"ManyContracts", 64}} {
		b.Run(tc.name, func(b *testing.B) {
			root := newRoot(b)
			lim := Limits{Send: 1 << 30, Window: time.Hour, Block: time.Hour}
			var mu sync.Mutex
			next := 0
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				dom := fmt.Sprintf("c%d.example", next%tc.domains)
				next++
				mu.Unlock()
				for pb.Next() {
					now := time.Now()
					if _, err := Blocked(root, dom, Send, lim, now); err != nil {
						b.Error(err)
						return
					}
					if err := Count(root, dom, Send, lim, 1, now); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkBaselineOpenRead(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, stateLen), 0o600); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, stateLen+1)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		f.ReadAt(buf, 0)
		f.Close()
	}
}

func BenchmarkBaselineWriteFsync(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, stateLen)
	for b.Loop() {
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
