// Package local is qmail-local as a function: one local delivery of one
// message to one recipient, following the recipient's .qmail file
// (Maildir, mbox, program and forward lines) with qmail-local's
// semantics, texts and exit codes.
//
// Deliver may run from many goroutines of one process at once (the
// long-lived qmail-lspawn worker calls it so): it changes no process-wide
// state (no chdir, no umask, no environment, no signal dispositions),
// works on absolute paths only, reads the message with ReadAt so that no
// shared file offset matters, and holds no message, header or line whole
// in memory whatever its size.
//
// The order is qmail-local's (reference §5, docs/dot-qmail.5.md): check
// the home directory; detect a loop (the message already carries this
// delivery's Delivered-To line); choose the .qmail file; work out the
// forwarding sender; parse the file; then run its lines top to bottom,
// stopping at the first failure, and queue the forwards last, in one
// injection, only when every other line succeeded.
//
// docs/qmail-local.8.md describes the program and quail's departures
// from qmail.
package local

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/dotqmail"
	"github.com/quail-mta/quail/pkg/exitcode"
)

// Request is one delivery: qmail-local's eight operands and what the
// caller provides around them.
type Request struct {
	// Root is the instance root ($QMAILHOME). Forwards are queued by
	// $QMAILQUEUE, else Root/bin/qmail-queue, started in Root.
	Root string

	// qmail-local's operands, as qmail-lspawn passes them.
	User            string // the account
	Home            string // its home directory: an absolute path
	Local           string // the whole local part, e.g. "joe-list"
	Dash            string // "" or "-"
	Ext             string // the extension, e.g. "list"
	Domain          string // the recipient's domain
	Sender          string // the envelope sender; "" for a bounce
	DefaultDelivery string // used when there is no .qmail file (dash "") or it is empty

	// Env is the environment delivery programs inherit, as NAME=value
	// strings; they get it plus the delivery's own variables (SENDER,
	// RECIPIENT, DTLINE, ...: dotqmail.Env), which take precedence.
	Env []string

	// DryRun is qmail-local -n: print the instructions of the .qmail
	// file instead of delivering, and read no message.
	DryRun bool
}

// Limits on one delivery.
const (
	// LockWait is how long an mbox delivery waits for the file's lock
	// before it defers (qmail-local's 30 second alarm).
	LockWait = 30 * time.Second
	// bufSize is the size of each buffer a delivery copies the message
	// through.
	bufSize = 32 << 10
)

// options are the parts of a delivery that tests change.
type options struct {
	lockWait time.Duration // LockWait
	noReopen bool          // give programs the message through a pipe, never a new descriptor on the file
}

// Deliver makes the delivery req describes and returns qmail-local's
// exit status: 0 done, 100 permanent failure (the message bounces), 111
// temporary failure (it stays queued and is retried).
//
// msg is the message as qmail-queue stored it, without the Return-Path
// and Delivered-To lines: a regular file open for reading. Deliver reads
// it only with ReadAt, from byte 0, so its offset does not matter and
// one file may be shared by concurrent deliveries. With DryRun it is not
// read and may be nil.
//
// out receives what qmail-local prints, which qmail-lspawn passes to
// qmail-send as the delivery report: the output of delivery programs,
// then on failure the reason, or on success "did F+W+P\n" (and
// "qp PID\n" after a forward).
//
// Cancelling ctx stops the delivery at the next step: a running
// program's process group is killed, an mbox lock wait or a copy of the
// message is abandoned, and Deliver returns 111. Lines already delivered
// stay delivered, as after any other temporary failure.
func Deliver(ctx context.Context, req Request, msg *os.File, out io.Writer) (exitCode int) {
	return deliver(ctx, req, msg, out, options{lockWait: LockWait})
}

func deliver(ctx context.Context, req Request, msg *os.File, out io.Writer, opt options) int {
	if out == nil {
		out = io.Discard
	}
	d := &delivery{ctx: ctx, req: req, msg: msg, out: out, opt: opt}
	if err := d.run(); err != nil {
		if text := err.Error(); text != "" {
			io.WriteString(out, text+"\n")
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return exitcode.Temporary
	}
	io.WriteString(out, d.counts.Report())
	return exitcode.OK
}

// delivery is the state of one Deliver call.
type delivery struct {
	ctx    context.Context
	req    Request
	msg    *os.File
	out    io.Writer
	opt    options
	args   dotqmail.Args // the recipient, for the environment and the header lines
	dtline string
	rpline string
	env    []string // for programs
	counts dotqmail.Counts
}

func (d *delivery) run() error {
	r := &d.req
	if !filepath.IsAbs(r.Home) {
		return tempFailure("Internal error: home directory " + r.Home + " is not an absolute path. (#4.3.0)")
	}
	if d.msg == nil && !r.DryRun {
		return tempFailure("Internal error: no message to deliver. (#4.3.0)")
	}
	if err := d.checkHome(); err != nil {
		return err
	}
	d.args = dotqmail.Args{
		User: r.User, Home: r.Home, Local: r.Local, Dash: r.Dash, Ext: r.Ext,
		Host: r.Domain, Sender: r.Sender, Now: time.Now(),
	}
	d.dtline = dotqmail.DTLine(r.Local, r.Domain)
	d.rpline = dotqmail.RPLine(r.Sender)

	if !r.DryRun {
		looping, err := dotqmail.Looping(d.message(), d.dtline)
		if err != nil {
			return err
		}
		if looping {
			return dotqmail.ErrLooping
		}
	}

	fsys := dotqmail.OSFS{}
	choice, err := dotqmail.Search(fsys, r.Home, r.Dash, r.Ext)
	if err != nil {
		return err
	}
	d.args.Default, d.args.HasDefault = choice.Default, choice.HasDefault
	if d.args.NewSender, err = dotqmail.NewSender(fsys, d.args); err != nil {
		return err
	}
	instructions, err := choice.Instructions(r.DefaultDelivery)
	if err != nil {
		return err
	}
	for _, in := range instructions {
		if in.Kind == dotqmail.Forward && in.Arg == "" {
			return errEmptyForward
		}
	}
	if r.DryRun {
		return d.show(instructions)
	}
	d.env = programEnv(r.Env, dotqmail.Env(d.args), d.args.HasDefault)
	return d.follow(instructions)
}

// checkHome does what qmail-local's chdir to the home directory and its
// checkhome do, without changing the working directory: the home must
// be a directory, neither writable by others nor sticky (in -n mode a
// sticky home only draws a warning).
func (d *delivery) checkHome() error {
	st, err := os.Stat(d.req.Home)
	if err == nil && !st.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return dotqmail.Failure("Unable to switch to "+d.req.Home+": "+dotqmail.SysText(err)+". (#4.3.0)", false)
	}
	err = dotqmail.CheckHome(dotqmail.OSFS{}, d.req.Home)
	if d.req.DryRun && errors.Is(err, dotqmail.ErrHomeSticky) {
		io.WriteString(d.out, "Warning: home directory is sticky.\n")
		return nil
	}
	return err
}

// show is qmail-local -n: one line per delivery the file asks for.
func (d *delivery) show(instructions []dotqmail.Instruction) error {
	for _, in := range instructions {
		d.count(in.Kind)
		io.WriteString(d.out, in.String()+"\n")
	}
	return nil
}

func (d *delivery) count(k dotqmail.Kind) {
	switch k {
	case dotqmail.Maildir, dotqmail.Mbox:
		d.counts.Files++
	case dotqmail.Program:
		d.counts.Programs++
	case dotqmail.Forward:
		d.counts.Forwards++
	}
}

// follow runs the instructions top to bottom, stopping at the first
// failure or after a program that exits 99, and then queues the forwards
// seen so far.
func (d *delivery) follow(instructions []dotqmail.Instruction) error {
	var targets []string
loop:
	for _, in := range instructions {
		if d.ctx.Err() != nil {
			return interrupted(d.ctx)
		}
		d.count(in.Kind)
		switch in.Kind {
		case dotqmail.Maildir:
			if err := d.maildir(in.Arg); err != nil {
				return err
			}
		case dotqmail.Mbox:
			if err := d.mbox(in.Arg); err != nil {
				return err
			}
		case dotqmail.Program:
			outcome, err := d.program(in.Arg)
			if err != nil {
				return err
			}
			if outcome.Stop() {
				break loop
			}
		case dotqmail.Forward:
			targets = append(targets, in.Arg)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	qp, err := d.forward(targets)
	d.counts.QP = qp
	return err
}

// path is where a file line points: absolute as written, or relative to
// the home directory. It is not cleaned, so ".." after a symbolic link
// means what it meant to qmail-local's chdir.
func (d *delivery) path(arg string) string {
	if arg[0] == '/' {
		return arg
	}
	home := d.req.Home
	if home[len(home)-1] != '/' {
		home += "/"
	}
	return home + arg
}

// message reads the message from its first byte with ReadAt, leaving the
// file's offset alone, and stops when ctx is done.
func (d *delivery) message() *readerCtx {
	return &readerCtx{ctx: d.ctx, r: io.NewSectionReader(d.msg, 0, math.MaxInt64)}
}

// readerCtx reads r until ctx is done, and remembers its read error, so
// that a failed copy can be told apart from a failed write.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *readerCtx) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// readFailure is qmail-local's report of an unreadable message, or of a
// delivery stopped by ctx.
func (d *delivery) readFailure(err error) error {
	if d.ctx.Err() != nil {
		return interrupted(d.ctx)
	}
	return dotqmail.Failure("Unable to read message: "+dotqmail.SysText(err)+". (#4.3.0)", false)
}

// programEnv is the environment of delivery programs: the inherited one,
// without a DEFAULT this delivery does not set, then the delivery's own
// variables (exec keeps the last of duplicate names).
func programEnv(inherited, own []string, hasDefault bool) []string {
	env := make([]string, 0, len(inherited)+len(own))
	for _, kv := range inherited {
		if !hasDefault && len(kv) >= 8 && kv[:8] == "DEFAULT=" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, own...)
}

// tempFailure is a temporary failure with qmail-local's wording.
func tempFailure(text string) *dotqmail.Error { return dotqmail.Failure(text, false) }

// errEmptyForward refuses a forward line with no address (a lone "&"),
// which qmail would have queued to the empty address. It is permanent,
// and found before anything is delivered.
var errEmptyForward = dotqmail.Failure("Sorry, .qmail file has a forward line without an address. (#5.1.3)", true)

// interrupted is the report of a delivery stopped by its context.
func interrupted(ctx context.Context) error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = context.Canceled
	}
	return tempFailure("Delivery interrupted: " + cause.Error() + ". (#4.3.0)")
}
