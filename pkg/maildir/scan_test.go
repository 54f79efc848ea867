package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// put writes a message file at dir/rel with the given content and mtime.
func put(tb testing.TB, dir, rel, content string, mtime time.Time) {
	tb.Helper()
	p := filepath.Join(dir, rel)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		tb.Fatal(err)
	}
}

func TestScan(t *testing.T) {
	dir := newMaildir(t)
	t0 := time.Unix(1700000000, 0)
	put(t, dir, "cur/c-late:2,S", "12345", t0.Add(3*time.Second))
	put(t, dir, "new/n-early", "1", t0)
	put(t, dir, "cur/b-tie:2,", "12", t0.Add(time.Second))
	put(t, dir, "new/a-tie", "123", t0.Add(time.Second))
	put(t, dir, "new/z-sub-second", "1234", t0.Add(time.Second+500*time.Millisecond))
	put(t, dir, "cur/same:2,S", "", t0.Add(2*time.Second))
	put(t, dir, "new/same", "", t0.Add(2*time.Second))
	put(t, dir, "new/.hidden", "x", t0)
	put(t, dir, "cur/.hidden:2,", "x", t0)
	os.Mkdir(filepath.Join(dir, "new", "a-directory"), 0o700)
	os.Symlink("nowhere", filepath.Join(dir, "cur", "dangling"))
	put(t, dir, "tmp/in-tmp", "x", t0)

	msgs, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%s uidl=%s size=%d flags=%q new=%v", m.Name, m.UIDL, m.Size, m.Flags(), m.IsNew()))
		if st, err := os.Stat(filepath.Join(dir, m.Name)); err != nil || !st.ModTime().Equal(m.Mtime) {
			t.Errorf("%s: Mtime %v, file %v", m.Name, m.Mtime, st.ModTime())
		}
	}
	want := []string{
		`new/n-early uidl=n-early size=1 flags="" new=true`,
		// Same mtime: by UIDL.
		`new/a-tie uidl=a-tie size=3 flags="" new=true`,
		`cur/b-tie:2, uidl=b-tie size=2 flags="" new=false`,
		// Later in the same second: after both.
		`new/z-sub-second uidl=z-sub-second size=4 flags="" new=true`,
		// Same mtime and UIDL: by Name, so cur/ first.
		`cur/same:2,S uidl=same size=0 flags="S" new=false`,
		`new/same uidl=same size=0 flags="" new=true`,
		`cur/c-late:2,S uidl=c-late size=5 flags="S" new=false`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Scan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// qmail-pop3d's view: only files from before the current second.
	msgs, err = ScanBefore(dir, t0.Add(time.Second+999*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Name != "new/n-early" {
		t.Errorf("ScanBefore(t0+1.999s) = %+v, want only new/n-early", msgs)
	}
	msgs, _ = ScanBefore(dir, t0.Add(2*time.Second))
	if len(msgs) != 4 {
		t.Errorf("ScanBefore(t0+2s) = %d messages, want 4", len(msgs))
	}
}

func TestScanErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	if _, err := Scan(dir); err == nil || !strings.Contains(err.Error(), "scan maildir "+dir) {
		t.Errorf("Scan of a missing directory: err = %v", err)
	}
	dir = newMaildir(t)
	os.Remove(filepath.Join(dir, "cur"))
	if _, err := Scan(dir); err == nil {
		t.Error("Scan without cur/ succeeded")
	}
}

// TestScanReadsNoMessage checks that Scan leaves the messages' access
// times alone: with relatime, reading a file whose atime is older than
// its mtime moves the atime.
func TestScanReadsNoMessage(t *testing.T) {
	dir := newMaildir(t)
	old, mtime := time.Unix(1600000000, 0), time.Unix(1600000100, 0)
	for _, rel := range []string{"new/a", "cur/b:2,S", "new/probe"} {
		put(t, dir, rel, "Subject: x\n\nbody\n", mtime)
		os.Chtimes(filepath.Join(dir, rel), old, mtime)
	}
	atime := func(rel string) int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Atim.Sec
	}
	if _, err := os.ReadFile(filepath.Join(dir, "new/probe")); err != nil {
		t.Fatal(err)
	}
	if atime("new/probe") == old.Unix() {
		t.Skip("this file system does not update access times (noatime)")
	}
	if _, err := Scan(dir); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"new/a", "cur/b:2,S"} {
		if atime(rel) != old.Unix() {
			t.Errorf("Scan read %s", rel)
		}
	}
}

// TestScanMany lists 10,000 messages of 4 KB with a bounded number of
// allocations per message: memory follows the count, not the sizes (a
// Scan reading the messages would allocate at least 4 KB for each).
func TestScanMany(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 files")
	}
	dir := newMaildir(t)
	const n = 10000
	fillMaildir(t, dir, n)
	var msgs []Message
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	msgs, err = Scan(dir)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("Scan found %d messages, want %d", len(msgs), n)
	}
	if !slices.IsSortedFunc(msgs, compareMessages) {
		t.Error("not sorted")
	}
	perMsg := float64(after.Mallocs-before.Mallocs) / n
	bytesPerMsg := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("Scan of %d messages: %.1f allocations and %.0f bytes per message", n, perMsg, bytesPerMsg)
	if perMsg > 3.5 || bytesPerMsg > 1024 {
		t.Errorf("Scan used %.1f allocations and %.0f bytes per message; want at most 3.5 and 1024", perMsg, bytesPerMsg)
	}
}

// fillMaildir puts n messages of 4 KB (half in new/, half in cur/ with
// flags) with distinct mtimes.
func fillMaildir(tb testing.TB, dir string, n int) {
	tb.Helper()
	body := strings.Repeat("x", 4096)
	t0 := time.Unix(1700000000, 0)
	for i := range n {
		rel := fmt.Sprintf("new/%d.M%06dP1Q%d.host", 1700000000+i, i%1000000, i)
		if i%2 == 1 {
			rel = fmt.Sprintf("cur/%d.M%06dP1Q%d.host:2,S", 1700000000+i, i%1000000, i)
		}
		put(tb, dir, rel, body, t0.Add(time.Duration(n-i)*time.Millisecond))
	}
}

func TestCleanTmp(t *testing.T) {
	dir := newMaildir(t)
	now := time.Unix(1700000000, 0)
	setTimes := func(rel string, atime time.Time) {
		if err := os.Chtimes(filepath.Join(dir, rel), atime, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"tmp/old", "tmp/exactly-36h", "tmp/young", "tmp/.old-dot", "new/old-in-new"} {
		os.WriteFile(filepath.Join(dir, rel), []byte("x"), 0o600)
	}
	os.Mkdir(filepath.Join(dir, "tmp", "old-dir"), 0o700)
	setTimes("tmp/old", now.Add(-36*time.Hour-time.Second))
	setTimes("tmp/exactly-36h", now.Add(-36*time.Hour))
	setTimes("tmp/young", now.Add(-time.Hour))
	setTimes("tmp/.old-dot", now.Add(-100*time.Hour))
	setTimes("tmp/old-dir", now.Add(-100*time.Hour))
	setTimes("new/old-in-new", now.Add(-100*time.Hour))

	n, err := CleanTmp(dir, now)
	if err != nil || n != 1 {
		t.Errorf("CleanTmp = %d, %v; want 1 removed", n, err)
	}
	got := names(t, dir, "tmp")
	if want := []string{".old-dot", "exactly-36h", "old-dir", "young"}; !slices.Equal(got, want) {
		t.Errorf("tmp/ holds %q, want %q", got, want)
	}
	if len(names(t, dir, "new")) != 1 {
		t.Error("CleanTmp touched new/")
	}
	if _, err := CleanTmp(filepath.Join(dir, "missing"), now); err == nil {
		t.Error("CleanTmp of a missing Maildir: no error")
	}
}

func TestMoveToCur(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	tests := []struct {
		name, file, want string
	}{
		{"new without info", "new/1.M1P1Q1.h", "cur/1.M1P1Q1.h:2,"},
		{"new with flags", "new/1.M1P1Q1.h:2,FS", "cur/1.M1P1Q1.h:2,FS"},
		{"cur keeps its flags", "cur/1.M1P1Q1.h:2,RS", "cur/1.M1P1Q1.h:2,RS"},
		{"cur without info stays", "cur/1.M1P1Q1.h", "cur/1.M1P1Q1.h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newMaildir(t)
			put(t, dir, tt.file, "message\n", t0)
			msgs, err := Scan(dir)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("Scan = %v, %v", msgs, err)
			}
			m, err := MoveToCur(dir, msgs[0])
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tt.want || m.UIDL != "1.M1P1Q1.h" || m.Size != 8 || !m.Mtime.Equal(t0) {
				t.Errorf("MoveToCur = %+v, want Name %s and the rest unchanged", m, tt.want)
			}
			msgs, _ = Scan(dir)
			if len(msgs) != 1 || msgs[0] != m {
				t.Errorf("after the move Scan = %+v, want %+v", msgs, m)
			}
		})
	}
	dir := newMaildir(t)
	if _, err := MoveToCur(dir, Message{Name: "new/gone", UIDL: "gone"}); err == nil {
		t.Error("MoveToCur of a missing file: no error")
	}
	// A directory where the message would go is not replaced.
	put(t, dir, "new/2.M1P1Q1.h", "message\n", t0)
	if err := os.Mkdir(filepath.Join(dir, "cur", "2.M1P1Q1.h:2,"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := MoveToCur(dir, Message{Name: "new/2.M1P1Q1.h", UIDL: "2.M1P1Q1.h"}); err == nil {
		t.Error("MoveToCur onto a directory: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "new", "2.M1P1Q1.h")); err != nil {
		t.Errorf("the message left new/ although the move failed: %v", err)
	}
}

func TestSetFlags(t *testing.T) {
	dir := newMaildir(t)
	put(t, dir, "new/m", "x", time.Unix(1700000000, 0))
	msgs, _ := Scan(dir)
	m, err := SetFlags(dir, msgs[0], "TS")
	if err != nil || m.Name != "cur/m:2,ST" || m.Flags() != "ST" {
		t.Fatalf("SetFlags(new/m, TS) = %+v, %v", m, err)
	}
	m, err = SetFlags(dir, m, "")
	if err != nil || m.Name != "cur/m:2," {
		t.Fatalf("SetFlags(cur/m:2,ST, \"\") = %+v, %v", m, err)
	}
	if _, err := SetFlags(dir, m, "S!"); err == nil {
		t.Error("SetFlags accepted '!'")
	}
	if got := names(t, dir, "cur"); !slices.Equal(got, []string{"m:2,"}) {
		t.Errorf("cur/ holds %q", got)
	}
}
