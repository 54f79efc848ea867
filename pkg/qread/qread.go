// Package qread is qmail-qread and qmail-qstat: it prints the queue in
// their formats, byte for byte, so scripts written for qmail's tools read
// quail's output.
package qread

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/quail-mta/quail/pkg/maildate"
	"github.com/quail-mta/quail/queue"
)

// Run prints every preprocessed message of q to out in qmail-qread's
// format (see WriteMessage). As in qmail-qread, messages still only in
// todo/ are not shown (qmail-qstat counts them). A message that cannot be
// read gets a line "warning: trouble with #ID: why" on errOut (qmail
// wrote these to its output; quail keeps that clean). The error is one
// that stopped the listing: an unreadable queue directory, or out failing.
func Run(out, errOut io.Writer, q queue.Queue) error {
	bw := bufio.NewWriter(out)
	err := q.Scan(func(m *queue.Message) error {
		if m.Err != nil {
			fmt.Fprintf(errOut, "qmail-qread: warning: trouble with #%d: %v\n", m.ID, m.Err)
			return nil
		}
		if !m.Info {
			return nil
		}
		if err := WriteMessage(bw, m); err != nil {
			return err
		}
		if m.RecipientsErr != nil {
			fmt.Fprintf(errOut, "qmail-qread: warning: trouble with #%d: %v\n", m.ID, m.RecipientsErr)
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// WriteMessage writes one message as qmail-qread does: a line
//
//	<date> GMT  #<id>  <size>  <<sender>> [ bouncing]
//
// (the birth in qmail's date format without the zone, always UTC; two
// spaces between fields; a space after the sender's ">", and " bouncing"
// after that when failures wait to be bounced), then one line per
// recipient, local ones first: "\tlocal\t<addr>" or "\tremote\t<addr>",
// with "  done" in front once delivered or given up on. Bytes outside
// printable ASCII in the first line and in addresses become "_".
func WriteMessage(w io.Writer, m *queue.Message) error {
	var b []byte
	b = append(b, strings.TrimSuffix(maildate.Format(m.Birth), " -0000")...)
	b = append(b, " GMT  #"...)
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, "  "...)
	b = strconv.AppendInt(b, m.Size, 10)
	b = append(b, "  <"...)
	b = append(b, m.Sender...)
	b = append(b, "> "...)
	if m.Bouncing {
		b = append(b, " bouncing"...)
	}
	safe(b)
	b = append(b, '\n')
	for _, r := range m.Recipients {
		if r.Done {
			b = append(b, "  done"...)
		}
		switch r.Channel {
		case queue.Local:
			b = append(b, "\tlocal\t"...)
		case queue.Remote:
			b = append(b, "\tremote\t"...)
		default:
			continue // not sorted yet: qmail-qread never shows these
		}
		start := len(b)
		b = append(b, r.Addr...)
		safe(b[start:])
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// safe replaces what qmail-qread would not print as it is.
func safe(b []byte) {
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
}
