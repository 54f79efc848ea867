// Package clean is qmail-clean: it removes finished queue files for
// qmail-send, running as the queue's owner (qmailq), which qmail-send
// (qmails) is not.
//
// Commands on stdin, each answered by one byte on stdout:
//
//	todo/N NUL   remove intd/N and todo/N (the message was preprocessed)
//	foop/N NUL   remove intd/N and mess/S/N (the message is finished)
//
// '+' done (a file already gone counts as done), '!' a removal failed,
// 'x' the command was malformed. Every 30 commands it also removes files
// in pid/ older than 36 hours, left by injections that crashed.
package clean

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quail-mta/quail/queue"
)

// Ossified is the age after which qmail removes leftovers of crashed
// injections.
const Ossified = 36 * time.Hour

// Run serves commands until in ends.
func Run(q queue.Queue, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	for n := 0; ; n++ {
		cmd, err := br.ReadString(0)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n%30 == 0 {
			cleanPid(q, time.Now())
		}
		if _, err := out.Write([]byte{do(q, strings.TrimSuffix(cmd, "\x00"))}); err != nil {
			return err
		}
	}
}

func do(q queue.Queue, cmd string) byte {
	kind, num, ok := strings.Cut(cmd, "/")
	id, idOK := queue.ParseID(num)
	if !ok || !idOK {
		return 'x'
	}
	var paths []string
	switch kind {
	case "todo":
		paths = []string{q.Intd(id), q.Todo(id)}
	case "foop":
		paths = []string{q.Intd(id), q.Mess(id)}
	default:
		return 'x'
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return '!'
		}
	}
	return '+'
}

// cleanPid removes pid/ files whose last access is over Ossified ago.
func cleanPid(q queue.Queue, now time.Time) {
	dir := filepath.Join(q.Dir, "pid")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		var st syscall.Stat_t
		p := filepath.Join(dir, e.Name())
		if syscall.Stat(p, &st) != nil {
			continue
		}
		if now.Sub(time.Unix(st.Atim.Sec, st.Atim.Nsec)) > Ossified {
			os.Remove(p)
		}
	}
}
