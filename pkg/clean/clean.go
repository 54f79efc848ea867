// Package clean is qmail-clean: it removes finished queue files for
// qmail-send, running as the queue's owner (qmailq), which qmail-send
// (qmails) is not. A removed message file or envelope is kept as a spare
// for the next injection (see queue.Spares) rather than deleted.
//
// Commands on stdin, each answered by one byte on stdout:
//
//	todo/N NUL   remove intd/N and todo/N (the message was preprocessed)
//	foop/N NUL   remove intd/N and mess/S/N (the message is finished)
//
// '+' done (a file already gone counts as done), '!' a removal failed,
// 'x' the command was malformed. Every 30 commands, at most once a minute,
// it also removes files in pid/ older than 36 hours, left by injections
// that crashed.
package clean

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quail-mta/quail/queue"
)

// flushDelay is how long finished files cool before they become spares
// for the next messages: one round of directory fsyncs serves all the
// files finished meanwhile.
const flushDelay = 500 * time.Millisecond

// sweepEvery spaces the sweeps of pid/: it holds the spares too, and
// files become ossified in hours, not seconds.
const sweepEvery = time.Minute

// Ossified is the age after which qmail removes leftovers of crashed
// injections.
const Ossified = 36 * time.Hour

// Run serves commands until in ends.
func Run(q queue.Queue, in io.Reader, out io.Writer) error {
	spares := q.QueueSpares()
	warn := func(err error) {
		fmt.Fprintf(os.Stderr, "qmail-clean: warning: cannot keep spare files in pid/ (%v); finished queue files are deleted instead; check the filesystem under queue/\n", err)
	}
	if err := spares.Clear(); err != nil {
		warn(err)
	}
	spares.FlushAfter(flushDelay, warn)
	defer spares.Flush()
	br := bufio.NewReader(in)
	var swept time.Time
	for n := 0; ; n++ {
		cmd, err := br.ReadString(0)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if now := time.Now(); n%30 == 0 && now.Sub(swept) >= sweepEvery {
			cleanPid(q, now)
			swept = now
		}
		if _, err := out.Write([]byte{do(q, spares, strings.TrimSuffix(cmd, "\x00"))}); err != nil {
			return err
		}
	}
}

func do(q queue.Queue, spares *queue.Spares, cmd string) byte {
	kind, num, ok := strings.Cut(cmd, "/")
	id, idOK := queue.ParseID(num)
	if !ok || !idOK {
		return 'x'
	}
	var err error
	switch kind {
	case "todo":
		// todo/N is a second name of intd/N's inode: it goes first.
		err = spares.Retire(q.Intd(id), q.Todo(id))
	case "foop":
		// intd/N is a file, gone already unless a crash came first:
		// unlink(2) alone, without os.Remove's rmdir(2) after it.
		if err = syscall.Unlink(q.Intd(id)); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = spares.Retire(q.Mess(id))
		}
	default:
		return 'x'
	}
	if err != nil {
		return '!'
	}
	return '+'
}

// cleanPid removes pid/ files not used for Ossified (queue.LastUsed).
func cleanPid(q queue.Queue, now time.Time) {
	dir := filepath.Join(q.Dir, "pid")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if queue.IsSpareName(e.Name()) {
			continue // the pool's, not a crashed injection's
		}
		var st syscall.Stat_t
		p := filepath.Join(dir, e.Name())
		if syscall.Stat(p, &st) != nil {
			continue
		}
		if now.Sub(queue.LastUsed(&st)) > Ossified {
			os.Remove(p)
		}
	}
}
