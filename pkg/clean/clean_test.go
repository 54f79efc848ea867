package clean

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/queue"
)

func TestClean(t *testing.T) {
	q := queue.Queue{Dir: filepath.Join(t.TempDir(), "queue")}
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{q.Intd(46), q.Todo(46), q.Mess(46), q.Mess(47)} {
		os.WriteFile(p, nil, 0o644)
	}
	old := filepath.Join(q.Dir, "pid", "1.2.3")
	fresh := filepath.Join(q.Dir, "pid", "4.5.6")
	os.WriteFile(old, nil, 0o644)
	os.WriteFile(fresh, nil, 0o644)
	long := time.Now().Add(-37 * time.Hour)
	os.Chtimes(old, long, long)

	in := strings.NewReader("todo/46\x00foop/46\x00foop/47\x00todo/99\x00junk\x00todo/x\x00")
	var out bytes.Buffer
	if err := Run(q, in, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "++++xx" {
		t.Errorf("answers %q, want ++++xx", out.String())
	}
	for _, p := range []string{q.Intd(46), q.Todo(46), q.Mess(46), q.Mess(47), old} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still exists", p)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh pid/ file was removed")
	}
}
