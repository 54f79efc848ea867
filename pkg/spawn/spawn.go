// Package spawn is qmail's spawn protocol between qmail-send and its
// delivery spawners, qmail-lspawn and qmail-rspawn (reference §2.7), and
// quail's extension of it for remote batches.
//
// At start the spawner writes one byte: how many deliveries it runs at
// once. Then qmail-send sends commands
//
//	slot byte, "S/N" NUL, sender NUL, recipient NUL
//
// (S/N is the message's path under queue/mess), and the spawner answers
// each, in any order, with
//
//	slot byte, report NUL
//
// where the report starts with K (delivered), Z (temporary failure) or D
// (permanent failure) and is followed by text for the log and bounces.
//
// # Batches (quail's extension)
//
// One command may carry several recipients of one message, so a remote
// spawner can deliver them in one SMTP transaction. qmail-send uses it
// only with a spawner that has said it can. At start it sends a probe,
// a command whose message field is "?batch" and whose sender and
// recipient are empty:
//
//	slot byte, "?batch" NUL, NUL, NUL
//
// A spawner that speaks batches answers "Kbatch MAX", MAX being the most
// recipients it takes in one command. Any other answer (qmail's spawners
// say "DInternal error: messid has nonnumerics. (#5.3.5)") means no, and
// qmail-send keeps to one recipient per command. After a yes, a command
// may be
//
//	slot byte, "*" COUNT NUL, "S/N" NUL, sender NUL, COUNT times (recipient NUL)
//
// with COUNT (decimal, 1 to MAX) recipients, and the spawner answers it
// with one report per recipient, in the command's order:
//
//	slot byte, "*" COUNT NUL, COUNT times (report NUL)
//
// or with a single plain report, which then applies to every recipient
// (for failures before any recipient was tried, such as a message file
// that cannot be opened). The one-recipient form stays valid throughout.
// qmail-lspawn is never probed: the local channel is qmail's protocol,
// byte for byte.
package spawn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Limit is the most slots a spawner offers (qmail's conf-spawn).
const Limit = 120

// MaxReport is how much of a report qmail-send keeps.
const MaxReport = 10000

// MaxBatch is the most recipients a batch may carry: the largest MAX a
// spawner may announce.
const MaxBatch = 1000

// ProbeMess is the message field of the probe for the batch extension.
const ProbeMess = "?batch"

// probeYes starts a spawner's answer to the probe.
const probeYes = "Kbatch "

// Command is one delivery request in qmail's form.
type Command struct {
	Slot      byte
	Mess      string // "S/N", relative to queue/mess
	Sender    string
	Recipient string
}

// Encode is the command's wire form.
func (c Command) Encode() []byte {
	b := []byte{c.Slot}
	b = append(b, c.Mess...)
	b = append(b, 0)
	b = append(b, c.Sender...)
	b = append(b, 0)
	b = append(b, c.Recipient...)
	return append(b, 0)
}

// Probe is the command that asks a spawner whether it takes batches.
func Probe(slot byte) Command { return Command{Slot: slot, Mess: ProbeMess} }

// ProbeAnswer is what a spawner that takes batches of up to max
// recipients answers to the probe.
func ProbeAnswer(max int) string { return probeYes + strconv.Itoa(max) }

// BatchSize reads a spawner's answer to the probe: the most recipients
// it takes in one command, or 1 when it does not speak batches.
func BatchSize(report string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(report, probeYes), "\n"))
	if !strings.HasPrefix(report, probeYes) || err != nil || n < 1 {
		return 1
	}
	return min(n, MaxBatch)
}

// ReadCommand reads one command in qmail's form; io.EOF at a clean end.
func ReadCommand(r *bufio.Reader) (Command, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return Command{}, err
	}
	var f [3]string
	for i := range f {
		if f[i], err = readField(r, "command"); err != nil {
			return Command{}, err
		}
	}
	return Command{Slot: slot, Mess: f[0], Sender: f[1], Recipient: f[2]}, nil
}

func readField(r *bufio.Reader, what string) (string, error) {
	s, err := r.ReadString(0)
	if err != nil {
		return "", fmt.Errorf("spawn %s cut short: %w", what, io.ErrUnexpectedEOF)
	}
	return s[:len(s)-1], nil
}

// Batch is a delivery of one message to one or more recipients.
type Batch struct {
	Slot       byte
	Mess       string // "S/N", relative to queue/mess
	Sender     string
	Recipients []string
}

// Encode is the batch's wire form: qmail's command for one recipient,
// the extension's for more.
func (b Batch) Encode() []byte {
	if len(b.Recipients) == 1 {
		return Command{Slot: b.Slot, Mess: b.Mess, Sender: b.Sender, Recipient: b.Recipients[0]}.Encode()
	}
	out := []byte{b.Slot, '*'}
	out = strconv.AppendInt(out, int64(len(b.Recipients)), 10)
	out = append(out, 0)
	out = append(out, b.Mess...)
	out = append(out, 0)
	out = append(out, b.Sender...)
	out = append(out, 0)
	for _, r := range b.Recipients {
		out = append(out, r...)
		out = append(out, 0)
	}
	return out
}

// ErrBadBatch means a batch command or report had a bad count: the
// stream cannot be followed any further.
var ErrBadBatch = errors.New("spawn batch with a bad count")

// request is one command as a batch-speaking spawner reads it.
type request struct {
	Batch
	probe bool // the probe: answer it, deliver nothing
	many  bool // the extension's form: answer with a batch report
}

// readRequest reads a command in either form, or the probe; io.EOF at a
// clean end.
func readRequest(r *bufio.Reader, max int) (request, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return request{}, err
	}
	first, err := readField(r, "command")
	if err != nil {
		return request{}, err
	}
	req := request{Batch: Batch{Slot: slot}}
	count := 1
	if n, ok := strings.CutPrefix(first, "*"); ok {
		count, err = strconv.Atoi(n)
		if err != nil || count < 1 || count > max {
			return request{}, fmt.Errorf("%w: %q", ErrBadBatch, truncate(first, 20))
		}
		req.many = true
		if first, err = readField(r, "command"); err != nil {
			return request{}, err
		}
	}
	req.Mess = first
	if req.Sender, err = readField(r, "command"); err != nil {
		return request{}, err
	}
	req.Recipients = make([]string, count)
	for i := range req.Recipients {
		if req.Recipients[i], err = readField(r, "command"); err != nil {
			return request{}, err
		}
	}
	req.probe = !req.many && req.Mess == ProbeMess && req.Sender == "" && req.Recipients[0] == ""
	return req, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Result is one answer: Report for qmail's form; for a batch answer,
// Reports has one report per recipient and Report is empty.
type Result struct {
	Slot    byte
	Report  string // K, Z or D, then text
	Reports []string
}

// ReadResult reads one answer in qmail's form, keeping at most MaxReport
// bytes of it.
func ReadResult(r *bufio.Reader) (Result, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return Result{}, err
	}
	rep, err := readReport(r)
	return Result{Slot: slot, Report: rep}, err
}

// ReadBatchResult reads one answer in either form, from a spawner that
// said it speaks batches. A batch answer may carry at most max reports.
func ReadBatchResult(r *bufio.Reader, max int) (Result, error) {
	res, err := ReadResult(r)
	if err != nil {
		return res, err
	}
	n, ok := strings.CutPrefix(res.Report, "*")
	if !ok {
		return res, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || count > max {
		return Result{}, fmt.Errorf("%w: %q", ErrBadBatch, truncate(res.Report, 20))
	}
	res.Report, res.Reports = "", make([]string, count)
	for i := range res.Reports {
		if res.Reports[i], err = readReport(r); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func readReport(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", fmt.Errorf("spawn report cut short: %w", io.ErrUnexpectedEOF)
		}
		if c == 0 {
			return string(b), nil
		}
		if len(b) < MaxReport {
			b = append(b, c)
		}
	}
}

// Encode is the answer's wire form; a NUL inside a text would end it
// early, so NULs become spaces.
func (r Result) Encode() []byte {
	b := []byte{r.Slot}
	if r.Reports == nil {
		return appendReport(b, r.Report)
	}
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(r.Reports)), 10)
	b = append(b, 0)
	for _, rep := range r.Reports {
		b = appendReport(b, rep)
	}
	return b
}

func appendReport(b []byte, rep string) []byte {
	b = append(b, bytes.ReplaceAll([]byte(rep), []byte{0}, []byte{' '})...)
	return append(b, 0)
}

// ErrBadReport means a report did not start with K, Z or D.
var ErrBadReport = errors.New("report mangled")

// Serve is a spawner's side of qmail's protocol: it announces limit,
// reads commands from in, runs deliver for each (concurrently, at most
// limit at once, as qmail-send never uses more slots than announced) and
// writes each report to out. It returns when in ends and every delivery
// has reported. It does not speak batches: a probe is delivered as the
// command it looks like.
func Serve(in io.Reader, out io.Writer, limit byte, deliver func(Command) string) error {
	return serve(in, out, limit, 0, func(b Batch) []string {
		return []string{deliver(Command{Slot: b.Slot, Mess: b.Mess, Sender: b.Sender, Recipient: b.Recipients[0]})}
	})
}

// ServeBatches is Serve for a spawner that also takes batches of up to
// max recipients (at most MaxBatch): it answers the probe, and gives
// deliver every command as a Batch (of one recipient for qmail's form).
// deliver returns one report per recipient, or one report for all.
func ServeBatches(in io.Reader, out io.Writer, limit byte, max int, deliver func(Batch) []string) error {
	return serve(in, out, limit, min(max, MaxBatch), deliver)
}

func serve(in io.Reader, out io.Writer, limit byte, max int, deliver func(Batch) []string) error {
	var mu sync.Mutex
	write := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := out.Write(b)
		return err
	}
	if err := write([]byte{limit}); err != nil {
		return err
	}
	br := bufio.NewReader(in)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var req request
		var err error
		if max > 0 {
			req, err = readRequest(br, max)
		} else {
			var c Command
			c, err = ReadCommand(br)
			req.Batch = Batch{Slot: c.Slot, Mess: c.Mess, Sender: c.Sender, Recipients: []string{c.Recipient}}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if req.probe {
			if err := write(Result{Slot: req.Slot, Report: ProbeAnswer(max)}.Encode()); err != nil {
				return err
			}
			continue
		}
		wg.Go(func() {
			reps := deliver(req.Batch)
			res := Result{Slot: req.Slot}
			switch {
			case len(reps) == 1:
				res.Report = reps[0]
			case req.many && len(reps) == len(req.Recipients):
				res.Reports = reps
			default:
				res.Report = "ZInternal error: the spawner gave the wrong number of reports. (#4.3.0)\n"
			}
			write(res.Encode())
		})
	}
}
