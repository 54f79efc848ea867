// Command qmail-newu compiles $QMAILHOME/users/assign into users/cdb,
// byte for byte as qmail's qmail-newu, and installs it atomically.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/users"
)

func main() {
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-newu\n\nCompiles $QMAILHOME/users/assign (default /var/qmail) into users/cdb.")
	}
	pflag.Parse()
	if pflag.NArg() != 0 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	if err := users.Newu(control.Home()); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-newu: fatal: %v\n", err)
		os.Exit(exitcode.Temporary)
	}
}
