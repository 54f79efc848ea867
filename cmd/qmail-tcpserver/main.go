// Command qmail-tcpserver accepts TCP connections and runs a program for
// each, as ucspi-tcp's tcpserver: `qmail-tcpserver [opts] host port
// program [arg...]`. See docs/qmail-tcpserver.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/tcpserver"
)

func main() {
	os.Exit(tcpserver.Main(os.Args[1:], os.Stdout, os.Stderr))
}
