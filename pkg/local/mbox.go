package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/dotqmail"
)

// errSlowLock is qmail-local's report when an mbox stays locked.
var errSlowLock = tempFailure("File has been locked for 30 seconds straight. (#4.3.0)")

// mbox appends the message to the mbox file of a line not ending in '/',
// as qmail-local does: open for appending (created 0600 if missing),
// lock with flock, remember where the file ends, write the From_ line,
// Return-Path and Delivered-To, then the message with ">" before every
// line matching ^>*From , a final newline if it lacks one, and an empty
// line; then fsync. On any failure after the lock, the file is cut back
// to where it ended, so no partial message stays in it.
func (d *delivery) mbox(arg string) error {
	f, err := os.OpenFile(d.path(arg), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return tempFailure("Unable to open " + arg + ": " + dotqmail.SysText(err) + ". (#4.2.1)")
	}
	defer f.Close()
	locked, err := lockExclusive(d.ctx, f, d.opt.lockWait)
	if err != nil {
		return err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return writeFailure(arg, err)
	}
	undo := func() {
		if locked { // unlocked, the end may be someone else's
			f.Truncate(end)
		}
	}

	msg := d.message()
	w := bufio.NewWriterSize(f, bufSize)
	w.WriteString(dotqmail.UFLine(d.req.Sender, d.args.Now))
	w.WriteString(d.rpline)
	w.WriteString(d.dtline)
	if err := quoteFrom(w, bufio.NewReaderSize(msg, bufSize)); err != nil {
		undo()
		if msg.err != nil {
			return d.readFailure(msg.err)
		}
		return writeFailure(arg, err)
	}
	err = w.WriteByte('\n')
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		undo()
		return writeFailure(arg, err)
	}
	return nil
}

func writeFailure(arg string, err error) error {
	return tempFailure("Unable to write " + arg + ": " + dotqmail.SysText(err) + ". (#4.3.0)")
}

// quoteFrom copies the message in r to w line by line, writing '>' before
// every line that matches ^>*From (qmail's gfrom) and ending the last
// line with '\n' when it has none. Lines of any length pass through the
// reader's buffer without being held whole: a run of '>' at the start of
// a line is counted, not stored. The first error, of reading or of
// writing, is returned.
func quoteFrom(w *bufio.Writer, r *bufio.Reader) error {
	for {
		// The start of a line: count its '>'s, then see what follows.
		var quotes int64
		for {
			c, err := r.ReadByte()
			if err == io.EOF {
				if quotes > 0 {
					writeQuotes(w, quotes)
					return w.WriteByte('\n')
				}
				return nil
			}
			if err != nil {
				return err
			}
			if c != '>' {
				r.UnreadByte()
				break
			}
			quotes++
		}
		if next, _ := r.Peek(5); bytes.Equal(next, []byte("From ")) {
			w.WriteByte('>')
		}
		writeQuotes(w, quotes)
		// The rest of the line, a buffer at a time.
		for {
			chunk, err := r.ReadSlice('\n')
			if _, werr := w.Write(chunk); werr != nil {
				return werr
			}
			if err == nil {
				break // next line
			}
			if err == io.EOF {
				return w.WriteByte('\n') // the last line lacked its newline
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return err
			}
		}
	}
}

func writeQuotes(w *bufio.Writer, n int64) {
	for ; n > 0; n-- {
		w.WriteByte('>')
	}
}

// lockExclusive takes an exclusive flock on f, waiting at most limit
// (then errSlowLock) or until ctx is done. It polls rather than blocks,
// so that a wait can be abandoned. As in qmail-local, a file that cannot
// be locked at all (flock fails for another reason than the lock being
// held: a file system without locks) is written unlocked: locked is then
// false.
func lockExclusive(ctx context.Context, f *os.File, limit time.Duration) (locked bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for {
		var ferr error
		if err := rc.Control(func(fd uintptr) {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
		}); err != nil {
			return false, nil
		}
		switch {
		case ferr == nil:
			return true, nil
		case errors.Is(ferr, syscall.EINTR):
			continue
		case !errors.Is(ferr, syscall.EWOULDBLOCK):
			return false, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, errSlowLock
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, interrupted(ctx)
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}
