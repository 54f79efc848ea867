// Command qmail-qstat counts the messages in the queue, in qmail-qstat's
// format.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/qread"
	"github.com/quail-mta/quail/queue"
)

func main() {
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-qstat\n\nCounts the messages in $QMAILHOME/queue (default /var/qmail), and those\nnot yet preprocessed, as qmail's qmail-qstat does.")
	}
	pflag.Parse()
	if pflag.NArg() != 0 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	if err := qread.Stat(os.Stdout, queue.New(control.Home())); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-qstat: fatal: %v\n", err)
		os.Exit(exitcode.Temporary)
	}
}
