package local

import (
	"errors"
	"io"

	"github.com/quail-mta/quail/pkg/dotqmail"
	"github.com/quail-mta/quail/pkg/qq"
	"github.com/quail-mta/quail/queue"
)

// forward queues the message once for all the forward targets, as
// qmail-local does after every other line succeeded: the Delivered-To
// line, then the message as it came (no Return-Path), with the envelope
// sender NEWSENDER. The queue program is $QMAILQUEUE or bin/qmail-queue
// (pkg/qq), so a forward passes the content scanner like any other
// injection. It returns the queue program's pid for the "qp" report.
func (d *delivery) forward(targets []string) (qp int, err error) {
	inj, err := qq.Start(d.req.Root)
	if err != nil {
		return 0, forwardFailure(err)
	}
	qp = inj.Pid()
	// A write error is remembered by inj and reported by Finish through
	// the queue program's exit status; only a read error is ours.
	io.WriteString(inj, d.dtline)
	msg := d.message()
	io.CopyBuffer(inj, msg, make([]byte, bufSize))
	if msg.err != nil {
		inj.Abort()
		return qp, d.readFailure(msg.err)
	}
	if err := inj.Finish(queue.Envelope{Sender: d.args.NewSender, Recipients: targets}); err != nil {
		return qp, forwardFailure(err)
	}
	return qp, nil
}

// forwardFailure is qmail-local's report of a queue failure:
// "Unable to forward message: " and the queue program's text, permanent
// when the queue program's refusal is.
func forwardFailure(err error) error {
	var qe *qq.Error
	if errors.As(err, &qe) {
		return dotqmail.Failure("Unable to forward message: "+qe.Text+".", qe.Permanent)
	}
	return tempFailure("Unable to forward message: " + err.Error() + ".")
}
