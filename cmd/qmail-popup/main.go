// Command qmail-popup answers the POP3 authorization state and runs a
// checkpassword program for each login. See docs/qmail-popup.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/pop3/popup"
)

func main() {
	os.Exit(popup.Run(os.Args, os.Environ(), os.Stderr))
}
