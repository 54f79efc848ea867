// Package remote is qmail-remote: it delivers one message to the SMTP
// servers of one domain and reports the outcome per recipient and for
// the message, in qmail-remote's output protocol.
//
// The steps are separate so each can be tested: LoadConfig reads the
// control files, Route finds the addresses to try (control/smtproutes,
// else MX, else A/AAAA), Deliver speaks SMTP to them, and WriteResult
// prints the result for qmail-rspawn; TCPTo is lock/tcpto, the table of
// addresses whose connects time out. docs/qmail-remote.8.md describes
// the behaviour an admin sees, and where it departs from qmail's.
package remote

import (
	"crypto/x509"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/control"
)

// Status is the verdict of one report.
type Status int

const (
	// Accepted: the recipient (r) or the message (K) was accepted.
	Accepted Status = iota
	// TempFail: try again later (s for a recipient, Z for the message).
	TempFail
	// PermFail: give up (h for a recipient, D for the message).
	PermFail
)

// Report is one outcome and its text. The text is qmail's: lines each
// ended by "\n", with the peer's reply after "Remote host said: ".
type Report struct {
	Status Status
	Text   string
}

// Temporary reports whether delivery should be tried again later.
func (r Report) Temporary() bool { return r.Status == TempFail }

// Result is the outcome of one delivery. Recipients holds the reports of
// a leading run of the recipients, in argument order (none when no
// recipient got an answer that stands); a recipient without a report
// shares the Message's verdict, and so does one whose report is a
// stand-in: the Message's status with no text, for a recipient that has
// no answer before one that has. Message applies to the Accepted ones.
type Result struct {
	Recipients []Report
	Message    Report
}

// Failure is an error that carries the report to give for it.
type Failure struct{ Report }

func (f *Failure) Error() string {
	return strings.ReplaceAll(strings.TrimSuffix(f.Text, "\n"), "\n", " ")
}

func tempFailure(text string) *Failure { return &Failure{Report{TempFail, text}} }
func permFailure(text string) *Failure { return &Failure{Report{PermFail, text}} }

// Result texts that do not come from a peer (reference §6.4, §6.2).
const (
	TextUsage        = "I (qmail-remote) was invoked improperly. (#5.3.5)\n"
	TextControl      = "Unable to read control files. (#4.3.0)\n"
	TextReadMessage  = "Unable to read message. (#4.3.0)\n"
	TextNoConnection = "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
)

// Failed is the Result for an error from LoadConfig or Route: the
// *Failure's own report, else "Unable to read control files".
func Failed(err error) Result {
	var f *Failure
	if errors.As(err, &f) {
		return Result{Message: f.Report}
	}
	return Result{Message: Report{TempFail, TextControl}}
}

// TLSPolicy says what Deliver does about STARTTLS.
type TLSPolicy int

const (
	// TLSOpportunistic uses STARTTLS when the peer offers it, without
	// checking its certificate (RFC 7435); plain text otherwise.
	TLSOpportunistic TLSPolicy = iota
	// TLSRequired delivers only over TLS with a certificate that
	// verifies for the target's host name (control/tlsrequired).
	TLSRequired
)

// Config is what Deliver needs besides the envelope and message.
type Config struct {
	Domain         string        // the recipient domain (qmail-remote's host operand)
	HeloHost       string        // our name in EHLO/HELO: control/helohost
	ConnectTimeout time.Duration // per connect: control/timeoutconnect
	Timeout        time.Duration // per read or write: control/timeoutremote
	Targets        []Target      // from Route, tried in order
	TLS            TLSPolicy
	// RootCAs verifies certificates under TLSRequired; nil: the system's.
	RootCAs *x509.CertPool
	// TCPTo is lock/tcpto, the addresses whose connects time out; nil:
	// none is skipped or recorded.
	TCPTo *TCPTo
}

// LoadConfig reads the control files for a delivery to domain: helohost,
// timeoutconnect, timeoutremote and tlsrequired. Targets is left empty
// (see Route).
func LoadConfig(ctl control.Dir, domain string) (Config, error) {
	cfg := Config{Domain: domain}
	var err error
	if cfg.HeloHost, err = ctl.String("helohost"); err != nil {
		return cfg, err
	}
	ct, err := ctl.Int("timeoutconnect")
	if err != nil {
		return cfg, err
	}
	to, err := ctl.Int("timeoutremote")
	if err != nil {
		return cfg, err
	}
	cfg.ConnectTimeout, cfg.Timeout = time.Duration(ct)*time.Second, time.Duration(to)*time.Second
	req, err := ctl.List("tlsrequired")
	if err != nil {
		return cfg, err
	}
	if TLSRequiredFor(req, domain) {
		cfg.TLS = TLSRequired
	}
	return cfg, nil
}

// TLSRequiredFor reports whether control/tlsrequired (its entries given)
// lists domain: an entry is a domain, ".suffix" for every domain below
// suffix, or "*" for all domains. Case does not matter.
func TLSRequiredFor(entries []string, domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "*", e == domain:
			return true
		case strings.HasPrefix(e, ".") && strings.HasSuffix(domain, e):
			return true
		}
	}
	return false
}

// WriteResult writes r in qmail-remote's output protocol: a letter (r, h
// or s) per recipient report, each followed by its text and a NUL, then
// K, Z or D, the message text and a NUL.
func WriteResult(w io.Writer, r Result) error {
	var b strings.Builder
	for _, rr := range r.Recipients {
		b.WriteByte("rsh"[rr.Status])
		b.WriteString(rr.Text)
		b.WriteByte(0)
	}
	b.WriteByte("KZD"[r.Message.Status])
	b.WriteString(r.Message.Text)
	b.WriteByte(0)
	_, err := io.WriteString(w, b.String())
	return err
}
