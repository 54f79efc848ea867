// Command qmail-send is the scheduler of the delivery side, started by
// qmail-start with its log on fd 0 and its helpers on fds 1 to 6.
package main

import (
	"io"
	"os"
	"strconv"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/pollfd"
	"github.com/quail-mta/quail/pkg/send"
)

func main() {
	if len(os.Args) > 1 {
		os.Stderr.WriteString("usage: qmail-send (started by qmail-start, with its log on fd 0, qmail-lspawn on fds 1/2,\nqmail-rspawn on 3/4 and qmail-clean on 5/6)\n")
		if os.Args[1] == "--help" || os.Args[1] == "-h" {
			os.Exit(0)
		}
		os.Exit(exitcode.Permanent)
	}
	// qmail-start's ready descriptor; not passed on to what we run.
	var ready io.Closer
	if fd, err := strconv.Atoi(os.Getenv(send.ReadyEnv)); err == nil && fd > 6 {
		ready = os.NewFile(uintptr(fd), "ready")
	}
	os.Unsetenv(send.ReadyEnv)
	err := send.Run(send.Config{
		Root:       control.Home(),
		Log:        os.NewFile(0, "log"),
		ToLocal:    pollfd.Inherited(1, "qmail-lspawn input"),
		FromLocal:  pollfd.Inherited(2, "qmail-lspawn output"),
		ToRemote:   pollfd.Inherited(3, "qmail-rspawn input"),
		FromRemote: pollfd.Inherited(4, "qmail-rspawn output"),
		ToClean:    pollfd.Inherited(5, "qmail-clean input"),
		FromClean:  pollfd.Inherited(6, "qmail-clean output"),
		Ready:      ready,
	})
	if err != nil {
		os.Exit(exitcode.Temporary)
	}
}
