// Command qmail-getpw finds the system account that takes mail for a
// local part, as qmail's qmail-getpw: it prints
// user\0uid\0gid\0home\0dash\0ext\0 for qmail-lspawn.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/users"
)

func main() {
	pflag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-getpw LOCAL\n\nPrints user\\0uid\\0gid\\0home\\0dash\\0ext\\0 for the account that takes mail for LOCAL.")
	}
	pflag.Parse()
	if pflag.NArg() != 1 {
		pflag.Usage()
		os.Exit(exitcode.Permanent)
	}
	e, err := users.Getpw(users.System{}, pflag.Arg(0), privsep.Alias)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-getpw: %v\n", err)
		if errors.Is(err, users.ErrNoAlias) {
			os.Exit(exitcode.QlxNoAlias)
		}
		os.Exit(exitcode.QlxSys)
	}
	os.Stdout.Write(e.Format())
}
