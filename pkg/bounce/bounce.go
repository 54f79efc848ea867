// Package bounce builds the failure notices qmail-send sends when it
// gives up on recipients, and reads and writes the bounce/N files where
// it gathers their reports.
//
// A bounce is an RFC 3464 multipart/report (RFC 6522) in three parts:
//
//  1. text/plain: qmail's own text ("Hi. This is the qmail-send program
//     at ..."), so people and the tools that read qmail bounces (QSBMF)
//     see what they always saw;
//  2. message/delivery-status: one group of fields per failed recipient,
//     for programs;
//  3. message/rfc822: the message as queued, with "Return-Path:" on top as
//     qmail puts it; or, when the message is over Params.MaxOriginal,
//     text/rfc822-headers with its header only.
//
// The bounce is written with LF line ends, as everything in qmail's queue
// is; the original is streamed from its file, never held in memory.
//
// Who gets it follows qmail-send (see Params.Envelope): a message with a
// sender bounces to the sender, from <>; a message with the empty sender
// (itself a bounce) double-bounces to doublebounceto@doublebouncehost,
// from "#@[]"; a message from "#@[]" (a double bounce) is not bounced at
// all: ErrTripleBounce. A bounce is therefore never sent to <>.
//
// This package imports go-message; it is for qmail-send alone, and must
// not be imported by qmail-queue or the injectors, which start for every
// message.
package bounce

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/quail-mta/quail/pkg/maildate"
)

// DefaultMaxOriginal is the largest original message a bounce carries
// whole, in bytes: 100 KiB. A larger one is returned as its header
// only. docs/bounces.md says why.
const DefaultMaxOriginal = 100 << 10

// DoubleBounceSender is the envelope sender of a double bounce. A
// message from it that fails is discarded, not bounced again.
const DoubleBounceSender = "#@[]"

// ErrTripleBounce means the failed message was itself a double bounce:
// qmail-send discards its bounce file and logs
// "triple bounce: discarding bounce/N".
var ErrTripleBounce = errors.New("triple bounce: discarding")

// Kind tells a bounce from a double bounce.
type Kind int

// The kinds of bounce.
const (
	Single Kind = iota + 1 // to the message's sender, from <>
	Double                 // to doublebounceto, from #@[]: the message was a bounce
)

// Envelope is where a bounce goes.
type Envelope struct {
	Sender    string // "" for a bounce, DoubleBounceSender for a double bounce
	Recipient string
	Kind      Kind
}

// Params is everything a bounce is made of. The string fields hold the
// values of the control files of the same names; empty ones take qmail's
// defaults, as noted.
type Params struct {
	// Sender is the failed message's envelope sender, as in info/S/N.
	Sender string
	// Failures are the recipients given up on, with their reports: the
	// content of bounce/N (Parse reads it). With none (an empty bounce
	// file) the bounce still goes, as qmail's does, with no
	// per-recipient groups in its delivery status.
	Failures []Failure

	BounceFrom       string // default "MAILER-DAEMON"
	BounceHost       string // required (qmail-send's default is control/me)
	DoubleBounceTo   string // default "postmaster"
	DoubleBounceHost string // default BounceHost

	// Date is the bounce's date; zero means now.
	Date time.Time
	// Arrival is when the failed message was queued (the mtime of
	// info/S/N), for the Arrival-Date field; zero leaves the field out.
	Arrival time.Time

	// Original is the failed message as queued (mess/S/N), OriginalSize
	// bytes long.
	Original     io.ReaderAt
	OriginalSize int64
	// MaxOriginal is the largest original returned whole; a larger one
	// is returned as its header only (cut at MaxOriginal bytes too). Zero
	// means DefaultMaxOriginal; a negative value, no limit (as qmail).
	MaxOriginal int64

	// MessageID is the bounce's Message-ID, with its angle brackets; empty
	// makes a random one. Boundary is the MIME boundary; empty makes a
	// random one. Tests set both to get the same bytes every time.
	MessageID string
	Boundary  string
}

// Envelope says where the bounce goes: see the package doc. A sender
// ending in "-@[]" (a VERP sender, "owner-@host-@[]") bounces to the
// address without that mark ("owner-@host"), as in qmail-send.
func (p *Params) Envelope() (Envelope, error) {
	sender := stripVERP(p.Sender)
	switch sender {
	case DoubleBounceSender:
		return Envelope{}, ErrTripleBounce
	case "":
		to := p.DoubleBounceTo
		if to == "" {
			to = "postmaster"
		}
		host := p.DoubleBounceHost
		if host == "" {
			host = p.BounceHost
		}
		return Envelope{Sender: DoubleBounceSender, Recipient: to + "@" + host, Kind: Double}, nil
	default:
		return Envelope{Sender: "", Recipient: sender, Kind: Single}, nil
	}
}

// stripVERP turns "owner-@host-@[]" into "owner-@host".
func stripVERP(s string) string { return strings.TrimSuffix(s, "-@[]") }

// Build writes the bounce for p to w and says where it goes. For a
// message that was itself a double bounce it writes nothing and returns
// ErrTripleBounce. The bytes are what qmail-queue takes on fd 0: LF line
// ends, no Received line (qmail-queue adds its own). The original is read
// twice, once to see whether it holds 8-bit bytes, once to copy it.
func Build(w io.Writer, p Params) (Envelope, error) {
	env, err := p.Envelope()
	if err != nil {
		return env, err
	}
	if p.BounceHost == "" {
		return env, errors.New("build bounce: no bounce host")
	}
	if p.Original == nil || p.OriginalSize < 0 {
		return env, errors.New("build bounce: no original message")
	}
	if p.Date.IsZero() {
		p.Date = time.Now()
	}
	limit := p.MaxOriginal
	if limit == 0 {
		limit = DefaultMaxOriginal
	}
	o := returned{whole: limit < 0 || p.OriginalSize <= limit, size: p.OriginalSize}
	if o.whole {
		o.eightBit, err = scan8bit(io.NewSectionReader(p.Original, 0, p.OriginalSize))
	} else {
		o.size, o.eightBit, err = scanHeader(io.NewSectionReader(p.Original, 0, limit))
	}
	if err != nil {
		return env, fmt.Errorf("build bounce: read original: %w", err)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := p.write(bw, env, o); err != nil {
		return env, fmt.Errorf("build bounce: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return env, fmt.Errorf("build bounce: %w", err)
	}
	return env, nil
}

// returned is what a bounce carries of the failed message: the whole of it,
// or its header, size bytes from the start.
type returned struct {
	whole    bool
	size     int64
	eightBit bool
}

// write writes the bounce: the header, then the three parts.
func (p *Params) write(w io.Writer, env Envelope, o returned) error {
	lf := &lfWriter{w: w}
	mw := textproto.NewMultipartWriter(lf)
	if p.Boundary != "" {
		if err := mw.SetBoundary(p.Boundary); err != nil {
			return err
		}
	}
	if err := textproto.WriteHeader(lf, p.topHeader(env, mw.Boundary())); err != nil {
		return err
	}

	// Part 1: qmail's text.
	human := p.humanText(env.Kind, o.whole)
	var h fields
	if has8bit(human) {
		h.add("Content-Type", "text/plain; charset=utf-8")
		h.add("Content-Transfer-Encoding", "8bit")
	} else {
		h.add("Content-Type", "text/plain; charset=us-ascii")
	}
	if err := writePart(mw, h, func(pw io.Writer) error {
		_, err := io.WriteString(pw, human)
		return err
	}); err != nil {
		return err
	}

	// Part 2: the delivery status, RFC 3464.
	h = fields{{"Content-Type", "message/delivery-status"}}
	if err := writePart(mw, h, p.deliveryStatus); err != nil {
		return err
	}

	// Part 3: the original, or its header, copied byte for byte.
	returnPath := "Return-Path: <" + headerText(quoteAddress(stripVERP(p.Sender))) + ">\n"
	h = fields{{"Content-Type", "message/rfc822"}}
	if !o.whole {
		h = fields{{"Content-Type", "text/rfc822-headers"}} // RFC 6522 4
	}
	if o.eightBit || has8bit(returnPath) {
		h.add("Content-Transfer-Encoding", "8bit")
	}
	if err := writePart(mw, h, func(pw io.Writer) error {
		if _, err := io.WriteString(pw, returnPath); err != nil {
			return err
		}
		return copyVerbatim(lf, pw, io.NewSectionReader(p.Original, 0, o.size), o.size)
	}); err != nil {
		return err
	}
	if err := mw.Close(); err != nil {
		return err
	}
	return lf.flush()
}

// writePart starts a part with header h and has body write its content.
func writePart(mw *textproto.MultipartWriter, h fields, body func(io.Writer) error) error {
	pw, err := mw.CreatePart(h.header())
	if err != nil {
		return err
	}
	return body(pw)
}

// topHeader is the bounce's own header: qmail's four fields, then
// Auto-Submitted, Message-ID and the MIME ones.
func (p *Params) topHeader(env Envelope, boundary string) textproto.Header {
	from := p.BounceFrom
	if from == "" {
		from = "MAILER-DAEMON"
	}
	id := p.MessageID
	if id == "" {
		id = p.randomMessageID()
	}
	var h fields
	h.add("Date", maildate.Format(p.Date))
	h.add("From", headerText(quoteLocal(from)+"@"+p.BounceHost))
	h.add("To", headerText(quoteAddress(env.Recipient)))
	h.add("Subject", "failure notice")
	h.add("Auto-Submitted", "auto-replied") // RFC 3834 5: vacation programs must not answer
	h.add("Message-ID", headerText(id))
	h.add("MIME-Version", "1.0")
	h.add("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	return h.header()
}

func (p *Params) randomMessageID() string {
	var b [8]byte
	rand.Read(b[:])
	return "<" + strconv.FormatInt(p.Date.Unix(), 10) + "." + hex.EncodeToString(b[:]) + ".qmail-send@" + p.BounceHost + ">"
}

// humanText is part 1, in qmail-send's words.
func (p *Params) humanText(kind Kind, whole bool) string {
	var b strings.Builder
	b.WriteString("Hi. This is the qmail-send program at " + p.BounceHost + ".\n")
	if kind == Double {
		b.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		b.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n" +
			"This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	for _, f := range p.Failures {
		b.Write(Format(f.Recipient, f.Text))
	}
	what := "message"
	if kind == Double {
		what = "original bounce"
	}
	switch {
	case whole && kind == Double:
		b.WriteString("--- Below this line is the original bounce.\n")
	case whole:
		b.WriteString("--- Below this line is a copy of the message.\n")
	default:
		fmt.Fprintf(&b, "--- Below this line is the header of the %s (it is %d bytes, too large to return in full).\n", what, p.OriginalSize)
	}
	return b.String()
}

// scan8bit reports whether r holds a byte over 127.
func scan8bit(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if has8bit(string(buf[:n])) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// scanHeader finds the header of the message in r (which is cut at the
// size limit): its length, up to and not including the empty line that
// ends it, and whether it holds a byte over 127. A header that does not
// end within r is cut after its last whole line.
func scanHeader(r io.Reader) (n int64, eightBit bool, err error) {
	br := bufio.NewReader(r)
	var off, lineStart int64
	for {
		chunk, err := br.ReadSlice('\n')
		eightBit = eightBit || has8bit(string(chunk))
		complete := len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
		if off == lineStart && complete && (len(chunk) == 1 || (len(chunk) == 2 && chunk[0] == '\r')) {
			return off, eightBit, nil // the empty line
		}
		off += int64(len(chunk))
		if complete {
			lineStart = off
		}
		switch {
		case err == io.EOF:
			return lineStart, eightBit, nil
		case err != nil && err != bufio.ErrBufferFull:
			return 0, false, err
		}
	}
}

func has8bit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// copyVerbatim copies n bytes of r into the part writer pw, with the line
// end conversion of lf turned off: the original goes out as queued.
func copyVerbatim(lf *lfWriter, pw io.Writer, r io.Reader, n int64) error {
	if err := lf.flush(); err != nil {
		return err
	}
	lf.verbatim = true
	defer func() { lf.verbatim = false }()
	got, err := io.Copy(pw, r)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// headerText makes s safe as an unstructured header value: a CR or LF
// (possible in an envelope address) would end the field.
func headerText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return '_'
		}
		return r
	}, s)
}
