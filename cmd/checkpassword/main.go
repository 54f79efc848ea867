// Command checkpassword checks a virtual user's password, APOP digest or
// CRAM-MD5 response read from fd 3 and runs a program as that mailbox's
// owner: DJB's checkpassword interface. See docs/checkpassword.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/checkpw"
)

func main() {
	os.Exit(checkpw.Run(os.Args, os.NewFile(3, "fd 3"), os.Stderr))
}
