package inject

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/quail-mta/quail/pkg/exitcode"
)

// SendmailUsage is sendmail's synopsis.
const SendmailUsage = "usage: sendmail [-t] [-i] [-f sender] [-F name] [-bm | -bp | -bs] [-o option] [--] [recipient ...]"

const sendmailHelp = SendmailUsage + `

Sendmail-compatible front end to qmail-inject: reads a message on stdin
and queues it.

  -t          recipients: the header's To, Cc, Bcc (Resent- ones when
              resending) and the arguments; without -t, the arguments only
  -f sender   envelope sender; also the default From address
  -F name     personal name of the default From
  -bm         deliver mail (default)
  -bp         list the queue (runs qmail-qread; also as mailq)
  -bs         speak SMTP on stdin and stdout (runs qmail-smtpd)
  --          ends the options
  -i -oi -oem -odb -o... -e X -B X -p X -v -m -x -E -J
              accepted and ignored
  -N -R -r -q -O -C
              refused: not supported

See sendmail(8).
`

type sendmailAction int

const (
	actInject sendmailAction = iota // queue the message on stdin
	actMailq                        // -bp, mailq: run qmail-qread
	actSMTPD                        // -bs: run qmail-smtpd
)

// sendmailCmd is a sendmail command line, parsed.
type sendmailCmd struct {
	action    sendmailAction
	header    bool // -t
	sender    string
	senderSet bool // -f
	name      string
	nameSet   bool // -F
	rcpts     []string
}

// sendmailOptions is qmail's option string vimte:f:p:o:B:F:EJxb: as a
// table.
var sendmailOptions = map[byte]optKind{
	'v': optFlag, 'i': optFlag, 'm': optFlag, 't': optFlag, 'x': optFlag,
	'E': optRestOfWord, 'J': optRestOfWord,
	'e': optArg, 'f': optArg, 'p': optArg, 'o': optArg, 'B': optArg, 'F': optArg, 'b': optArg,
}

// unsupported are sendmail options that qmail refuses too, with what to
// say about each.
var unsupported = map[string]string{
	"-N": "DSN notifications are not supported",
	"-R": "DSN return options are not supported",
	"-r": "use -f to set the envelope sender",
	"-q": "qmail-send runs the queue by itself",
	"-O": "settings are the files in $QMAILHOME/control",
	"-C": "settings are the files in $QMAILHOME/control",
}

// usageError is a command line sendmail does not take.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseSendmail reads sendmail's command line; name is the program's
// base name (mailq lists the queue).
func parseSendmail(name string, args []string) (sendmailCmd, error) {
	var cmd sendmailCmd
	rcpts, err := getopt(args, sendmailOptions, func(c byte, arg string) error {
		switch c {
		case 't':
			cmd.header = true
		case 'f':
			cmd.sender, cmd.senderSet = arg, true
		case 'F':
			cmd.name, cmd.nameSet = arg, true
		case 'b':
			switch arg {
			case "m":
				cmd.action = actInject
			case "p":
				cmd.action = actMailq
			case "s":
				cmd.action = actSMTPD
			default:
				return &usageError{fmt.Sprintf("mode -b%s is not supported (only -bm, -bp, -bs)", arg)}
			}
		}
		return nil // the rest are accepted and ignored, as in qmail
	})
	var oe *optError
	switch {
	case errors.As(err, &oe) && !oe.missing && unsupported[oe.opt] != "":
		return cmd, &usageError{fmt.Sprintf("option %s is not supported: %s", oe.opt, unsupported[oe.opt])}
	case err != nil:
		return cmd, err
	}
	cmd.rcpts = rcpts
	if name == "mailq" {
		cmd.action = actMailq
	}
	return cmd, nil
}

// Sendmail is the sendmail program (also mailq and newaliases, by
// args[0]). It returns the exit status; for -bp and -bs it does not
// return unless the program cannot be run.
func Sendmail(args []string, sys System) int {
	name := "sendmail"
	if len(args) > 0 {
		name = filepath.Base(args[0])
		args = args[1:]
	}
	if name == "newaliases" {
		fmt.Fprintln(sys.Stderr, "sendmail: fatal: please use fastforward/newaliases instead")
		return exitcode.Permanent
	}
	cmd, err := parseSendmail(name, args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(sys.Stdout, sendmailHelp)
		return exitcode.OK
	}
	if err != nil {
		fmt.Fprintf(sys.Stderr, "sendmail: %v; %s\n", err, SendmailUsage)
		return exitcode.Permanent
	}
	switch cmd.action {
	case actMailq:
		return execProgram(sys, "qmail-qread", sys.Environ())
	case actSMTPD:
		return execProgram(sys, "qmail-smtpd", smtpdEnv(sys))
	}
	opts := Options{Mode: ArgsOnly, Sender: cmd.sender, SenderSet: cmd.senderSet, Recipients: cmd.rcpts}
	if cmd.header {
		opts.Mode = HeaderAndArgs
	}
	sys.Getenv = cmd.getenv(sys.Getenv)
	return Inject(opts, sys)
}

// getenv is the environment qmail-inject sees under sendmail. As qmail's
// sendmail does, -f makes its address the default From (QMAILUSER,
// QMAILHOST) and drops the personal name and From host of the
// environment; -F then sets the name. In qmail -f lost the -F name; here
// -F always counts. A null sender (-f ” or -f '<>') changes no From.
func (cmd sendmailCmd) getenv(base func(string) string) func(string) string {
	over := map[string]string{}
	if s := strings.TrimSuffix(strings.TrimPrefix(cmd.sender, "<"), ">"); cmd.senderSet && s != "" {
		for _, k := range []string{"QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"} {
			over[k] = ""
		}
		over["QMAILUSER"] = s
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			over["QMAILUSER"], over["QMAILHOST"] = s[:at], s[at+1:]
		}
	}
	if cmd.nameSet {
		for _, k := range []string{"QMAILNAME", "MAILNAME", "NAME"} {
			over[k] = cmd.name
		}
	}
	return func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return base(k)
	}
}

// smtpdEnv is the environment for sendmail -bs. When PROTO is unset it
// poses as a TCP connection from localhost allowed to relay, as qmail's
// sendmail does, but it does not set DATABYTES=0: in quail the size
// limit holds for mail from every door.
func smtpdEnv(sys System) []string {
	env := sys.Environ()
	if sys.Getenv("PROTO") != "" {
		return env
	}
	for _, kv := range [][2]string{
		{"RELAYCLIENT", ""},
		{"PROTO", "TCP"},
		{"TCPLOCALIP", "127.0.0.1"},
		{"TCPLOCALHOST", "localhost"},
		{"TCPREMOTEIP", "127.0.0.1"},
		{"TCPREMOTEHOST", "localhost"},
		{"TCPREMOTEINFO", "sendmail-bs"},
	} {
		env = setenv(env, kv[0], kv[1])
	}
	return env
}

// setenv sets key in an environment list, replacing any earlier value.
func setenv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// execProgram replaces sendmail with $QMAILHOME/bin/NAME, run from
// $QMAILHOME as qmail's sendmail runs it.
func execProgram(sys System, name string, env []string) int {
	if err := os.Chdir(sys.Root); err != nil {
		fmt.Fprintf(sys.Stderr, "sendmail: fatal: unable to switch to qmail home directory %s: %v\n", sys.Root, err)
		return exitcode.Temporary
	}
	path := filepath.Join(sys.Root, "bin", name)
	err := sys.Exec(path, []string{path}, env)
	fmt.Fprintf(sys.Stderr, "sendmail: fatal: unable to run %s: %v\n", path, err)
	return exitcode.Temporary
}
