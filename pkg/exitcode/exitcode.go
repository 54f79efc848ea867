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

// qmail-queue (reference §1.4). 11 to 40 are permanent, every other
// non-zero status temporary.
const (
	QQAddrTooLong = 11  // envelope address too long
	QQPermRefused = 31  // a filter refuses the message for good
	QQNoMem       = 51  // out of memory
	QQTimeout     = 52  // timeout
	QQWrite       = 53  // write error or disk full
	QQRead        = 54  // cannot read the message or envelope
	QQConfig      = 55  // cannot read the configuration
	QQNetwork     = 56  // outbound network trouble
	QQHome        = 61  // trouble in $QMAILHOME
	QQQueueDir    = 62  // trouble in the queue directory
	QQPid         = 63  // trouble in queue/pid
	QQMess        = 64  // trouble in queue/mess
	QQIntd        = 65  // trouble in queue/intd
	QQTodo        = 66  // trouble in queue/todo
	QQTempRefused = 71  // a filter refuses the message for now
	QQConnTimeout = 72  // connection to a mail server timed out
	QQConnRefused = 73  // connection refused
	QQConnFailed  = 74  // connected, then communication failed
	QQBug         = 81  // internal bug
	QQCustom      = 82  // a hook's own reply text on fd 4 or fd 6
	QQEnvelope    = 91  // envelope format error
	QQExecFailed  = 120 // the injector could not run the queue program
)

// QQPermanent reports whether a qmail-queue exit status is permanent.
func QQPermanent(code int) bool { return code >= 11 && code <= 40 }
