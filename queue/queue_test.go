package queue

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/quail-mta/quail/pkg/exitcode"
)

func newQueue(t *testing.T) Queue {
	t.Helper()
	q := Queue{Dir: filepath.Join(t.TempDir(), "queue")}
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	return q
}

func TestMakeLayout(t *testing.T) {
	q := newQueue(t)
	for _, n := range layout {
		st, err := os.Lstat(filepath.Join(q.Dir, n.path))
		if err != nil {
			t.Errorf("%s: %v", n.path, err)
			continue
		}
		if st.Mode().Perm() != n.perm {
			t.Errorf("%s: mode %v, want %v", n.path, st.Mode().Perm(), n.perm)
		}
		if n.split {
			for i := range Split {
				if _, err := os.Stat(filepath.Join(q.Dir, n.path, strconv.Itoa(i))); err != nil {
					t.Errorf("%s/%d: %v", n.path, i, err)
				}
			}
		}
	}
	if st, _ := os.Lstat(q.Trigger()); st.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("lock/trigger is %v, want a FIFO", st.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(q.Dir, "lock", "tcpto")); len(b) != TCPToSize {
		t.Errorf("lock/tcpto has %d bytes, want %d", len(b), TCPToSize)
	}
	// Again: nothing is truncated or replaced.
	os.WriteFile(filepath.Join(q.Dir, "lock", "tcpto"), bytes.Repeat([]byte{7}, TCPToSize), 0o644)
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(q.Dir, "lock", "tcpto")); b[0] != 7 {
		t.Error("MakeLayout over an existing queue reset lock/tcpto")
	}
}

func TestEnqueue(t *testing.T) {
	q := newQueue(t)
	w, err := q.Create()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(q.Mess(w.ID()), &st); err != nil || st.Ino != w.ID() {
		t.Fatalf("mess file of %d: inode %d, %v", w.ID(), st.Ino, err)
	}
	if !strings.HasSuffix(q.Mess(w.ID()), "/mess/"+strconv.FormatUint(w.ID()%23, 10)+"/"+strconv.FormatUint(w.ID(), 10)) {
		t.Errorf("mess path %s is not split by 23", q.Mess(w.ID()))
	}
	w.Write([]byte("Received: x\nSubject: t\n\nbody\n"))
	env := Envelope{Sender: "a@b.example", Recipients: []string{"c@d.example", "e@f.example"}}
	if err := w.Commit(Todo(1000, 4242, env)); err != nil {
		t.Fatal(err)
	}
	todo, err := os.ReadFile(q.Todo(w.ID()))
	if err != nil || string(todo) != "u1000\x00p4242\x00Fa@b.example\x00Tc@d.example\x00Te@f.example\x00" {
		t.Errorf("todo = %q, %v", todo, err)
	}
	intd, _ := os.ReadFile(q.Intd(w.ID()))
	if !bytes.Equal(intd, todo) {
		t.Errorf("intd differs from todo")
	}
	mess, _ := os.ReadFile(q.Mess(w.ID()))
	if string(mess) != "Received: x\nSubject: t\n\nbody\n" {
		t.Errorf("mess = %q", mess)
	}
	if entries, _ := os.ReadDir(filepath.Join(q.Dir, "pid")); len(entries) != 0 {
		t.Errorf("pid/ holds %d files after commit", len(entries))
	}
}

func TestAbort(t *testing.T) {
	q := newQueue(t)
	w, err := q.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Abort()
	for _, dir := range []string{"pid", "intd", "todo", "mess/" + strconv.FormatUint(w.ID()%23, 10)} {
		if entries, _ := os.ReadDir(filepath.Join(q.Dir, dir)); len(entries) != 0 {
			t.Errorf("%s/ not empty after Abort", dir)
		}
	}
	// A commit that fails before the todo link leaves nothing either:
	// intd/N already exists, so creating it fails (qmail-queue's 65).
	w, _ = q.Create()
	os.WriteFile(q.Intd(w.ID()), nil, 0o644)
	err = w.Commit(Todo(0, 1, Envelope{}))
	var qe *Error
	if !errors.As(err, &qe) || qe.Code != exitcode.QQIntd {
		t.Fatalf("Commit with intd/N taken: %v, want exit 65", err)
	}
	if _, err := os.Stat(q.Mess(w.ID())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mess file left after a failed commit")
	}
	if _, err := os.Stat(q.Todo(w.ID())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("todo file after a failed commit")
	}
}

func TestCreateErrors(t *testing.T) {
	q := Queue{Dir: filepath.Join(t.TempDir(), "missing")}
	_, err := q.Create()
	var qe *Error
	if !errors.As(err, &qe) || qe.Code != exitcode.QQPid {
		t.Errorf("Create without pid/: %v, want exit 63", err)
	}
}

func TestReadEnvelope(t *testing.T) {
	long := strings.Repeat("x", MaxAddress)
	for _, tc := range []struct {
		in   string
		want Envelope
		code int
	}{
		{"Fa@b\x00Tc@d\x00Te@f\x00\x00", Envelope{"a@b", []string{"c@d", "e@f"}}, 0},
		{"F\x00Tc@d\x00\x00", Envelope{"", []string{"c@d"}}, 0},
		{"F#@[]\x00\x00", Envelope{"#@[]", nil}, 0},
		{"F" + long + "\x00T" + long + "\x00\x00", Envelope{long, []string{long}}, 0},
		{"F" + long + "x\x00\x00", Envelope{}, exitcode.QQAddrTooLong},
		{"Fa\x00T" + long + "x\x00\x00", Envelope{}, exitcode.QQAddrTooLong},
		{"Ta@b\x00\x00", Envelope{}, exitcode.QQEnvelope},
		{"Fa\x00Xb\x00\x00", Envelope{}, exitcode.QQEnvelope},
		{"Fa\x00Tb\x00", Envelope{}, exitcode.QQRead},
		{"Fa", Envelope{}, exitcode.QQRead},
		{"", Envelope{}, exitcode.QQRead},
	} {
		env, err := ReadEnvelope(strings.NewReader(tc.in))
		if tc.code == 0 {
			if err != nil || !reflect.DeepEqual(env, tc.want) {
				t.Errorf("ReadEnvelope(%.40q) = %+v, %v", tc.in, env, err)
			}
			continue
		}
		var qe *Error
		if !errors.As(err, &qe) || qe.Code != tc.code {
			t.Errorf("ReadEnvelope(%.40q) err = %v, want exit %d", tc.in, err, tc.code)
		}
	}
}

func FuzzReadEnvelope(f *testing.F) {
	f.Add([]byte("Fa@b\x00Tc@d\x00\x00"))
	f.Add([]byte("F\x00\x00"))
	f.Add([]byte("Fa\x00Tb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ReadEnvelope(bytes.NewReader(b))
		if err != nil {
			return
		}
		// What parses encodes back to the bytes it was read from.
		enc := env.Encode()
		if !bytes.HasPrefix(b, enc) {
			t.Fatalf("Encode(ReadEnvelope(%q)) = %q", b, enc)
		}
	})
}

func TestParseRecords(t *testing.T) {
	recs, err := ParseRecords([]byte("u0\x00p1\x00Fa\x00Tb\x00Dc\x00"))
	if err != nil || len(recs) != 5 || recs[4].Type != 'D' || recs[4].Data != "c" || recs[4].Off != 12 {
		t.Errorf("ParseRecords = %+v, %v", recs, err)
	}
	if _, err := ParseRecords([]byte("Tb\x00Tc")); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
}

func TestParseID(t *testing.T) {
	for in, want := range map[string]bool{"123": true, "0": true, "": false, "12a": false, "-1": false, ".123": false, "99999999999999999999999": false} {
		if _, ok := ParseID(in); ok != want {
			t.Errorf("ParseID(%q) ok = %v", in, ok)
		}
	}
}
