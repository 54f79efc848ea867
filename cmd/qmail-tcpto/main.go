// Command qmail-tcpto prints the addresses in lock/tcpto, the table of
// remote hosts whose connects timed out, in qmail-tcpto's format. See
// docs/qmail-tcpto.8.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/remote"
)

func main() {
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-tcpto\n\nPrints the remote addresses whose SMTP connects timed out, from\n$QMAILHOME/queue/lock/tcpto (default /var/qmail), as qmail's qmail-tcpto does.")
	}
	pflag.Parse()
	if pflag.NArg() != 0 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	path := remote.TCPToPath(control.Home())
	list, err := remote.ReadTCPTo(path)
	if err == nil {
		err = remote.PrintTCPTo(os.Stdout, list, time.Now())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-tcpto: fatal: unable to read %s: %v\n", path, reason(err))
		os.Exit(exitcode.Temporary)
	}
}

// reason drops the path from an *os.PathError: the message names it.
func reason(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
