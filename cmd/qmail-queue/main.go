// Command qmail-queue puts the message on fd 0 with the envelope on fd 1
// into the queue, as qmail's qmail-queue. See docs/qmail-queue.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/qmailqueue"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--help" || os.Args[1] == "-h") {
		os.Stderr.WriteString("usage: qmail-queue <message >&envelope\n\nReads a message on fd 0 and its envelope (F sender NUL, T recipient NUL ..., NUL)\non fd 1, queues it durably under $QMAILHOME/queue, and reports only through its\nexit status (0 queued; see qmail-queue(8) for the others).\n")
		os.Exit(0)
	}
	os.Exit(qmailqueue.Main())
}
