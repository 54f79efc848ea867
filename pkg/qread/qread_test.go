package qread

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/queue"
)

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

// handQueue writes a queue in qmail's format by hand.
func handQueue(t *testing.T) queue.Queue {
	t.Helper()
	q := queue.Queue{Dir: filepath.Join(t.TempDir(), "queue")}
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	nov := time.Date(2023, 11, 14, 19, 26, 40, 0, time.UTC)
	jan := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))

	// 100: local and remote recipients, one done, a bounce pending.
	put(t, q.Mess(100), strings.Repeat("x", 1234), time.Time{})
	put(t, q.Info(100), "Falice@example.org\x00", nov)
	put(t, q.Local(100), "Tbob@example.org\x00Dcarol@example.org\x00", time.Time{})
	put(t, q.Remote(100), "Tdave@example.net\x00", time.Time{})
	put(t, q.Bounce(100), "<carol@example.org>:\nno\n\n", time.Time{})

	// 23: a bounce (empty sender), its remote recipient done.
	put(t, q.Mess(23), "12345", time.Time{})
	put(t, q.Info(23), "F\x00", jan)
	put(t, q.Remote(23), "Derin@example.net\x00", time.Time{})

	// 5: only in todo/: qmail-qread does not show it.
	put(t, q.Mess(5), "abc", time.Time{})
	put(t, q.Todo(5), "u0\x00p1\x00Fheidi@example.org\x00Tivan@example.org\x00", jan)

	// 31 (info/8): control characters and 8-bit bytes in addresses.
	put(t, q.Mess(31), "", time.Time{})
	put(t, q.Info(31), "Fev\til\xc3\xa9@example.org\x00", nov)
	put(t, q.Local(31), "Ta\nb@example.org\x00Xignored\x00", time.Time{})

	// 7: its message file is gone: a warning, not a listing.
	put(t, q.Info(7), "Fkarl@example.org\x00", nov)
	return q
}

func TestRun(t *testing.T) {
	q := handQueue(t)
	var out, errOut bytes.Buffer
	if err := Run(&out, &errOut, q); err != nil {
		t.Fatal(err)
	}
	// Written by hand from qmail-qread.c's fmtstats and main.
	want := "2 Jan 2024 02:04:05 GMT  #23  5  <> \n" +
		"  done\tremote\terin@example.net\n" +
		"14 Nov 2023 19:26:40 GMT  #31  0  <ev_il__@example.org> \n" +
		"\tlocal\ta_b@example.org\n" +
		"14 Nov 2023 19:26:40 GMT  #100  1234  <alice@example.org>  bouncing\n" +
		"\tlocal\tbob@example.org\n" +
		"  done\tlocal\tcarol@example.org\n" +
		"\tremote\tdave@example.net\n"
	if got := out.String(); got != want {
		t.Errorf("output:\n%q\nwant:\n%q", got, want)
	}
	if !strings.HasPrefix(errOut.String(), "qmail-qread: warning: trouble with #7: ") || strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("warnings: %q", errOut.String())
	}
}

func TestWriteMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    queue.Message
		want string
	}{
		{"no recipients left",
			queue.Message{ID: 123456, Birth: time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC), Sender: "djb@cr.yp.to", Size: 1, Info: true},
			"26 Sep 1995 04:46:54 GMT  #123456  1  <djb@cr.yp.to> \n"},
		{"bouncing, done remote",
			queue.Message{ID: 9, Birth: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), Sender: "", Size: 0, Bouncing: true, Info: true,
				Recipients: []queue.Recipient{{Addr: "x@y", Channel: queue.Remote, Done: true}}},
			"31 Dec 2026 23:59:59 GMT  #9  0  <>  bouncing\n  done\tremote\tx@y\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteMessage(&b, &tc.m); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestStat(t *testing.T) {
	q := handQueue(t)
	var out bytes.Buffer
	if err := Stat(&out, q); err != nil {
		t.Fatal(err)
	}
	// mess: 100, 23, 5, 31; todo: 5.
	want := "messages in queue: 4\nmessages in queue but not yet preprocessed: 1\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestRunMissingQueue(t *testing.T) {
	q := queue.Queue{Dir: filepath.Join(t.TempDir(), "none")}
	if err := Run(&bytes.Buffer{}, &bytes.Buffer{}, q); err == nil {
		t.Error("Run on a missing queue succeeded")
	}
	if err := Stat(&bytes.Buffer{}, q); err == nil {
		t.Error("Stat on a missing queue succeeded")
	}
}

// TestInjected checks a message queued through queue.Writer is counted
// as not yet preprocessed and not listed, as qmail's tools do.
func TestInjected(t *testing.T) {
	q := queue.Queue{Dir: filepath.Join(t.TempDir(), "queue")}
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	w, err := q.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: x\n\nbody\n"))
	if err := w.Commit(queue.Todo(0, 1, queue.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Stat(&out, q); err != nil {
		t.Fatal(err)
	}
	if want := "messages in queue: 1\nmessages in queue but not yet preprocessed: 1\n"; out.String() != want {
		t.Errorf("qstat: %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := Run(&out, &out, q); err != nil || out.Len() != 0 {
		t.Errorf("qread printed %q, %v; want nothing", out.String(), err)
	}
}
