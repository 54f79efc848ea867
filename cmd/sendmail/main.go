// Command sendmail is the sendmail-compatible front end to qmail-inject
// (also mailq, and newaliases, which it refuses). It injects in its own
// process. See docs/sendmail.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/inject"
)

func main() {
	os.Exit(inject.Sendmail(os.Args, inject.OS()))
}
