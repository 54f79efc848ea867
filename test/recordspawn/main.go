// Command recordspawn is a spawner for tests: it speaks qmail's spawn
// protocol with qmail-send and "delivers" by appending one line,
// "MESS RECIPIENT", to the file named by $RECORD (fsynced before the K
// report), so a test can count deliveries without local or remote
// delivery.
package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/quail-mta/quail/pkg/spawn"
)

func main() {
	f, err := os.OpenFile(os.Getenv("RECORD"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recordspawn:", err)
		os.Exit(111)
	}
	var mu sync.Mutex
	err = spawn.Serve(os.Stdin, os.Stdout, spawn.Limit, func(c spawn.Command) string {
		if c.Mess == spawn.ProbeMess {
			// qmail-send asks whether batches are understood: like
			// qmail's own spawners, this one does not.
			return "DInternal error: messid has nonnumerics\n"
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(f, "%s %s\n", c.Mess, c.Recipient); err != nil {
			return "Zrecordspawn: " + err.Error() + "\n"
		}
		if err := f.Sync(); err != nil {
			return "Zrecordspawn: " + err.Error() + "\n"
		}
		return "Krecorded\n"
	})
	if err != nil {
		os.Exit(111)
	}
}
