// Command qmail-pop3d serves one Maildir to a POP3 client that
// qmail-popup and checkpassword have logged in. See docs/qmail-pop3d.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/pop3/pop3d"
)

func main() {
	os.Exit(pop3d.Run(os.Args, os.Stderr))
}
