// Command qmail-clean removes finished queue files on qmail-send's
// request (commands on stdin, one-byte answers on stdout).
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/clean"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/queue"
)

func main() {
	if len(os.Args) > 1 {
		os.Stderr.WriteString("usage: qmail-clean (started by qmail-start: todo/N or foop/N NUL-terminated on stdin)\n")
		if os.Args[1] == "--help" || os.Args[1] == "-h" {
			os.Exit(0)
		}
		os.Exit(exitcode.Permanent)
	}
	if err := clean.Run(queue.New(control.Home()), pollfd.Inherited(0, "qmail-send input"), pollfd.Inherited(1, "qmail-send output")); err != nil {
		os.Exit(exitcode.Temporary)
	}
}
