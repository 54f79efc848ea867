package pop3d

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/pop3"
	"github.com/quail-mta/quail/pkg/quota"
)

const usage = `usage: qmail-pop3d MAILDIRNAME

Serves the Maildir MAILDIRNAME (relative to the current directory, the
home checkpassword changed to) to the POP3 client on descriptors 0 and 1,
after qmail-popup has logged it in. See qmail-pop3d(8).

`

// Run is qmail-pop3d's main: it returns the exit status. It refuses to
// run as root (as notqmail does): mail is served as its owner.
func Run(args []string, stderr io.Writer) int {
	flags := pflag.NewFlagSet("qmail-pop3d", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, usage); flags.PrintDefaults() }
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "qmail-pop3d: %v (see qmail-pop3d --help)\n", err)
		return 2
	}
	// The login succeeded, or this program would not run: tell
	// qmail-popup first, whatever happens to the mailbox.
	pop3.SignalLogin()

	timeout := pop3.DefaultTimeout
	if n, err := control.New(control.Home()).IntOr(pop3.TimeoutFile, int64(pop3.DefaultTimeout/time.Second)); err != nil {
		fmt.Fprintf(stderr, "qmail-pop3d: %v; using %v\n", err, timeout)
	} else if n > 0 {
		timeout = time.Duration(min(n, 1<<31)) * time.Second
	}
	user := os.Getenv("USER")
	conn := pop3.StdioWatchdog(timeout, func() {
		// Nothing is committed: the session ends as if the client had
		// gone, which is what qmail-pop3d does on SIGALRM.
		fmt.Fprintf(stderr, "qmail-pop3d: user=%q: timeout\n", user)
		os.Exit(1)
	})
	pop3.NoDelay(1)
	say := func(text string) { conn.Write([]byte(text + "\r\n")) }
	if os.Getuid() == 0 {
		say("-ERR [SYS/PERM] mail is not served as root")
		fmt.Fprintln(stderr, "qmail-pop3d: invoked as uid 0, terminating: run it through checkpassword, which switches to the mailbox's owner")
		return 1
	}
	if flags.NArg() != 1 {
		say(errNoMaildir)
		fmt.Fprintln(stderr, "qmail-pop3d: usage: qmail-pop3d MAILDIRNAME (see qmail-pop3d --help)")
		return 2
	}
	if err := os.Chdir(flags.Arg(0)); err != nil {
		say(errNoMaildir)
		fmt.Fprintf(stderr, "qmail-pop3d: user=%q: %v\n", user, err)
		return 1
	}
	cfg := Config{Maildir: ".", Timeout: timeout, Log: stderr, User: user}
	if dir, err := os.Getwd(); err == nil {
		root := control.Home()
		if domain, ok, err := quota.DomainOf(root, dir); err == nil && ok {
			cfg.Released = func(bytes, messages int64) error {
				return quota.Add(root, domain, -bytes, -messages)
			}
		}
	}
	err := Serve(conn, cfg)
	conn.Close()
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return 0
	default:
		fmt.Fprintf(stderr, "qmail-pop3d: user=%q: %v\n", user, err)
	}
	return 1
}
