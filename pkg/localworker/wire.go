package localworker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
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
func sendFD(sock int, data []byte, f *os.File) error {
	return unix.Sendmsg(sock, data, unix.UnixRights(int(f.Fd())), nil, 0)
}

// recvFD receives one packet and the file sent with it, if any.
func recvFD(sock int, buf, oob []byte) ([]byte, *os.File, error) {
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC) // programs must not inherit it
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, ErrClosed
	}
	var file *os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, m := range msgs {
				fds, err := unix.ParseUnixRights(&m)
				if err != nil {
					continue
				}
				for i, fd := range fds {
					if i == 0 && file == nil {
						file = os.NewFile(uintptr(fd), "message")
					} else {
						unix.Close(fd)
					}
				}
			}
		}
	}
	return buf[:n], file, nil
}

// ErrClosed means the other end of the worker socket is gone.
var ErrClosed = errors.New("worker socket closed")

// ErrLost means a worker ended while a delivery it had been sent was in
// flight.
var ErrLost = errors.New("worker ended during the delivery")
