// Command qmail-lspawn speaks qmail's spawn protocol with qmail-send.
//
// Local delivery is not built yet (issue 4). Until it is, this is the
// smallest honest spawner: it defers every delivery with a report that
// says so, and the message stays queued and is retried on qmail's
// schedule; nothing is lost, nothing is pretended.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/spawn"
)

const report = "ZLocal delivery is not available in this quail build yet; the message stays queued. (#4.3.0)\n"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--help" || os.Args[1] == "-h") {
		os.Stderr.WriteString("usage: qmail-lspawn (started by qmail-start; spawn protocol on stdin/stdout)\n")
		os.Exit(0)
	}
	err := spawn.Serve(os.Stdin, os.Stdout, spawn.Limit, func(spawn.Command) string { return report })
	if err != nil {
		os.Exit(exitcode.Temporary)
	}
}
