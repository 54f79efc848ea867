// Command qmail-local delivers one message to one local recipient as
// the recipient's .qmail file says, as qmail's qmail-local. The work is
// package local's; see docs/qmail-local.8.md.
//
// "qmail-local --worker" is the long-lived form qmail-lspawn starts, one
// per mailbox owner, taking deliveries on fd 3 (package localworker).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/local"
	"github.com/quail-mta/quail/pkg/localworker"
)

func main() {
	local.CloseOnExec()  // programs get fds 0-2 only, not what we were given
	syscall.Umask(0o077) // as qmail-local: what it creates is the user's alone
	if len(os.Args) == 2 && os.Args[1] == "--worker" {
		if err := localworker.ServeWorker(3, control.Home(), os.Environ()); err != nil {
			fmt.Fprintf(os.Stderr, "qmail-local: %v\n", err)
			os.Exit(exitcode.Temporary)
		}
		os.Exit(exitcode.OK)
	}
	req, err := local.ParseArgs(os.Args[1:])
	if errors.Is(err, local.ErrHelp) {
		fmt.Print(local.Usage)
		os.Exit(exitcode.OK)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-local: %v; %s\n", err, local.UsageLine)
		os.Exit(exitcode.Permanent)
	}
	req.Root = control.Home()
	req.Env = os.Environ()
	msg := os.Stdin
	if !req.DryRun {
		if msg, _, err = local.SeekableMessage(os.Stdin, ""); err != nil {
			fmt.Printf("Unable to read message: %v. (#4.3.0)\n", err)
			os.Exit(exitcode.Temporary)
		}
	}
	// TERM or INT stops the delivery cleanly: a running program's process
	// group is killed, and the exit is temporary.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := local.Deliver(ctx, req, msg, os.Stdout)
	stop()
	os.Exit(code)
}
