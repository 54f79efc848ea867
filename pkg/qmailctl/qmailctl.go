// Package qmailctl is the admin command: it lays out an instance,
// installs the programs into it, runs it in the foreground, and manages
// its contracts (domains, quotas, users, passwords).
package qmailctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/instance"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `usage: qmailctl COMMAND [ARGS] [--root DIR]

  init [--hostname NAME]                 lay out an instance (again: add what is missing)
  install [--from DIR]                   copy the programs into ROOT/bin, with qmail's modes
  cert --self-signed [--hostname NAME] [--force]
                                         write control/servercert.pem for STARTTLS and SMTPS
  run [--smtp ADDR] [--submission ADDR] [--smtps ADDR] [--pop3 ADDR]
                                         run the instance in the foreground until Ctrl-C
  domain add DOMAIN [--quota SIZE] [--ip ADDR]...
  domain del DOMAIN [--force]
  domain list
  domain show DOMAIN
  user add USER@DOMAIN (--password-stdin | --password-file F) [--no-apop]
  user passwd USER@DOMAIN (--password-stdin | --password-file F) [--apop | --no-apop]
  user del USER@DOMAIN
  user list DOMAIN

Every command takes --root DIR, the instance root; default $QMAILHOME, else
/var/qmail. Passwords are never taken from the command line.
`

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

type command struct {
	name string
	run  func(s IO, root string, flags *pflag.FlagSet, args []string) error
	// flags adds the command's own flags.
	flags func(*pflag.FlagSet)
	nargs int // operands wanted
	args  string
}

var commands = map[string]command{
	"init":          {"init", runInit, initFlags, 0, ""},
	"install":       {"install", runInstall, installFlags, 0, ""},
	"cert":          {"cert", runCert, certFlags, 0, ""},
	"run":           {"run", runRun, runFlags, 0, ""},
	"domain add":    {"domain add", domainAdd, domainAddFlags, 1, "DOMAIN"},
	"domain del":    {"domain del", domainDel, domainDelFlags, 1, "DOMAIN"},
	"domain list":   {"domain list", domainList, nil, 0, ""},
	"domain show":   {"domain show", domainShow, nil, 1, "DOMAIN"},
	"user add":      {"user add", userAdd, userAddFlags, 1, "USER@DOMAIN"},
	"user passwd":   {"user passwd", userPasswd, userPasswdFlags, 1, "USER@DOMAIN"},
	"user del":      {"user del", userDel, nil, 1, "USER@DOMAIN"},
	"user list":     {"user list", userList, nil, 1, "DOMAIN"},
	"domain delete": {"domain del", domainDel, domainDelFlags, 1, "DOMAIN"},
	"user delete":   {"user del", userDel, nil, 1, "USER@DOMAIN"},
}

// Run runs qmailctl with args (without the program name) and returns the
// exit status.
func Run(args []string, s IO) int {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(s.Stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	name, rest := args[0], args[1:]
	if (name == "domain" || name == "user") && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(s.Stderr, "qmailctl: unknown command %q (see qmailctl --help)\n", name)
		return exitUsage
	}
	flags := pflag.NewFlagSet("qmailctl "+cmd.name, pflag.ContinueOnError)
	flags.SetOutput(s.Stderr)
	root := flags.String("root", "", "instance root (default $QMAILHOME, else "+control.DefaultHome+")")
	if cmd.flags != nil {
		cmd.flags(flags)
	}
	flags.Usage = func() {
		fmt.Fprintf(s.Stderr, "usage: qmailctl %s %s [flags]\n", cmd.name, cmd.args)
		flags.PrintDefaults()
	}
	if err := flags.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(s.Stderr, "qmailctl %s: %v (see qmailctl %s --help)\n", cmd.name, err, cmd.name)
		return exitUsage
	}
	if flags.NArg() != cmd.nargs {
		fmt.Fprintf(s.Stderr, "qmailctl %s: want %s (see qmailctl %s --help)\n", cmd.name, orNothing(cmd.args), cmd.name)
		return exitUsage
	}
	if *root == "" {
		*root = control.Home()
	}
	if err := cmd.run(s, *root, flags, flags.Args()); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(s.Stderr, "qmailctl %s: %v\n", cmd.name, err)
			return exitUsage
		}
		fmt.Fprintf(s.Stderr, "qmailctl %s: %v\n", cmd.name, err)
		return exitError
	}
	return exitOK
}

func orNothing(s string) string {
	if s == "" {
		return "no arguments"
	}
	return s
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func initFlags(f *pflag.FlagSet) {
	f.String("hostname", "", "the host's name, written to control/me (default: this machine's FQDN)")
}

func runInit(s IO, root string, flags *pflag.FlagSet, _ []string) error {
	host, _ := flags.GetString("hostname")
	return instance.Init(instance.Options{Root: root, Hostname: host, Log: s.Stdout})
}

func domainAddFlags(f *pflag.FlagSet) {
	f.String("quota", "", "disk quota for all the domain's mailboxes together, e.g. 500M or 2G (default: none)")
	f.StringArray("ip", nil, "an IP address of the contract (repeat for several)")
}

func domainAdd(s IO, root string, flags *pflag.FlagSet, args []string) error {
	d := contract.Domain{Name: args[0]}
	if q, _ := flags.GetString("quota"); q != "" {
		n, err := contract.ParseSize(q)
		if err != nil {
			return usagef("--quota: %v", err)
		}
		d.Quota = n
	}
	ips, _ := flags.GetStringArray("ip")
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return usagef("--ip %q: not an IP address", s)
		}
		d.IPs = append(d.IPs, ip.Unmap())
	}
	return contract.New(root).AddDomain(d)
}

func domainDelFlags(f *pflag.FlagSet) {
	f.Bool("force", false, "delete the domain even if it has users, with their mail")
}

func domainDel(s IO, root string, flags *pflag.FlagSet, args []string) error {
	force, _ := flags.GetBool("force")
	return contract.New(root).DelDomain(args[0], force)
}

func domainList(s IO, root string, _ *pflag.FlagSet, _ []string) error {
	names, err := contract.New(root).Domains()
	for _, n := range names {
		fmt.Fprintln(s.Stdout, n)
	}
	return err
}

func domainShow(s IO, root string, _ *pflag.FlagSet, args []string) error {
	info, err := contract.New(root).ShowDomain(args[0])
	if err != nil {
		return err
	}
	w := s.Stdout
	fmt.Fprintf(w, "domain: %s\n", info.Name)
	if info.Quota > 0 {
		fmt.Fprintf(w, "quota: %d\n", info.Quota)
	} else {
		fmt.Fprintln(w, "quota: none")
	}
	ips := make([]string, len(info.IPs))
	for i, ip := range info.IPs {
		ips[i] = ip.String()
	}
	if len(ips) == 0 {
		ips = []string{"none"}
	}
	fmt.Fprintf(w, "ips: %s\n", strings.Join(ips, " "))
	fmt.Fprintf(w, "users: %d\n", info.Users)
	fmt.Fprintf(w, "rcpthosts: %s\n", yesNo(info.Rcpthosts))
	fmt.Fprintf(w, "virtualdomains: %s\n", yesNo(info.Virtualdomains))
	if !info.Complete() {
		fmt.Fprintf(w, "warning: the domain is only partly set up: run qmailctl domain add %s to finish it\n", info.Name)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func passwordFlags(f *pflag.FlagSet) {
	f.Bool("password-stdin", false, "read the password from the first line of standard input")
	f.String("password-file", "", "read the password from the first line of file `F`")
}

func userAddFlags(f *pflag.FlagSet) {
	passwordFlags(f)
	f.Bool("no-apop", false, "keep no clear secret: the user can log in with USER/PASS and AUTH PLAIN/LOGIN only, not APOP or CRAM-MD5")
}

func userPasswdFlags(f *pflag.FlagSet) {
	passwordFlags(f)
	f.Bool("apop", false, "keep the secret APOP and CRAM-MD5 need")
	f.Bool("no-apop", false, "drop that secret")
}

// readPassword takes the password from stdin or a file, never argv,
// where every user of the host could read it in ps.
func readPassword(s IO, flags *pflag.FlagSet) ([]byte, error) {
	fromStdin, _ := flags.GetBool("password-stdin")
	file, _ := flags.GetString("password-file")
	var r io.Reader
	switch {
	case fromStdin && file != "":
		return nil, usagef("give --password-stdin or --password-file, not both")
	case fromStdin:
		r = s.Stdin
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	default:
		return nil, usagef("give the password with --password-stdin or --password-file F")
	}
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if err := contract.CheckPassword(line); err != nil {
		return nil, err
	}
	return line, nil
}

func userAdd(s IO, root string, flags *pflag.FlagSet, args []string) error {
	pw, err := readPassword(s, flags)
	if err != nil {
		return err
	}
	noAPOP, _ := flags.GetBool("no-apop")
	return contract.New(root).AddUser(args[0], pw, !noAPOP)
}

func userPasswd(s IO, root string, flags *pflag.FlagSet, args []string) error {
	apop, _ := flags.GetBool("apop")
	noAPOP, _ := flags.GetBool("no-apop")
	if apop && noAPOP {
		return usagef("give --apop or --no-apop, not both")
	}
	pw, err := readPassword(s, flags)
	if err != nil {
		return err
	}
	var keep *bool
	if apop || noAPOP {
		keep = &apop
	}
	return contract.New(root).SetPassword(args[0], pw, keep)
}

func userDel(s IO, root string, _ *pflag.FlagSet, args []string) error {
	return contract.New(root).DelUser(args[0])
}

func userList(s IO, root string, _ *pflag.FlagSet, args []string) error {
	names, err := contract.New(root).Users(args[0])
	if err != nil {
		return err
	}
	domain, _ := contract.NormalizeDomain(args[0])
	for _, n := range names {
		fmt.Fprintf(s.Stdout, "%s@%s\n", n, domain)
	}
	return nil
}
