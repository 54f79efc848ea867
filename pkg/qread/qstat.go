package qread

import (
	"fmt"
	"io"

	"github.com/quail-mta/quail/queue"
)

// Stat prints q's counts to out as qmail-qstat does:
//
//	messages in queue: N
//	messages in queue but not yet preprocessed: M
//
// N counts the files under mess/ (every message, including one whose
// injection is still under way) and M those under todo/.
func Stat(out io.Writer, q queue.Queue) error {
	c, err := q.Count()
	if err != nil {
		return err
	}
	return WriteCounts(out, c)
}

// WriteCounts writes c in qmail-qstat's format.
func WriteCounts(w io.Writer, c queue.Counts) error {
	_, err := fmt.Fprintf(w, "messages in queue: %d\nmessages in queue but not yet preprocessed: %d\n", c.Messages, c.Todo)
	return err
}
