package local

import (
	"errors"

	"github.com/quail-mta/quail/pkg/maildir"
)

// The texts qmail-local reports for Maildir failures; all temporary.
var (
	errMaildirMissing = tempFailure("Unable to chdir to maildir. (#4.2.1)")
	errMaildirTemp    = tempFailure("Temporary error on maildir delivery. (#4.3.0)")
	errMaildirRead    = tempFailure("Unable to read message. (#4.3.0)")
)

// maildir delivers into the Maildir of a line ending in '/': the
// Return-Path and Delivered-To lines, then the message byte for byte
// (pkg/maildir: tmp/, fsync, link into new/, fsync new/).
func (d *delivery) maildir(arg string) error {
	prefix := make([]byte, 0, len(d.rpline)+len(d.dtline))
	prefix = append(append(prefix, d.rpline...), d.dtline...)
	_, err := maildir.Deliver(d.path(arg), d.message(), prefix)
	if err == nil {
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
