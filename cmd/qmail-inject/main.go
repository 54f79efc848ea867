// Command qmail-inject reads a message on stdin, completes its header as
// qmail's qmail-inject does and queues it. See docs/qmail-inject.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/inject"
)

func main() {
	os.Exit(inject.Run(os.Args[1:], inject.OS()))
}
