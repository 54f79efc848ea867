// Command qmail-remote delivers the message on stdin to RECIPIENT... at
// HOST by SMTP and writes qmail's result protocol on stdout. See
// docs/qmail-remote.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/remote"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--help" || os.Args[1] == "-h") {
		os.Stderr.WriteString("usage: qmail-remote HOST SENDER RECIPIENT... (message on stdin; result protocol on stdout)\n")
		os.Exit(0)
	}
	os.Exit(remote.Main(os.Args[1:], os.Stdin, os.Stdout, control.Home()))
}
