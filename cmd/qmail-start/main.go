// Command qmail-start starts the delivery side (qmail-send, qmail-lspawn,
// qmail-rspawn, qmail-clean) as one supervised unit, as qmail's
// qmail-start: `qmail-start DEFAULTDELIVERY [LOGGER ...]`.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/start"
)

func main() {
	flags := pflag.NewFlagSet("qmail-start", pflag.ContinueOnError)
	flags.SetInterspersed(false)
	flags.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-start DEFAULTDELIVERY [LOGGER [ARG...]]\n\nStarts qmail-send, qmail-lspawn, qmail-rspawn and qmail-clean from $QMAILHOME/bin,\njoined by pipes; qmail-send's log goes to LOGGER's stdin, else to stdout.\nDEFAULTDELIVERY is the .qmail line for users without one, e.g. ./Maildir/")
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "qmail-start: %v\n", err)
		os.Exit(100)
	}
	if flags.NArg() < 1 {
		flags.Usage()
		os.Exit(100)
	}
	code, err := start.Run(start.Options{Root: control.Home(), DefaultDelivery: flags.Arg(0), Logger: flags.Args()[1:], Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
