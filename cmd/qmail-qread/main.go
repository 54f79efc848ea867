// Command qmail-qread lists the messages in the queue and their
// recipients, in qmail-qread's format.
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
		fmt.Fprintln(os.Stderr, "usage: qmail-qread\n\nLists the messages in $QMAILHOME/queue (default /var/qmail) with their\nrecipients, as qmail's qmail-qread does. Messages not yet preprocessed are\nnot listed; qmail-qstat counts them.")
	}
	pflag.Parse()
	if pflag.NArg() != 0 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	if err := qread.Run(os.Stdout, os.Stderr, queue.New(control.Home())); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-qread: fatal: %v\n", err)
		os.Exit(exitcode.Temporary)
	}
}
