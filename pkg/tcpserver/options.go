package tcpserver

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Options is one qmail-tcpserver command line. The zero value is not
// useful: start from Defaults, as ParseArgs does.
type Options struct {
	Host, Port string
	Program    []string // the program and its arguments

	Limit   int // -c: simultaneous connections
	Backlog int // -b: listen(2) backlog
	Reuse   int // -k: connections one program process may serve in turn; below 2, one each

	UID, GID int // -u, -g, -U: ids to switch to after binding; 0 keeps ours

	Rules        string // -x: tcprules database, "" for none
	AllowNoRules bool   // -X: a missing rules file allows instead of dropping

	RemoteHost  bool          // -h/-H: look up TCPREMOTEHOST
	Paranoid    bool          // -p/-P: the name must resolve back to the address
	RemoteInfo  bool          // -r/-R: ask the client's identd for TCPREMOTEINFO
	InfoTimeout time.Duration // -t

	LocalHost    string // -l: TCPLOCALHOST without a lookup
	HasLocalHost bool

	Banner        string // -B: written before the lookups
	NoDelay       bool   // -D: TCP_NODELAY
	KeepIPOptions bool   // -o: leave IP options (source routes) alone

	Verbosity int  // 0 (-q) nothing, 1 (-Q) errors, 2 (-v) every connection
	PrintPort bool // -1: print the bound port on stdout
}

// Verbosity levels, as tcpserver's -q, -Q and -v.
const (
	Quiet   = 0
	Errors  = 1
	Verbose = 2
)

// Defaults are tcpserver's defaults.
func Defaults() Options {
	return Options{
		Limit:       40,
		Backlog:     20,
		Reuse:       1,
		RemoteHost:  true,
		RemoteInfo:  true,
		InfoTimeout: 26 * time.Second,
		Verbosity:   Errors,
	}
}

// ErrHelp is returned by ParseArgs for --help, after the usage text.
var ErrHelp = pflag.ErrHelp

// Usage is the synopsis, as a one-line reminder on misuse.
const Usage = "usage: qmail-tcpserver [-1UXpPhHrRoOdDqQv] [-c limit] [-k n] [-x rules.cdb] [-B banner] [-g gid] [-u uid] [-b backlog] [-l localname] [-t timeout] host port program [arg...]"

const help = Usage + `

Accepts TCP connections on HOST (0 for every IPv4 address, :: for every
IPv6 and IPv4 address) and PORT (number or /etc/services name; 0 picks a
free port) and runs PROGRAM for each, with the connection on fd 0 and 1
and PROTO, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP,
TCPREMOTEPORT, TCPREMOTEHOST and TCPREMOTEINFO in its environment.
Options are tcpserver's (ucspi-tcp 0.88):

  -c N     at most N connections at once (default 40)
  -b N     listen backlog (default 20)
  -k N     let one PROGRAM process serve up to N connections in turn, for
           a program that speaks quail's reuse protocol (qmail-smtpd);
           default 1, a process per connection as in tcpserver
  -x CDB   follow the tcprules database CDB, re-read for every connection
  -X       with -x, allow connections when CDB does not exist
  -u UID   switch to numeric user id UID after binding
  -g GID   switch to numeric group id GID (and only that group) after binding
  -U       -u $UID -g $GID
  -h / -H  look up (default) / do not look up TCPREMOTEHOST
  -p / -P  drop TCPREMOTEHOST unless it resolves back / do not check (default)
  -r / -R  ask the client's identd (default) / do not, for TCPREMOTEINFO
  -t N     give up on identd after N seconds (default 26)
  -l NAME  TCPLOCALHOST is NAME, not looked up
  -B TEXT  write TEXT to the client before anything else
  -d / -D  leave Nagle's algorithm on (default) / set TCP_NODELAY
  -o / -O  keep / remove (default) IP options
  -v / -Q / -q  log every connection / errors only (default) / nothing
  -1       print the bound port number on stdout

Logs on stderr in tcpserver's format ("tcpserver: ..."). See
qmail-tcpserver(8).
`

// optFunc is a flag whose effect is a function, so that flags act in
// command-line order: "-H -h" looks the host up, as with getopt.
type optFunc func(string) error

func (f optFunc) String() string     { return "" }
func (f optFunc) Set(s string) error { return f(s) }
func (f optFunc) Type() string       { return "" }

// ParseArgs parses a command line (without the program name) as
// tcpserver's getopt does: single-letter options, bundled or not, up to
// HOST. getenv supplies $UID and $GID for -U. On --help it writes the
// usage to helpOut and returns ErrHelp.
func ParseArgs(args []string, getenv func(string) (string, bool), helpOut io.Writer) (Options, error) {
	o := Defaults()
	if helpOut == nil {
		helpOut = io.Discard
	}
	fs := pflag.NewFlagSet("qmail-tcpserver", pflag.ContinueOnError)
	fs.SetInterspersed(false) // HOST ends the options
	fs.SetOutput(io.Discard)
	fs.Usage = func() { io.WriteString(helpOut, help) }
	fs.SortFlags = false

	flag := func(short, long string, set func()) {
		f := fs.VarPF(optFunc(func(v string) error {
			if v != "true" {
				return fmt.Errorf("-%s takes no value", short)
			}
			set()
			return nil
		}), long, short, "")
		f.NoOptDefVal = "true"
	}
	value := func(short, long string, set func(string) error) {
		fs.VarP(optFunc(set), long, short, "")
	}

	flag("1", "print-port", func() { o.PrintPort = true })
	flag("X", "allow-missing-rules", func() { o.AllowNoRules = true })
	flag("h", "remote-host", func() { o.RemoteHost = true })
	flag("H", "no-remote-host", func() { o.RemoteHost = false })
	flag("p", "paranoid", func() { o.Paranoid = true })
	flag("P", "not-paranoid", func() { o.Paranoid = false })
	flag("r", "remote-info", func() { o.RemoteInfo = true })
	flag("R", "no-remote-info", func() { o.RemoteInfo = false })
	flag("o", "keep-ip-options", func() { o.KeepIPOptions = true })
	flag("O", "kill-ip-options", func() { o.KeepIPOptions = false })
	flag("d", "delay", func() { o.NoDelay = false })
	flag("D", "no-delay", func() { o.NoDelay = true })
	flag("q", "quiet", func() { o.Verbosity = Quiet })
	flag("Q", "errors", func() { o.Verbosity = Errors })
	flag("v", "verbose", func() { o.Verbosity = Verbose })

	var envErr error
	flag("U", "ids-from-env", func() {
		for _, id := range []struct {
			name string
			dst  *int
		}{{"GID", &o.GID}, {"UID", &o.UID}} {
			v, ok := getenv(id.name)
			if !ok {
				continue
			}
			n, err := parseID(v)
			if err != nil && envErr == nil {
				envErr = fmt.Errorf("-U: $%s=%q: %w", id.name, v, err)
			}
			*id.dst = n
		}
	})
	value("c", "limit", func(v string) (err error) {
		o.Limit, err = parseNumber(v, 1, 1<<20)
		return err
	})
	value("k", "reuse", func(v string) (err error) {
		o.Reuse, err = parseNumber(v, 0, 1<<20)
		return err
	})
	value("b", "backlog", func(v string) (err error) {
		o.Backlog, err = parseNumber(v, 0, 1<<20)
		return err
	})
	value("t", "info-timeout", func(v string) error {
		n, err := parseNumber(v, 0, 1<<20)
		o.InfoTimeout = time.Duration(n) * time.Second
		return err
	})
	value("u", "uid", func(v string) (err error) {
		o.UID, err = parseID(v)
		return err
	})
	value("g", "gid", func(v string) (err error) {
		o.GID, err = parseID(v)
		return err
	})
	value("x", "rules", func(v string) error {
		o.Rules = v
		return nil
	})
	value("B", "banner", func(v string) error {
		o.Banner = v
		return nil
	})
	value("l", "local-host", func(v string) error {
		o.LocalHost, o.HasLocalHost = v, true
		return nil
	})

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if envErr != nil {
		return o, envErr
	}
	rest := fs.Args()
	if len(rest) < 3 {
		return o, errors.New("need HOST PORT PROGRAM")
	}
	o.Host, o.Port, o.Program = rest[0], rest[1], rest[2:]
	return o, nil
}

// parseNumber accepts a decimal number in [min, max]. tcpserver took the
// leading digits of anything; a typo here should stop the server instead.
func parseNumber(v string, min, max int) (int, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || int(n) < min || int(n) > max {
		return 0, fmt.Errorf("want a number from %d to %d", min, max)
	}
	return int(n), nil
}

// parseID accepts a numeric user or group id; 0 means "do not switch",
// as in tcpserver.
func parseID(v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, errors.New("want a numeric id")
	}
	return int(n), nil
}
