package local

import (
	"errors"

	"github.com/quail-mta/quail/pkg/maildir"
	"github.com/quail-mta/quail/pkg/quota"
)

// The texts qmail-local reports for Maildir failures; all temporary.
var (
	errMaildirMissing = tempFailure("Unable to chdir to maildir. (#4.2.1)")
	errMaildirTemp    = tempFailure("Temporary error on maildir delivery. (#4.3.0)")
	errMaildirRead    = tempFailure("Unable to read message. (#4.3.0)")
)

// maildir delivers into the Maildir of a line ending in '/': the
// Return-Path and Delivered-To lines, then the message byte for byte
// (pkg/maildir: tmp/, fsync, link into new/, fsync new/). A mailbox of
// a hosted domain is checked against the domain's quota first and
// charged after.
func (d *delivery) maildir(arg string) error {
	dir := d.path(arg)
	prefix := make([]byte, 0, len(d.rpline)+len(d.dtline))
	prefix = append(append(prefix, d.rpline...), d.dtline...)
	contract, err := d.checkQuota(dir, len(prefix))
	if err != nil {
		return err
	}
	delivered, err := maildir.Deliver(dir, d.message(), prefix)
	if err == nil {
		if contract != "" {
			// The message is delivered whatever this says; a count
			// lost here is corrected by the next recount.
			_ = quota.Add(d.req.Root, contract, delivered.Size, 1)
		}
		return nil
	}
	var me *maildir.Error
	switch {
	case d.ctx.Err() != nil:
		return interrupted(d.ctx)
	case !errors.As(err, &me):
		return errMaildirTemp
	case me.Kind == maildir.KindMissing:
		return errMaildirMissing
	case me.Kind == maildir.KindRead:
		return errMaildirRead
	}
	return errMaildirTemp
}
