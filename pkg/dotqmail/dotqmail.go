// Package dotqmail is the pure core of qmail-local: which .qmail file
// applies to a recipient (Find), what its lines ask for (Parse), the
// environment given to delivery programs (Env), loop detection
// (Looping), the meaning of a program's exit status (ProgramResult), and
// the texts qmail-local and qmail-lspawn report (Counts.Report,
// LspawnReport). It spawns nothing and delivers nothing; the qmail-local
// program wires it to the Maildir and mbox writers, /bin/sh and the
// queue.
//
// qmail-local's order, which its caller keeps: CheckHome, then Looping
// (before anything else is read; not in -n mode), then Search, then
// NewSender, then Parse and the deliveries, top to bottom; forwards are
// queued last, in one injection, only after every other line succeeded.
//
// docs/dot-qmail.5.md is the user's description of the same rules,
// including quail's caps and its departures from qmail.
package dotqmail

import (
	"errors"
	"io/fs"
	"strconv"
	"syscall"

	"github.com/quail-mta/quail/pkg/exitcode"
)

// Caps on the work one delivery may cause. qmail had none.
const (
	// MaxSize is the largest .qmail file (or default delivery) quail
	// reads: 1 MiB is far beyond any hand-written file, and bounds the
	// memory one delivery takes.
	MaxSize = 1 << 20
	// MaxLines is the most lines a .qmail file may have, comments and
	// blank lines included: 10,000 lines is far beyond hand-written
	// files, and stops a runaway generated file before it starts
	// thousands of programs. Bigger lists belong in a list manager.
	MaxLines = 10000
	// MaxHeader is how much of a message's header Looping reads. Past
	// it, the message is taken as not looping: qmail-local puts its
	// Delivered-To line on top of the message, so a real loop shows
	// within the first few lines of the header.
	MaxHeader = 1 << 20
)

// Error is a failure qmail-local reports: its Error text is the report
// exactly as qmail words it (a reply text, so it keeps qmail's case and
// the "(#x.y.z)" enhanced status code).
type Error struct {
	text string
	perm bool
	err  error // the cause, if any
}

func (e *Error) Error() string { return e.text }

// Unwrap returns the system error behind the failure, if any.
func (e *Error) Unwrap() error { return e.err }

// Temporary reports whether delivery should be tried again later.
func (e *Error) Temporary() bool { return !e.perm }

// ExitCode is qmail-local's exit status for the failure: 100 permanent,
// 111 temporary.
func (e *Error) ExitCode() int {
	if e.perm {
		return exitcode.Permanent
	}
	return exitcode.Temporary
}

func temp(text string) *Error { return &Error{text: text} }
func perm(text string) *Error { return &Error{text: text, perm: true} }

// Failure is a delivery failure worded by the caller (qmail-local's other
// texts), permanent or temporary.
func Failure(text string, permanent bool) *Error { return &Error{text: text, perm: permanent} }

// Failures with qmail's texts. Compare with errors.Is.
var (
	ErrHomeWritable    = temp("Uh-oh: home directory is writable. (#4.7.0)")
	ErrHomeSticky      = temp("Home directory is sticky: user is editing his .qmail file. (#4.2.1)")
	ErrWritable        = temp("Uh-oh: .qmail file is writable. (#4.7.0)")
	ErrNoMailbox       = perm("Sorry, no mailbox here by that name. (#5.1.1)")
	ErrFirstBlank      = temp("Uh-oh: first line of .qmail file is blank. (#4.2.1)")
	ErrFileForwardOnly = temp("Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")
	ErrProgForwardOnly = temp("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
	ErrLooping         = perm("This message is looping: it already has my Delivered-To line. (#5.4.6)")
	ErrChildCrashed    = temp("Aack, child crashed. (#4.3.0)")
)

// quail's own failures, worded in qmail's style. They are temporary, like
// every other fault in a .qmail file: the owner can mend it while the
// message waits in the queue.
var (
	ErrTooLarge     = temp("Uh-oh: .qmail file is larger than " + strconv.Itoa(MaxSize) + " bytes. (#4.2.1)")
	ErrTooManyLines = temp("Uh-oh: .qmail file has more than " + strconv.Itoa(MaxLines) + " lines. (#4.2.1)")
	ErrNUL          = temp("Uh-oh: .qmail file contains a NUL byte. (#4.2.1)")
)

// sysText is the system's words for err, without the operation and path
// that Go's errors carry.
// SysText is the system error behind err, as qmail words it in reports
// (the errno text, without the path).
func SysText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
