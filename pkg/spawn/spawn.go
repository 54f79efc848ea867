// Package spawn is qmail's spawn protocol between qmail-send and its
// delivery spawners, qmail-lspawn and qmail-rspawn (reference §2.7).
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
package spawn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Limit is the most slots a spawner offers (qmail's conf-spawn).
const Limit = 120

// MaxReport is how much of a report qmail-send keeps.
const MaxReport = 10000

// Command is one delivery request.
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

// ReadCommand reads one command; io.EOF at a clean end.
func ReadCommand(r *bufio.Reader) (Command, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return Command{}, err
	}
	var f [3]string
	for i := range f {
		s, err := r.ReadString(0)
		if err != nil {
			return Command{}, fmt.Errorf("spawn command cut short: %w", io.ErrUnexpectedEOF)
		}
		f[i] = s[:len(s)-1]
	}
	return Command{Slot: slot, Mess: f[0], Sender: f[1], Recipient: f[2]}, nil
}

// Result is one report.
type Result struct {
	Slot   byte
	Report string // K, Z or D, then text
}

// ReadResult reads one report, keeping at most MaxReport bytes of it.
func ReadResult(r *bufio.Reader) (Result, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return Result{}, err
	}
	var b []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return Result{}, fmt.Errorf("spawn report cut short: %w", io.ErrUnexpectedEOF)
		}
		if c == 0 {
			return Result{Slot: slot, Report: string(b)}, nil
		}
		if len(b) < MaxReport {
			b = append(b, c)
		}
	}
}

// Encode is the report's wire form; a NUL inside the text would end it
// early, so NULs become spaces.
func (r Result) Encode() []byte {
	b := []byte{r.Slot}
	b = append(b, bytes.ReplaceAll([]byte(r.Report), []byte{0}, []byte{' '})...)
	return append(b, 0)
}

// ErrBadReport means a report did not start with K, Z or D.
var ErrBadReport = errors.New("report mangled")

// Serve is a spawner's side: it announces limit, reads commands from in,
// runs deliver for each (concurrently, at most limit at once, as
// qmail-send never uses more slots than announced) and writes each report
// to out. It returns when in ends and every delivery has reported.
func Serve(in io.Reader, out io.Writer, limit byte, deliver func(Command) string) error {
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
		cmd, err := ReadCommand(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		wg.Go(func() {
			write(Result{Slot: cmd.Slot, Report: deliver(cmd)}.Encode())
		})
	}
}
