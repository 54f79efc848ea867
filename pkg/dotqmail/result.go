package dotqmail

import (
	"fmt"
	"strconv"

	"github.com/quail-mta/quail/pkg/exitcode"
)

// Outcome is what a delivery program's exit means to qmail-local.
type Outcome int

// Outcomes of a delivery program.
const (
	Delivered     Outcome = iota // exit 0: go on with the next line
	DeliveredStop                // exit 99: success, and read no more lines
	Permanent                    // exit 100, 64, 65, 70, 76, 77, 78 or 112: qmail-local exits 100
	Temporary                    // any other exit: qmail-local exits 111
	Crashed                      // killed by a signal: temporary, ErrChildCrashed
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case DeliveredStop:
		return "delivered, stop"
	case Permanent:
		return "permanent failure"
	case Temporary:
		return "temporary failure"
	case Crashed:
		return "crashed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ProgramResult maps a program's exit status, or its death by a signal,
// to an Outcome. The permanent statuses are qmail's: 100, and the
// sysexits codes EX_USAGE 64, EX_DATAERR 65, EX_SOFTWARE 70,
// EX_PROTOCOL 76, EX_NOPERM 77, EX_CONFIG 78, plus 112.
func ProgramResult(exitCode int, signaled bool) Outcome {
	if signaled {
		return Crashed
	}
	switch exitCode {
	case 0:
		return Delivered
	case 99:
		return DeliveredStop
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return Permanent
	}
	return Temporary
}

// Failed reports whether qmail-local must stop and exit with ExitCode.
func (o Outcome) Failed() bool { return o >= Permanent }

// Stop reports whether the program asked, by exiting 99, that no
// further lines be read; the forwards seen so far are still made.
func (o Outcome) Stop() bool { return o == DeliveredStop }

// ExitCode is qmail-local's exit status after the outcome: 0 while
// delivering goes on, 100 or 111 on failure.
func (o Outcome) ExitCode() int {
	switch o {
	case Permanent:
		return exitcode.Permanent
	case Temporary, Crashed:
		return exitcode.Temporary
	}
	return exitcode.OK
}

// Text is qmail-local's own report of the outcome: ErrChildCrashed's
// text for Crashed, else "" (a program's output is the report of its
// own exit).
func (o Outcome) Text() string {
	if o == Crashed {
		return ErrChildCrashed.Error()
	}
	return ""
}

// Counts is what qmail-local did, for its success report.
type Counts struct {
	Files    int // Maildir and mbox lines
	Forwards int // forward lines
	Programs int // program lines
	QP       int // the pid of the queue program that took the forwards; 0 for none
}

// Report is qmail-local's success report: "did F+W+P\n", then
// "qp PID\n" when something was forwarded. qmail-send logs it.
func (c Counts) Report() string {
	s := "did " + strconv.Itoa(c.Files) + "+" + strconv.Itoa(c.Forwards) + "+" + strconv.Itoa(c.Programs) + "\n"
	if c.QP != 0 {
		s += "qp " + strconv.Itoa(c.QP) + "\n"
	}
	return s
}

// qmail-lspawn's own statuses that exitcode does not name yet (qmail's
// qlx.h).
const (
	qlxRoot     = 113
	qlxNoMem    = 119
	qlxExecSoft = 120
	qlxExecPW   = 121
	qlxExecHard = 126
)

// lspawnTexts are the reports qmail-lspawn gives instead of qmail-local's
// output for its own exit statuses and qmail-getpw's.
var lspawnTexts = map[int]string{
	exitcode.QlxUsage:   "ZInternal qmail-lspawn bug.\n",
	qlxRoot:             "ZNot allowed to perform deliveries as root.\n",
	exitcode.QlxNFS:     "ZNFS failure in qmail-local.\n",
	exitcode.QlxNoAlias: "ZUnable to find alias user!\n",
	exitcode.QlxCDB:     "ZTrouble reading users/cdb in qmail-lspawn.\n",
	exitcode.QlxSys:     "ZTemporary failure in qmail-lspawn.\n",
	qlxNoMem:            "ZOut of memory in qmail-lspawn.\n",
	qlxExecSoft:         "ZUnable to run qmail-local.\n",
	qlxExecPW:           "ZUnable to run qmail-getpw.\n",
	qlxExecHard:         "DUnable to run qmail-local.\n",
}

// LspawnReport is the report qmail-lspawn sends qmail-send for a
// finished qmail-local: K (delivered) for exit 0, Z (try again) for 111,
// 71, 74 and 75, D (bounce) for 100 and every other status, each
// followed by qmail-local's output up to its first NUL; qmail-lspawn's
// own statuses (112-121, 126) and a crash have fixed texts instead.
func LspawnReport(status int, crashed bool, output []byte) string {
	if crashed {
		return "Zqmail-local crashed.\n"
	}
	if t, ok := lspawnTexts[status]; ok {
		return t
	}
	prefix := "D"
	switch status {
	case exitcode.OK:
		prefix = "K"
	case exitcode.Temporary, 71, 74, 75:
		prefix = "Z"
	}
	for i, c := range output {
		if c == 0 {
			output = output[:i]
			break
		}
	}
	return prefix + string(output)
}
