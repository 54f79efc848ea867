// Package exitcode holds the exit statuses that quail's programs share
// with qmail's: other programs read them, so they are an interface.
package exitcode

// Generic statuses of qmail's tools.
const (
	OK        = 0
	Permanent = 100 // permanent failure: do not retry
	Temporary = 111 // temporary failure: try again later
)

// checkpassword (DJB's interface).
const (
	CheckpwBad    = 1   // bad user name or password
	CheckpwMisuse = 2   // no program to run, malformed input on fd 3
	CheckpwTemp   = 111 // temporary trouble: the caller may try again
)

// qmail-lspawn's helpers (qmail's qlx.h): qmail-getpw exits with these.
const (
	QlxUsage   = 112
	QlxNFS     = 115
	QlxNoAlias = 116
	QlxCDB     = 117
	QlxSys     = 118
)
