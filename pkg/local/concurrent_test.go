package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

// TestConcurrent: 50 deliveries at once from one process into one
// Maildir and one mbox, each message big enough to take several writes:
// all arrive whole, and the mbox entries are not interleaved.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	const n = 50
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Maildir/\n./Mailbox\n")
	msgs := make([]string, n)
	for i := range msgs {
		// About 100 KB: a few 32 KB writes each, some "From " lines.
		line := fmt.Sprintf("From message %02d, a line to make it long enough to need many writes\n", i)
		msgs[i] = fmt.Sprintf("Subject: %02d\n\n", i) + strings.Repeat(line, 100<<10/len(line))
	}
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range n {
		f := message(t, msgs[i])
		wg.Go(func() {
			var out testutil.SyncBuffer
			code := Deliver(context.Background(), request(home), f, &out)
			results[i] = fmt.Sprint(code, " ", out.String())
		})
	}
	wg.Wait()
	for i, r := range results {
		if r != "0 did 2+0+0\n" {
			t.Errorf("delivery %d: %q", i, r)
		}
	}

	want := make([]string, n)
	for i, m := range msgs {
		want[i] = rpline + dtline + m
	}
	got := maildirMessages(t, filepath.Join(home, "Maildir"))
	if fmt.Sprint(got) != fmt.Sprint(want) { // both sorted: "Subject: NN" orders them
		t.Errorf("Maildir holds %d messages, not the %d sent", len(got), n)
	}

	mbox := readFile(t, filepath.Join(home, "Mailbox"))
	seen := map[int]bool{}
	for pos := 0; pos < len(mbox); {
		loc := uflineRE.FindStringIndex(mbox[pos:])
		if loc == nil || loc[0] != 0 {
			t.Fatalf("no From_ line at offset %d of the mbox", pos)
		}
		pos += loc[1]
		var i int
		if _, err := fmt.Sscanf(mbox[pos:], rpline+dtline+"Subject: %02d\n", &i); err != nil || i < 0 || i >= n || seen[i] {
			t.Fatalf("entry at offset %d: %q (%v)", pos, mbox[pos:min(len(mbox), pos+80)], err)
		}
		seen[i] = true
		entry := rpline + dtline + quoted(msgs[i])
		if !strings.HasPrefix(mbox[pos:], entry) {
			t.Fatalf("entry %d at offset %d is not whole: interleaved?", i, pos)
		}
		pos += len(entry)
	}
	if len(seen) != n {
		t.Errorf("mbox holds %d entries, want %d", len(seen), n)
	}
}

// TestConcurrentSharedFile: deliveries sharing one *os.File (and so one
// file offset) each read the whole message, programs included, by a new
// descriptor or by a pipe.
func TestConcurrentSharedFile(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	writeQmail(t, home, ".qmail", "|cksum\n./Maildir/\n")
	msg := "Subject: shared\n\n" + strings.Repeat("some text\n", 20000)
	f := message(t, msg)
	sum, err := exec.Command("cksum", f.Name()).Output()
	if err != nil {
		t.Fatal(err)
	}
	wantSum := strings.Fields(string(sum))[:2]
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			var out testutil.SyncBuffer
			code := deliver(context.Background(), request(home), f, &out, options{lockWait: LockWait, noReopen: i%2 == 1})
			if got := strings.Fields(out.String()); code != 0 || len(got) != 4 || got[0] != wantSum[0] || got[1] != wantSum[1] {
				t.Errorf("delivery %d: exit %d, report %q; want cksum %v", i, code, out.String(), wantSum)
			}
		})
	}
	wg.Wait()
	for _, m := range maildirMessages(t, filepath.Join(home, "Maildir")) {
		if m != rpline+dtline+msg {
			t.Errorf("a Maildir message of %d bytes differs", len(m))
		}
	}
}

// TestLargeMessage: a 5 MB message through a Maildir, an mbox, a program
// (by a new descriptor and by a pipe) and a forward, with memory that does
// not grow with the message: the allocations of the whole delivery stay
// far below the message's size, and barely differ from those of a
// message a tenth its size.
func TestLargeMessage(t *testing.T) {
	q := fakeQueue(t, "0")
	home := newHome(t)
	writeQmail(t, home, ".qmail", "./Maildir/\n./Mailbox\n|cat > stdin.out\n&a@example.com\n")
	line := "From a line of a large message, quoted in the mbox\n"
	body := func(size int) string { return "Subject: large\n\n" + strings.Repeat(line, size/len(line)) }
	small, large := body(512<<10), body(5<<20)
	allocs := func(msg string, noReopen bool) uint64 {
		f := message(t, msg)
		for _, p := range []string{"Mailbox", "stdin.out"} {
			os.Remove(filepath.Join(home, p))
		}
		var out testutil.SyncBuffer
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		code := deliver(context.Background(), request(home), f, &out, options{lockWait: LockWait, noReopen: noReopen})
		runtime.ReadMemStats(&after)
		if code != 0 || !regexp.MustCompile(`^did 2\+1\+1\nqp \d+\n$`).MatchString(out.String()) {
			t.Fatalf("exit %d, report %q", code, out.String())
		}
		if got := readFile(t, filepath.Join(home, "stdin.out")); got != msg {
			t.Fatalf("program read %d bytes, want %d", len(got), len(msg))
		}
		if got := readFile(t, filepath.Join(home, "Mailbox")); got[strings.Index(got, "\n")+1:] != rpline+dtline+quoted(msg) {
			t.Fatalf("mbox holds %d bytes, not the quoted message", len(got))
		}
		if got := readFile(t, filepath.Join(q, "msg")); got != dtline+msg {
			t.Fatalf("forwarded %d bytes, want %d", len(got), len(dtline+msg))
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	for _, noReopen := range []bool{false, true} {
		a, b := allocs(small, noReopen), allocs(large, noReopen)
		t.Logf("pipe %v: allocated %d bytes for %d, %d bytes for %d", noReopen, a, len(small), b, len(large))
		if b > 1<<20 {
			t.Errorf("pipe %v: a %d byte delivery allocated %d bytes", noReopen, len(large), b)
		}
		if b > a+256<<10 {
			t.Errorf("pipe %v: allocations grew from %d to %d with the message size", noReopen, a, b)
		}
	}
	if got := maildirMessages(t, filepath.Join(home, "Maildir")); len(got) != 4 || got[3] != rpline+dtline+large {
		t.Errorf("the Maildir does not hold the large message")
	}
}
