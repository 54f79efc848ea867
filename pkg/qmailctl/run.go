package qmailctl

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/run"
)

func runFlags(f *pflag.FlagSet) {
	f.String("smtp", "", "serve SMTP (MX) on `ADDR`, e.g. 0.0.0.0:25 or [::1]:25")
	f.String("submission", "", "serve submission (AUTH required) on `ADDR`, e.g. :587")
	f.String("smtps", "", "serve SMTP over implicit TLS on `ADDR`, e.g. :465 (needs control/servercert.pem)")
	f.String("pop3", "", "serve POP3 on `ADDR`, e.g. :110")
	f.String("tcpserver", "", "`PROGRAM` that launches one process per connection (default ROOT/bin/qmail-tcpserver; ucspi-tcp's tcpserver works too)")
	f.Duration("grace", run.DefaultGrace, "how long sessions in progress may go on once the listeners stop")
}

func runRun(s IO, root string, flags *pflag.FlagSet, _ []string) error {
	o := run.Options{Root: root, Out: s.Stdout}
	for _, service := range []string{run.SMTP, run.Submission, run.SMTPS, run.POP3} {
		if addr, _ := flags.GetString(service); addr != "" {
			o.Listeners = append(o.Listeners, run.Listener{Service: service, Addr: addr})
		}
	}
	o.TCPServer, _ = flags.GetString("tcpserver")
	o.Grace, _ = flags.GetDuration("grace")
	if o.Grace <= 0 {
		return usagef("--grace %v: want a positive duration such as 10s", o.Grace)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGALRM)
	defer signal.Stop(sigs)
	o.Signals = sigs
	return run.Run(o)
}
