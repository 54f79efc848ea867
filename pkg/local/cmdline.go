package local

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/pflag"
)

// Usage is qmail-local's help text, printed by --help.
const Usage = UsageLine + `

Delivers the message on standard input to one local recipient, as its
.qmail file says (qmail-lspawn runs it as the recipient's user). Exits 0
when delivered, 100 on a permanent failure, 111 on a temporary one; the
report is printed on standard output.

  -n, --print     print the delivery instructions instead of delivering
  -N, --deliver   deliver (the default)
      --help      print this help

See qmail-local(8) and dot-qmail(5).
`

// UsageLine is the first line of Usage, which follows a usage error.
const UsageLine = "usage: qmail-local [ -nN ] user homedir local dash ext domain sender defaultdelivery"

// ErrHelp is returned by ParseArgs for --help (or -h).
var ErrHelp = pflag.ErrHelp

// ParseArgs reads qmail-local's command line (without the program name):
// options -n and -N (the last one given counts), then exactly eight
// operands, of which homedir must be absolute. As with qmail's getopt,
// options end at the first operand or at "--", so an operand may start
// with '-' (the dash operand "-", a sender "-x@y"). The Request it
// returns has no Root and no Env; the caller fills them in.
func ParseArgs(args []string) (Request, error) {
	var req Request
	fs := pflag.NewFlagSet("qmail-local", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.VarPF(modeFlag{&req.DryRun, true}, "print", "n", "print the delivery instructions instead of delivering").NoOptDefVal = "true"
	fs.VarPF(modeFlag{&req.DryRun, false}, "deliver", "N", "deliver (the default)").NoOptDefVal = "true"
	if err := fs.Parse(args); err != nil {
		return Request{}, err
	}
	ops := fs.Args()
	if len(ops) != 8 {
		return Request{}, fmt.Errorf("need exactly 8 operands (user homedir local dash ext domain sender defaultdelivery), got %d", len(ops))
	}
	req.User, req.Home, req.Local, req.Dash = ops[0], ops[1], ops[2], ops[3]
	req.Ext, req.Domain, req.Sender, req.DefaultDelivery = ops[4], ops[5], ops[6], ops[7]
	if !filepath.IsAbs(req.Home) {
		return Request{}, fmt.Errorf("homedir must be an absolute path, not %q", req.Home)
	}
	return req, nil
}

// modeFlag is -n or -N: each sets DryRun to its own value, so that the
// last one on the command line wins, as with qmail's getopt loop.
type modeFlag struct {
	dryRun *bool
	value  bool
}

func (m modeFlag) String() string {
	if m.dryRun == nil {
		return "false"
	}
	return strconv.FormatBool(*m.dryRun == m.value)
}

func (m modeFlag) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	if on {
		*m.dryRun = m.value
	}
	return nil
}

func (m modeFlag) Type() string { return "bool" }

// SeekableMessage returns the message to deliver from f, the standard
// input qmail-local was given. qmail-lspawn gives the queued message
// file itself, which is returned as it is. Anything else (a pipe, a
// terminal, a device) is first copied to a temporary file in tmpDir (""
// for the system's), removed at once so that it disappears when closed;
// copied then says so.
func SeekableMessage(f *os.File, tmpDir string) (msg *os.File, copied bool, err error) {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return f, false, nil
	}
	tmp, err := os.CreateTemp(tmpDir, "qmail-local-")
	if err != nil {
		return nil, false, fmt.Errorf("copy message to a temporary file: %w", err)
	}
	os.Remove(tmp.Name())
	if _, err := io.CopyBuffer(struct{ io.Writer }{tmp}, struct{ io.Reader }{f}, make([]byte, bufSize)); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("copy message to a temporary file: %w", err)
	}
	return tmp, true, nil
}
