// Command qmail-tcpok empties lock/tcpto, so qmail-rspawn and
// qmail-remote try every remote address again. See docs/qmail-tcpok.8.md.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/remote"
)

func main() {
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-tcpok\n\nEmpties $QMAILHOME/queue/lock/tcpto (default /var/qmail), the table of remote\naddresses whose SMTP connects timed out, as qmail's qmail-tcpok does.")
	}
	pflag.Parse()
	if pflag.NArg() != 0 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	path := remote.TCPToPath(control.Home())
	if err := remote.CleanTCPTo(path); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-tcpok: fatal: unable to clear %s: %v\n", path, reason(err))
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
