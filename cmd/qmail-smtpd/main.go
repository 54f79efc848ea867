// Command qmail-smtpd serves one SMTP session on fd 0 and 1 (one after
// another when qmail-tcpserver -k hands it more). See
// docs/qmail-smtpd.8.md.
package main

import (
	"os"

	"github.com/quail-mta/quail/pkg/reuse"
	"github.com/quail-mta/quail/pkg/smtpd"
)

func main() {
	code := reuse.Serve(func() int {
		return smtpd.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	})
	smtpd.Shutdown()
	os.Exit(code)
}
