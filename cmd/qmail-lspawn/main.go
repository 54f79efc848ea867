// Command qmail-lspawn runs local deliveries for qmail-send: it finds who
// takes each recipient and has a long-lived qmail-local worker running as
// that mailbox's owner deliver it. See docs/qmail-lspawn.8.md.
package main

import (
	"fmt"
	"os"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/lspawn"
	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/recipient"
	"github.com/quail-mta/quail/pkg/users"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "--help" || os.Args[1] == "-h" {
		fmt.Fprintln(os.Stderr, "usage: qmail-lspawn DEFAULTDELIVERY (started by qmail-start; spawn protocol on stdin/stdout)")
		if len(os.Args) == 2 {
			os.Exit(exitcode.OK)
		}
		os.Exit(exitcode.Permanent)
	}
	root := control.Home()
	err := lspawn.Run(lspawn.Config{
		Root:            root,
		DefaultDelivery: os.Args[1],
		Resolver:        &recipient.Resolver{Root: root, Passwd: users.System{}, Owner: recipient.VirtualOwner, SingleUser: !privsep.Root()},
		Worker:          lspawn.DefaultWorker(root),
		Env:             os.Environ(),
	}, pollfd.Inherited(0, "qmail-send input"), pollfd.Inherited(1, "qmail-send output"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-lspawn: %v\n", err)
		os.Exit(exitcode.Temporary)
	}
}
