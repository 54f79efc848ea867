package queue

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/quail-mta/quail/pkg/exitcode"
)

// Envelope is a message's sender and recipients.
type Envelope struct {
	Sender     string
	Recipients []string
}

// envReaders keeps ReadEnvelope's buffer from one message to the next: a
// qmail-queue serving qmail-smtpd would otherwise fault in a fresh page
// for every envelope.
var envReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// ReadEnvelope reads the qmail-queue envelope protocol: "F" sender NUL,
// "T" recipient NUL for each recipient, then a NUL. Errors carry
// qmail-queue's exit status: 91 for a format error, 11 for an address
// over MaxAddress bytes, 54 for a short read.
func ReadEnvelope(r io.Reader) (Envelope, error) {
	br := envReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		envReaders.Put(br)
	}()
	var env Envelope
	first := true
	for {
		c, err := br.ReadByte()
		if err != nil {
			return Envelope{}, qerr(exitcode.QQRead, "read envelope", err)
		}
		switch {
		case first && c != 'F':
			return Envelope{}, qerr(exitcode.QQEnvelope, "envelope does not start with F", nil)
		case !first && c == 0:
			return env, nil
		case !first && c != 'T':
			return Envelope{}, qerr(exitcode.QQEnvelope, "envelope record is neither T nor the final NUL", nil)
		}
		addr, err := readAddress(br)
		if err != nil {
			return Envelope{}, err
		}
		if first {
			env.Sender = addr
		} else {
			env.Recipients = append(env.Recipients, addr)
		}
		first = false
	}
}

// readAddress reads up to a NUL, refusing more than MaxAddress bytes
// without holding more than that in memory.
func readAddress(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", qerr(exitcode.QQRead, "read envelope", err)
		}
		if c == 0 {
			return string(b), nil
		}
		if len(b) == MaxAddress {
			return "", qerr(exitcode.QQAddrTooLong, "envelope address too long", nil)
		}
		b = append(b, c)
	}
}

// Encode writes env in the qmail-queue protocol, for injectors.
func (env Envelope) Encode() []byte {
	var b bytes.Buffer
	b.WriteByte('F')
	b.WriteString(env.Sender)
	b.WriteByte(0)
	for _, r := range env.Recipients {
		b.WriteByte('T')
		b.WriteString(r)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return b.Bytes()
}

// Todo is the content of intd/N and todo/N: "u" uid, "p" pid, "F"
// sender, "T" recipients, each ended by NUL (the protocol's final NUL is
// not stored).
func Todo(uid, pid int, env Envelope) []byte {
	b := []byte{'u'}
	b = strconv.AppendInt(b, int64(uid), 10)
	b = append(b, 0, 'p')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, 0)
	enc := env.Encode()
	return append(b, enc[:len(enc)-1]...)
}

// Record is one NUL-terminated record of a todo, info, local or remote
// file: its type byte and the rest.
type Record struct {
	Type byte
	Data string
	Off  int64 // offset of the type byte in the file, for done-marking
}

// ErrTruncated means a queue file does not end with a NUL.
var ErrTruncated = errors.New("queue file does not end with NUL")

// ParseRecords splits a queue file into its records.
func ParseRecords(data []byte) ([]Record, error) {
	var out []Record
	off := 0
	for off < len(data) {
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			return out, ErrTruncated
		}
		if end == 0 {
			return out, errors.New("empty record in queue file")
		}
		out = append(out, Record{Type: data[off], Data: string(data[off+1 : off+end]), Off: int64(off)})
		off += end + 1
	}
	return out, nil
}
