package queue

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// put writes a queue file by hand, in qmail's format, with mtime t when
// t is not zero.
func put(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	birth1 = time.Date(2023, 11, 14, 19, 26, 40, 0, time.UTC)
	birth2 = time.Date(2024, 2, 29, 8, 5, 0, 0, time.UTC)
)

// handQueue lays out a queue holding, in qmail's format:
//
//	100 (info/8): preprocessed, two local and one remote recipient, one
//	    local done, and a bounce pending;
//	23 (info/0): preprocessed, its one remote recipient done;
//	46 (info/0 and todo/): preprocessing was interrupted;
//	5 (todo/ only): not yet preprocessed;
//	7 (info/7): its message file is missing;
//
// and names qmail-send ignores.
func handQueue(t *testing.T) Queue {
	q := newQueue(t)
	put(t, q.Mess(100), "Received: x\n\nhello\n", time.Time{})
	put(t, q.Info(100), "Falice@example.org\x00", birth1)
	put(t, q.Local(100), "Tbob@example.org\x00Dcarol@example.org\x00", time.Time{})
	put(t, q.Remote(100), "Tdave@example.net\x00", time.Time{})
	put(t, q.Bounce(100), "<carol@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n", time.Time{})

	put(t, q.Mess(23), "12345", time.Time{})
	put(t, q.Info(23), "F\x00", birth2)
	put(t, q.Remote(23), "Derin@example.net\x00", time.Time{})

	put(t, q.Mess(46), "x", time.Time{})
	put(t, q.Info(46), "Ffrank@example.org\x00", birth2)
	put(t, q.Todo(46), "u0\x00p1\x00Ffrank@example.org\x00Tgina@example.org\x00", birth2)

	put(t, q.Mess(5), "abc", time.Time{})
	todo5 := string(Todo(1000, 4242, Envelope{Sender: "heidi@example.org", Recipients: []string{"ivan@example.org", "judy@example.net"}}))
	put(t, q.Intd(5), todo5, birth2)
	if err := os.Link(q.Intd(5), q.Todo(5)); err != nil {
		t.Fatal(err)
	}

	put(t, q.Info(7), "Fkarl@example.org\x00", birth1)

	put(t, filepath.Join(q.Dir, "info", "3", "junk"), "F\x00", time.Time{})
	put(t, filepath.Join(q.Dir, "todo", ".tmp"), "", time.Time{})
	return q
}

func TestList(t *testing.T) {
	q := handQueue(t)
	got, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []*Message{
		{ID: 23, Birth: birth2, Sender: "", Size: 5, Info: true,
			Recipients: []Recipient{{"erin@example.net", Remote, true}}},
		{ID: 46, Birth: birth2, Sender: "frank@example.org", Size: 1, Info: true, Todo: true},
		{ID: 7, Err: errors.New("")},
		{ID: 100, Birth: birth1, Sender: "alice@example.org", Size: 19, Info: true, Bouncing: true,
			Recipients: []Recipient{{"bob@example.org", Local, false}, {"carol@example.org", Local, true}, {"dave@example.net", Remote, false}}},
		{ID: 5, Birth: birth2, Sender: "heidi@example.org", Size: 3, Todo: true,
			Recipients: []Recipient{{"ivan@example.org", Unsorted, false}, {"judy@example.net", Unsorted, false}}},
	}
	if len(got) != len(want) {
		for _, m := range got {
			t.Logf("%+v", m)
		}
		t.Fatalf("List gave %d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if w.Err != nil {
			if g.ID != w.ID || g.Err == nil {
				t.Errorf("message %d: got id %d, err %v; want id %d and an error", i, g.ID, g.Err, w.ID)
			}
			continue
		}
		g.Birth = g.Birth.UTC()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestScanSkipsVanished(t *testing.T) {
	q := handQueue(t)
	// 69 is in todo/ only; its info/ file would be in info/0.
	put(t, q.Mess(69), "abc", time.Time{})
	put(t, q.Todo(69), "u0\x00p1\x00Fheidi@example.org\x00Tjudy@example.net\x00", birth2)
	var got []*Message
	err := q.Scan(func(m *Message) error {
		got = append(got, m)
		if m.ID == 23 {
			// While 23 is shown, after info/0 was listed, qmail-send
			// finishes 46 and preprocesses 69.
			for _, p := range []string{q.Info(46), q.Todo(46), q.Mess(46), q.Todo(69)} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			put(t, q.Info(69), "Fheidi@example.org\x00", birth2)
			put(t, q.Remote(69), "Tjudy@example.net\x00", time.Time{})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	for _, m := range got {
		seen = append(seen, m.ID)
	}
	if want := []uint64{23, 7, 100, 5, 69}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("visited %v, want %v", seen, want)
	}
	// 69 was read from its new info/ file.
	m := got[4]
	if m.Err != nil || !m.Info || m.Todo || len(m.Recipients) != 1 || m.Recipients[0].Channel != Remote {
		t.Errorf("message 69 after preprocessing: %+v", m)
	}
}

func TestScanStops(t *testing.T) {
	q := handQueue(t)
	stop := errors.New("stop")
	n := 0
	err := q.Scan(func(*Message) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Scan returned %v after %d visits, want the visitor's error after 1", err, n)
	}
}

func TestScanMissingQueue(t *testing.T) {
	q := Queue{Dir: filepath.Join(t.TempDir(), "nope")}
	if err := q.Scan(func(*Message) error { return nil }); err == nil {
		t.Error("Scan of a missing queue succeeded")
	}
}

func TestRecipientsErr(t *testing.T) {
	q := newQueue(t)
	put(t, q.Mess(1), "x", time.Time{})
	put(t, q.Info(1), "Fa@b\x00", birth1)
	put(t, q.Local(1), "Tc@d\x00Te@f", time.Time{}) // cut short
	ms, err := q.List()
	if err != nil || len(ms) != 1 {
		t.Fatal(ms, err)
	}
	m := ms[0]
	if m.Err != nil || !errors.Is(m.RecipientsErr, ErrTruncated) || len(m.Recipients) != 1 {
		t.Errorf("got %+v", m)
	}
}

func TestCount(t *testing.T) {
	q := handQueue(t)
	c, err := q.Count()
	if err != nil {
		t.Fatal(err)
	}
	// mess: 100, 23, 46, 5; todo: 46, 5 and the stray .tmp file.
	if want := (Counts{Messages: 4, Todo: 3}); c != want {
		t.Errorf("Count() = %+v, want %+v", c, want)
	}
}
