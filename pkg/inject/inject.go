// Package inject is qmail-inject and sendmail: it reads a message on
// stdin, rewrites its header as qmail-inject does (qmail-header(5)),
// works out the envelope and hands the message to the queue program
// ($QMAILQUEUE, else bin/qmail-queue, through package qq).
//
// The header is held in memory (at most MaxHeader bytes); the body is
// streamed to the queue program as it is read and never held whole. The
// message is counted as it goes out, and one larger than databytes is
// refused with qmail-smtpd's 552 text and nothing is queued.
//
// sendmail is the same code behind sendmail's options: it runs in the
// same process, so a message costs one process creation, the queue
// program's. docs/qmail-inject.8.md and docs/sendmail.8.md list where
// quail departs from qmail and why.
package inject

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/queue"
)

// Mode says where the recipients come from (qmail-inject's -a -h -A -H).
type Mode int

const (
	ArgsElseHeader Mode = iota // -A, the default: the arguments if any, else the header
	ArgsOnly                   // -a: the arguments only
	HeaderOnly                 // -h: the header only
	HeaderAndArgs              // -H: the header and the arguments
)

// Options are an injection's command line.
type Options struct {
	Mode       Mode
	Sender     string // -f: envelope sender, beats Return-Path and the environment
	SenderSet  bool   // -f was given ("" is the null sender)
	Print      bool   // -n: print the message instead of queueing it
	Recipients []string
}

// Queue is a message on its way into the queue. Finish queues it with
// its envelope (nil: queued); Abort gives up and queues nothing.
type Queue interface {
	Write(p []byte) (int, error)
	Finish(env queue.Envelope) error
	Abort()
}

// System is what an injection uses outside its arguments; OS gives the
// real one, tests their own.
type System struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string // "" for unset
	Environ        func() []string
	Root           string // instance root, $QMAILHOME
	Now            time.Time
	Pid            int
	StartQueue     func(root string) (Queue, error)
	Exec           func(path string, argv, env []string) error // sendmail -bp, -bs
}

// OS is the System of a real process.
func OS() System {
	return System{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, Environ: os.Environ,
		Root: control.Home(), Now: time.Now(), Pid: os.Getpid(),
		StartQueue: startQQ,
		Exec:       syscall.Exec,
	}
}

// qqQueue is pkg/qq's injection as a Queue.
type qqQueue struct{ *qq.Injection }

func startQQ(root string) (Queue, error) {
	inj, err := qq.Start(root)
	if err != nil {
		return nil, err
	}
	return qqQueue{inj}, nil
}

// Usage is qmail-inject's synopsis.
const Usage = "usage: qmail-inject [-nNaAhH] [-f sender] [recipient ...]"

const injectHelp = Usage + `

Reads a message on stdin, completes its header (Date, Message-ID, From,
host names in addresses) and queues it with bin/qmail-queue, or
$QMAILQUEUE.

  -a         recipients: the arguments only
  -h         recipients: the header only (To, Cc, Bcc, Apparently-To;
             Resent-To, -Cc, -Bcc when the message has Resent- fields)
  -A         the arguments if any, else the header (default)
  -H         the header and the arguments
  -f sender  envelope sender (beats Return-Path and the environment)
  -n         print the message instead of queueing it
  -N         queue the message (default)

See qmail-inject(8).
`

// Run is the qmail-inject program: args without the program name. It
// returns the exit status.
func Run(args []string, sys System) int {
	var opts Options
	spec := map[byte]optKind{'a': optFlag, 'A': optFlag, 'h': optFlag, 'H': optFlag, 'n': optFlag, 'N': optFlag, 'f': optArg}
	rcpts, err := getopt(args, spec, func(c byte, arg string) error {
		switch c {
		case 'a':
			opts.Mode = ArgsOnly
		case 'A':
			opts.Mode = ArgsElseHeader
		case 'h':
			opts.Mode = HeaderOnly
		case 'H':
			opts.Mode = HeaderAndArgs
		case 'n':
			opts.Print = true
		case 'N':
			opts.Print = false
		case 'f':
			opts.Sender, opts.SenderSet = arg, true
		}
		return nil
	})
	if errors.Is(err, errHelp) {
		fmt.Fprint(sys.Stdout, injectHelp)
		return exitcode.OK
	}
	if err != nil {
		fmt.Fprintf(sys.Stderr, "qmail-inject: %v; %s\n", err, Usage)
		return exitcode.Permanent
	}
	opts.Recipients = rcpts
	return Inject(opts, sys)
}

// Inject injects the message on sys.Stdin and returns the exit status,
// having said what went wrong on sys.Stderr.
func Inject(opts Options, sys System) int {
	return report(inject(opts, sys), sys.Stderr)
}

// Error is a failure of an injection, worded for after
// "qmail-inject: fatal: ".
type Error struct {
	Text string
	Temp bool
}

func (e *Error) Error() string { return e.Text }

// Temporary reports whether trying again later may succeed.
func (e *Error) Temporary() bool { return e.Temp }

func permf(format string, args ...any) *Error {
	return &Error{Text: fmt.Sprintf(format, args...)}
}

func tempf(format string, args ...any) *Error {
	return &Error{Text: fmt.Sprintf(format, args...), Temp: true}
}

// ErrTooBig is a message larger than databytes. Its text is
// qmail-smtpd's reply, so that mail refused for size reads the same
// whichever way it came.
var ErrTooBig = errors.New("552 sorry, that message size exceeds my databytes limit (#5.3.4)")

// report prints err as qmail-inject does and returns the exit status:
// 100 when trying again cannot help, 111 when it may.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitcode.OK
	}
	if errors.Is(err, ErrTooBig) {
		// The one line without "fatal:": the 552 reply exactly as SMTP
		// clients get it.
		fmt.Fprintf(stderr, "qmail-inject: %v\n", err)
		return exitcode.Permanent
	}
	fmt.Fprintf(stderr, "qmail-inject: fatal: %v\n", err)
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && !t.Temporary() {
		return exitcode.Permanent
	}
	return exitcode.Temporary
}

// injection is one run of qmail-inject.
type injection struct {
	opts Options
	cfg  Config
	rw   rewriter
	sys  System
}

func inject(opts Options, sys System) error {
	br := bufio.NewReaderSize(sys.Stdin, 64<<10)
	err := injectFrom(br, opts, sys)
	if err != nil {
		// Read what the caller still sends, so that it learns of the
		// failure from the exit status rather than from SIGPIPE.
		io.Copy(io.Discard, br)
	}
	return err
}

func injectFrom(br *bufio.Reader, opts Options, sys System) error {
	cfg, err := LoadConfig(sys.Root, sys.Getenv, sys.Now, sys.Pid)
	if err != nil {
		return tempf("unable to read controls: %v", err)
	}
	in := &injection{opts: opts, cfg: cfg, sys: sys, rw: newRewriter(cfg.DefaultHost, cfg.DefaultDomain, cfg.PlusDomain)}
	var rcpts []string
	if in.argRecipients() {
		for _, a := range opts.Recipients {
			r, err := in.argAddress(a)
			if err != nil {
				return err
			}
			rcpts = append(rcpts, r)
		}
	}
	return in.run(br, rcpts)
}

// argRecipients reports whether the arguments are recipients.
func (in *injection) argRecipients() bool {
	switch in.opts.Mode {
	case ArgsOnly, HeaderAndArgs:
		return true
	case ArgsElseHeader:
		return len(in.opts.Recipients) > 0
	}
	return false
}

// headerRecipients reports whether the header's addresses are.
func (in *injection) headerRecipients() bool {
	switch in.opts.Mode {
	case HeaderOnly, HeaderAndArgs:
		return true
	case ArgsElseHeader:
		return len(in.opts.Recipients) == 0
	}
	return false
}

// argAddress rewrites an address from the command line.
func (in *injection) argAddress(a string) (string, error) {
	toks, err := argAddress(a)
	if err != nil {
		return "", permf("unable to parse address: %s", printable([]byte(a)))
	}
	nt, _ := in.rw.rewrite(toks)
	return unquote(nt), nil
}

// run reads, rewrites and queues (or prints) the message.
func (in *injection) run(br *bufio.Reader, rcpts []string) error {
	raw, err := readHeader(br)
	if err != nil {
		return err
	}
	h, err := in.rewriteHeader(raw)
	if err != nil {
		return err
	}
	if in.headerRecipients() {
		rcpts = append(rcpts, h.rcpts...)
	}
	env := queue.Envelope{Recipients: dedupe(rcpts)}
	if env.Sender, err = in.sender(h); err != nil {
		return err
	}
	for _, a := range append([]string{env.Sender}, env.Recipients...) {
		if strings.ContainsAny(a, "\x00\r\n") {
			return permf("unable to parse address: %s", printable([]byte(a)))
		}
	}
	head := h.out.Bytes()
	if raw.hasBody {
		head = append(head, '\n')
	}
	if in.opts.Print {
		return in.print(env.Sender, head, raw.body, br)
	}
	if len(env.Recipients) == 0 {
		return permf("no recipients")
	}
	limit := in.cfg.DataBytes
	if limit > 0 && int64(len(head)) > limit {
		return ErrTooBig
	}
	q, err := in.sys.StartQueue(in.sys.Root)
	if err != nil {
		return err
	}
	lw := &limitWriter{w: q, limit: limit}
	rerr, werr := in.copyMessage(lw, head, raw.body, br)
	switch {
	case errors.Is(werr, ErrTooBig):
		q.Abort()
		return ErrTooBig
	case rerr != nil:
		q.Abort()
		return tempf("read error: %v", rerr)
	}
	// After a write error the queue program's status says what happened.
	return q.Finish(env)
}

// copyMessage writes the header and the body to w, the body with its
// CRLF line ends made LF. It tells read errors from write errors.
func (in *injection) copyMessage(w io.Writer, head, first []byte, br *bufio.Reader) (rerr, werr error) {
	if _, err := w.Write(head); err != nil {
		return nil, err
	}
	cw := &crlfWriter{w: w}
	if _, err := cw.Write(first); err != nil {
		return nil, err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := cw.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, cw.Flush()
		}
		if err != nil {
			return err, nil
		}
	}
}

// print is -n: the message with a Return-Path field first, on stdout.
func (in *injection) print(sender string, head, first []byte, br *bufio.Reader) error {
	w := bufio.NewWriter(in.sys.Stdout)
	fmt.Fprintf(w, "Return-Path: <%s>\n", quoteAddress(sender))
	rerr, werr := in.copyMessage(w, head, first, br)
	if werr == nil {
		werr = w.Flush()
	}
	if rerr != nil {
		return tempf("read error: %v", rerr)
	}
	if werr != nil {
		return tempf("write error: %v", werr)
	}
	return nil
}

// sender is the envelope sender: -f, else the first Return-Path, else
// QMAILSUSER@QMAILSHOST, else the From defaults, with the VERP letters
// applied to the last two.
func (in *injection) sender(h *header) (string, error) {
	if in.opts.SenderSet {
		return in.argAddress(in.opts.Sender)
	}
	if h.returnPath != nil {
		return *h.returnPath, nil
	}
	user := in.cfg.SenderUser
	if in.cfg.Letters.VERPMessage {
		user += fmt.Sprintf("-%d.%d", in.cfg.Now.Unix(), in.cfg.Pid)
	}
	if in.cfg.Letters.VERPRecipient {
		user += "-"
	}
	host := in.cfg.SenderHost
	toks, err := mailbox(user, host, host != "")
	if err != nil {
		toks, _ = mailbox(user, "", false)
	}
	nt, _ := in.rw.rewrite(toks)
	s := unquote(nt)
	if in.cfg.Letters.VERPRecipient {
		s += "-@[]"
	}
	return s, nil
}

// quoteAddress quotes the local part of an envelope address when it
// needs it (qmail's quote2), for display.
func quoteAddress(a string) string {
	if a == "" {
		return ""
	}
	local, host := a, ""
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		local, host = a[:at], a[at:]
	}
	if localNeedsQuotes(local) {
		local = `"` + escape(local, `"\`) + `"`
	}
	return local + host
}

// dedupe drops empty and repeated recipients, keeping the first of each.
func dedupe(rcpts []string) []string {
	seen := make(map[string]bool, len(rcpts))
	out := rcpts[:0]
	for _, r := range rcpts {
		if r == "" || seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, r)
	}
	return out
}
