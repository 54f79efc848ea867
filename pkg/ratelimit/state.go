package ratelimit

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// Buckets is the number of buckets a window is split into. Counts are
// kept per bucket, so a message is forgotten between window-window/Buckets
// and window after it was counted, and the state file has a fixed size
// whatever the traffic.
const Buckets = 60

// clockSlack is how far behind the last update a caller's clock may be
// and still count as the same instant. Processes take their time before
// waiting for the lock, so a small step back is ordinary; anything larger
// is the clock being set back.
const clockSlack = time.Second

// The state file, little-endian, fixed size:
//
//	0  "qrl1"
//	4  CRC-32 (IEEE) of bytes 8 to the end
//	8  bucket width, ns
//	16 last update, Unix ns
//	24 block start, Unix ns (0: no block)
//	32 block end, Unix ns
//	40 the limit that started the block
//	48 Buckets slots of {bucket number int64, count uint64}
const (
	magic     = "qrl1"
	headerLen = 48
	slotLen   = 16
	stateLen  = headerLen + Buckets*slotLen
)

type slot struct {
	bucket int64 // start time / width
	count  uint64
}

// state is one contract's history in one direction.
type state struct {
	width      int64 // ns; 0 in a fresh state
	last       int64
	blockFrom  int64
	blockUntil int64
	blockLimit uint64
	slots      [Buckets]slot
}

// decode reads a state file. Anything but a whole, intact state (an
// empty file just created, a write torn by a crash) is no history: the
// counts are a safeguard, not a record, and a damaged file must not
// refuse a contract's mail until an admin finds it.
func decode(b []byte) (st state, ok bool) {
	if len(b) != stateLen || string(b[:4]) != magic ||
		binary.LittleEndian.Uint32(b[4:]) != crc32.ChecksumIEEE(b[8:]) {
		return state{}, false
	}
	le := binary.LittleEndian
	st.width = int64(le.Uint64(b[8:]))
	st.last = int64(le.Uint64(b[16:]))
	st.blockFrom = int64(le.Uint64(b[24:]))
	st.blockUntil = int64(le.Uint64(b[32:]))
	st.blockLimit = le.Uint64(b[40:])
	if st.width <= 0 {
		return state{}, false
	}
	for i := range st.slots {
		p := b[headerLen+i*slotLen:]
		st.slots[i] = slot{int64(le.Uint64(p)), le.Uint64(p[8:])}
	}
	return st, true
}

func (st *state) encode(b []byte) {
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint64(b[8:], uint64(st.width))
	le.PutUint64(b[16:], uint64(st.last))
	le.PutUint64(b[24:], uint64(st.blockFrom))
	le.PutUint64(b[32:], uint64(st.blockUntil))
	le.PutUint64(b[40:], st.blockLimit)
	for i, s := range st.slots {
		p := b[headerLen+i*slotLen:]
		le.PutUint64(p, uint64(s.bucket))
		le.PutUint64(p[8:], s.count)
	}
	le.PutUint32(b[4:], crc32.ChecksumIEEE(b[8:stateLen]))
}

// bucketWidth splits window into Buckets buckets.
func bucketWidth(window time.Duration) int64 {
	return max(int64(window)/Buckets, 1)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// advance brings st to now for a window: it returns the time to act at
// and whether the state had to be moved because the clock went back.
//
// Afterwards the state is canonical: every slot holds a bucket within the
// window ending at the returned time, or nothing; an expired block is
// gone; last is the returned time. That is how expired windows and
// blocks clean themselves: each update rewrites the whole ring.
//
// The clock: a step back of at most clockSlack counts as no time passed.
// A longer one moves the whole history back by the step, as if the clock
// had stood still since the last update, so nothing expires early, a
// block keeps the time it had left then, and the moved state is written
// back so the step is absorbed once. (Taking the future at face value instead would
// freeze counts and blocks for as long as the step, which could be
// years.) A step forward cannot be told from time passing, and expires
// what it passes.
func (st *state) advance(window time.Duration, now int64) (at int64, moved bool) {
	w := bucketWidth(window)
	if st.width == 0 {
		*st = state{width: w, last: now}
		return now, false
	}
	at = now
	shift := int64(0) // buckets to move back, in the stored width
	if now < st.last {
		if st.last-now <= int64(clockSlack) {
			at = st.last
		} else {
			back := st.last - now
			shift = floorDiv(st.last, st.width) - floorDiv(now, st.width)
			if st.blockFrom != 0 {
				st.blockFrom -= back
				st.blockUntil -= back
			}
			moved = true
		}
	}
	old := st.slots
	oldWidth := st.width
	st.slots = [Buckets]slot{}
	st.width = w
	k := floorDiv(at, w)
	for _, s := range old {
		if s.count == 0 {
			continue
		}
		b := s.bucket - shift
		if oldWidth != w {
			// A changed window: put the old bucket's count where its
			// last instant falls, so a count lives at least as long as
			// before and never longer than the new window.
			b = floorDiv(min((b+1)*oldWidth-1, at), w)
		}
		b = min(b, k) // left by a clock skew within clockSlack
		if b <= k-Buckets {
			continue
		}
		i := b % Buckets
		if i < 0 {
			i += Buckets
		}
		st.slots[i].bucket = b
		st.slots[i].count += s.count
	}
	if st.blockUntil <= at {
		st.blockFrom, st.blockUntil, st.blockLimit = 0, 0, 0
	}
	st.last = at
	return at, moved
}

// sum is the count within the window; only valid after advance.
func (st *state) sum() uint64 {
	var n uint64
	for _, s := range st.slots {
		n += s.count
	}
	return n
}

// add counts n more messages at t (after advance to t).
func (st *state) add(n uint64, t int64) {
	b := floorDiv(t, st.width)
	i := b % Buckets
	if i < 0 {
		i += Buckets
	}
	if st.slots[i].bucket != b {
		st.slots[i] = slot{bucket: b}
	}
	st.slots[i].count += n
}

// blocked reports whether a block holds at t for limits lim of one
// direction. A block ends early when the admin lowers the block time
// (it never lasts more than the current block time from its start) or
// raises the limit above the one that started it.
func (st *state) blocked(limit int, block time.Duration, t int64) bool {
	return st.blockUntil > t && st.blockFrom+int64(block) > t && st.blockLimit >= uint64(limit)
}
