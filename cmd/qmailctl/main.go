// Command qmailctl lays out a quail instance, installs its programs,
// runs it in the foreground, and manages its domains, users and
// passwords. See docs/qmailctl.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/qmailctl"
)

func main() {
	os.Exit(qmailctl.Run(os.Args[1:], qmailctl.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}
