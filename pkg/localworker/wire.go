package localworker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"github.com/quail-mta/quail/pkg/pollfd"
)

// The worker protocol runs over a SOCK_SEQPACKET socket pair, one packet
// per message, so no framing is needed:
//
//	request: id NUL user NUL home NUL local NUL dash NUL ext NUL domain
//	         NUL sender NUL defaultdelivery, with the open message file
//	         passed alongside (SCM_RIGHTS)
//	reply:   id NUL exit-status NUL output
//
// The worker answers requests in any order; the id matches them up.

// maxPacket bounds both directions: requests hold addresses (at most a
// few KB), replies a report cut to maxReport.
const maxPacket = 64 << 10

// maxReport is qmail-lspawn's limit on qmail-local's output.
const maxReport = 3000

const tooLong = "\nError report too long, sorry.\n"

type request struct {
	id                                                       uint64
	user, home, local, dash, ext, domain, sender, defaultDel string
}

func (r request) encode() []byte {
	f := []string{strconv.FormatUint(r.id, 10), r.user, r.home, r.local, r.dash, r.ext, r.domain, r.sender, r.defaultDel}
	return bytes.Join(toBytes(f), []byte{0})
}

func decodeRequest(b []byte) (request, error) {
	f := bytes.Split(b, []byte{0})
	if len(f) != 9 {
		return request{}, fmt.Errorf("worker request has %d fields, want 9", len(f))
	}
	id, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return request{}, errors.New("worker request id is not a number")
	}
	s := func(i int) string { return string(f[i]) }
	return request{id, s(1), s(2), s(3), s(4), s(5), s(6), s(7), s(8)}, nil
}

type reply struct {
	id     uint64
	status int
	output []byte
}

func (r reply) encode() []byte {
	out := r.output
	if len(out) > maxReport {
		out = append(out[:maxReport-len(tooLong)], tooLong...)
	}
	b := strconv.AppendUint(nil, r.id, 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, 0)
	return append(b, out...)
}

func decodeReply(b []byte) (reply, error) {
	f := bytes.SplitN(b, []byte{0}, 3)
	if len(f) != 3 {
		return reply{}, errors.New("worker reply malformed")
	}
	id, err1 := strconv.ParseUint(string(f[0]), 10, 64)
	status, err2 := strconv.Atoi(string(f[1]))
	if err1 != nil || err2 != nil {
		return reply{}, errors.New("worker reply malformed")
	}
	return reply{id, status, bytes.Clone(f[2])}, nil // the buffer is reused for the next packet
}

func toBytes(s []string) [][]byte {
	b := make([][]byte, len(s))
	for i := range s {
		b[i] = []byte(s[i])
	}
	return b
}

// sendFD sends one packet with an open file alongside.
func sendFD(ch *pollfd.Channel, data []byte, f *os.File) error {
	err := ch.Send(data, int(f.Fd()))
	runtime.KeepAlive(f) // its descriptor must stay open until it is sent
	return err
}

// recvFD receives one packet and the file sent with it, if any. The
// file is close-on-exec: delivery programs must not inherit it.
func recvFD(ch *pollfd.Channel, buf []byte) ([]byte, *os.File, error) {
	n, fds, err := ch.Receive(buf, 1)
	if err == io.EOF {
		return nil, nil, ErrClosed
	}
	if err != nil {
		return nil, nil, err
	}
	var file *os.File
	if len(fds) == 1 {
		file = os.NewFile(uintptr(fds[0]), "message")
	}
	return buf[:n], file, nil
}

// ErrClosed means the other end of the worker socket is gone.
var ErrClosed = errors.New("worker socket closed")

// ErrTooLarge is a request over maxPacket: addresses or a home directory
// far longer than any real one. The worker would take it for a malformed
// packet and end, so it is never sent.
var ErrTooLarge = errors.New("delivery request over 64 KB")

// ErrLost means a worker ended while a delivery it had been sent was in
// flight.
var ErrLost = errors.New("worker ended during the delivery")
