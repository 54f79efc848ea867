// Command qmail-rspawn makes remote deliveries for qmail-send (spawn
// protocol on stdin/stdout), by SMTP, in its own process. See
// docs/qmail-lspawn.8.md.
package main

import (
	"fmt"
	"os"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/rspawn"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--help" || os.Args[1] == "-h") {
		os.Stderr.WriteString("usage: qmail-rspawn (started by qmail-start; spawn protocol on stdin/stdout)\n")
		os.Exit(exitcode.OK)
	}
	if err := rspawn.Run(control.Home(), pollfd.Inherited(0, "qmail-send input"), pollfd.Inherited(1, "qmail-send output")); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-rspawn: %v\n", err)
		os.Exit(exitcode.Temporary)
	}
}
