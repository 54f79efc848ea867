// Package pop3 is the POP3 wire format shared by qmail-popup (package
// pop3/popup, the AUTHORIZATION state) and qmail-pop3d (package
// pop3/pop3d, the TRANSACTION and UPDATE states): reading command lines,
// splitting them the way qmail does, sending a message as a multi-line
// response, the size that response has, and the client connection on
// descriptors 0 and 1.
package pop3

import (
	"bytes"
	"time"
)

// MaxLine is the longest command line read, CRLF included. RFC 2449 4
// allows 255 octets; APOP with a long address and a 256-byte password
// (the longest quail accepts) still fit in this.
const MaxLine = 1024

// DefaultTimeout is how long either program waits for the client to send
// a command or take a reply: qmail's 1200 seconds.
const DefaultTimeout = 1200 * time.Second

// TimeoutFile is the control file that overrides DefaultTimeout.
const TimeoutFile = "timeoutpop3"

// Texts shared by both states, as qmail writes them.
const (
	OK        = "+OK "
	ErrSyntax = "-ERR syntax error"
	// ErrTooLong is quail's: qmail read lines of any length.
	ErrTooLong = "-ERR command line too long"
)

// ParseCommand splits a command line (without its line end) as qmail's
// commands() does: the verb runs to the first space and is matched
// without regard to ASCII case, and the argument is the rest of the line
// with leading spaces removed. The verb is returned with a-z made A-Z
// and every other byte kept (Unicode case folding would make "uſer",
// with a long s, read as USER).
func ParseCommand(line []byte) (verb string, arg []byte) {
	v, rest, _ := bytes.Cut(line, []byte{' '})
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	up := []byte(string(v))
	for i, c := range up {
		if 'a' <= c && c <= 'z' {
			up[i] = c - 'a' + 'A'
		}
	}
	return string(up), rest
}

// HasControl reports whether b holds a byte below 0x20 (NUL and tab
// included) or DEL. Such a byte in a login or password would let one
// name read as another once passed on, so both states refuse it.
func HasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// ParseNumber reads the decimal number at the start of arg, as qmail's
// scan_ulong: digits up to the first other byte. n is -1 when arg does
// not start with a digit, and saturates at 1<<31 for longer numbers. rest
// is what follows the digits.
func ParseNumber(arg []byte) (n int64, rest []byte) {
	i := 0
	for i < len(arg) && '0' <= arg[i] && arg[i] <= '9' {
		if n < 1<<31 {
			n = n*10 + int64(arg[i]-'0')
		}
		i++
	}
	if i == 0 {
		return -1, arg
	}
	return min(n, 1<<31), arg[i:]
}
