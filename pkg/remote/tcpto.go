package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// lock/tcpto is qmail-remote's memory of addresses whose connects time
// out, kept in qmail's format so qmail's qmail-tcpto and qmail-tcpok read
// and reset it: 1024 bytes, 64 records of 16 bytes each,
//
//	bytes 0-3   the IPv4 address, in network order
//	byte  4     how many timeouts in a row (0: the record is free), at most 10
//	bytes 8-11  when the last one was counted, Unix seconds, little-endian
//
// and the other bytes zero. Every reader and writer holds an exclusive
// flock on it, as qmail's lock_ex does, so deliveries in one process and
// qmail-remote processes beside it can share it.
const (
	tcptoRecord   = 16
	tcptoRecords  = 64
	tcptoSize     = tcptoRecord * tcptoRecords
	tcptoMaxCount = 10
	// A timeout counts again only this long after the last one counted,
	// so one dead host that many deliveries try at once counts once.
	tcptoGap = 120
)

// TCPTo is the timeout table of one queue. A nil *TCPTo is a table that
// never skips and records nothing.
//
// IPv6 addresses do not fit qmail's 4-byte records: they are kept by the
// same rules in this process's memory only (qmail-rspawn is long-lived,
// so that is where it matters), never in the file.
type TCPTo struct {
	path string
	// hold is how long an address with two or more timeouts is skipped
	// after the last: (60 + (pid & 31)) << 6 seconds (64 to 97 minutes),
	// so processes do not all try a dead host again at the same moment.
	hold uint32
	now  func() time.Time

	mu sync.Mutex
	v6 []tcptoEntry
}

// tcptoEntry is one record, decoded.
type tcptoEntry struct {
	addr  netip.Addr
	count uint8
	when  uint32
}

// NewTCPTo is the table in the file at path (queue/lock/tcpto). The file
// is opened on each use; when it cannot be, the table is simply not used,
// as in qmail.
func NewTCPTo(path string) *TCPTo {
	return &TCPTo{path: path, hold: uint32((60 + (os.Getpid() & 31)) << 6), now: time.Now}
}

// Skip reports whether a connect to a should not be tried now (two or
// more timeouts, the last one recent), and whether a has a record at all,
// which Record wants to know.
func (t *TCPTo) Skip(a netip.Addr) (skip, listed bool) {
	if t == nil {
		return false, false
	}
	now := uint32(t.now().Unix())
	if !a.Unmap().Is4() {
		t.mu.Lock()
		defer t.mu.Unlock()
		return lookup(t.v6, a, now, t.hold)
	}
	f, buf, err := t.open()
	if err != nil {
		return false, false
	}
	f.Close()
	return lookup(decode(buf), a.Unmap(), now, t.hold)
}

// Record notes the outcome of a connect to a: a timeout counts against
// the address; a connect that succeeds, or fails in any other way
// (refused, unreachable), clears its count, as qmail does. listed is
// Skip's answer: an address that was not in the table is not looked up
// again after a success.
func (t *TCPTo) Record(a netip.Addr, timedOut, listed bool) {
	if t == nil || !timedOut && !listed {
		return
	}
	now := uint32(t.now().Unix())
	if !a.Unmap().Is4() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if len(t.v6) == 0 {
			t.v6 = make([]tcptoEntry, tcptoRecords)
		}
		update(t.v6, a, timedOut, now)
		return
	}
	a = a.Unmap()
	f, buf, err := t.open()
	if err != nil {
		return
	}
	defer f.Close() // releases the lock
	entries := decode(buf)
	i := update(entries, a, timedOut, now)
	if i < 0 {
		return
	}
	rec := buf[i*tcptoRecord : (i+1)*tcptoRecord]
	ip := a.As4()
	copy(rec[0:4], ip[:])
	rec[4] = entries[i].count
	binary.LittleEndian.PutUint32(rec[8:12], entries[i].when)
	// Best effort, as in qmail: a table that cannot be written only
	// means the address is tried again.
	_, _ = f.WriteAt(rec, int64(i*tcptoRecord))
}

// open opens and locks the file and reads the whole records in it.
func (t *TCPTo) open() (*os.File, []byte, error) {
	return openTCPTo(t.path, os.O_RDWR, syscall.LOCK_EX)
}

func openTCPTo(path string, mode, lock int) (*os.File, []byte, error) {
	f, err := os.OpenFile(path, mode, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := flock(f, lock); err != nil {
		f.Close()
		return nil, nil, err
	}
	buf := make([]byte, tcptoSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, err
	}
	return f, buf[:n&^(tcptoRecord-1)], nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func decode(buf []byte) []tcptoEntry {
	out := make([]tcptoEntry, len(buf)/tcptoRecord)
	for i := range out {
		rec := buf[i*tcptoRecord:]
		out[i] = tcptoEntry{
			addr:  netip.AddrFrom4([4]byte(rec[0:4])),
			count: rec[4],
			when:  binary.LittleEndian.Uint32(rec[8:12]),
		}
	}
	return out
}

// lookup is qmail's tcpto(): the first record for a decides.
func lookup(entries []tcptoEntry, a netip.Addr, now, hold uint32) (skip, listed bool) {
	for _, e := range entries {
		if e.addr == a {
			// Unsigned: a clock set back makes the age huge, not negative.
			return e.count >= 2 && now-e.when < hold, true
		}
	}
	return false, false
}

// update is qmail's tcpto_err(): it changes entries for one outcome and
// returns the index of the record to write, or -1. A new address takes
// a free record, else the one whose time plus 1024 s per timeout is
// oldest.
func update(entries []tcptoEntry, a netip.Addr, timedOut bool, now uint32) int {
	for i := range entries {
		e := &entries[i]
		if e.addr != a {
			continue
		}
		if !timedOut {
			e.count = 0
			return i
		}
		if e.count > 0 && now < e.when+tcptoGap {
			return -1
		}
		// Capped, also for a record that holds more (a damaged file).
		e.count = min(e.count, tcptoMaxCount-1) + 1
		e.when = now
		return i
	}
	if !timedOut || len(entries) == 0 {
		return -1
	}
	pos := -1
	for i, e := range entries {
		if e.count == 0 {
			pos = i
			break
		}
	}
	if pos < 0 {
		var first uint64
		for i, e := range entries {
			if w := uint64(e.when) + uint64(e.count)<<10; pos < 0 || w < first {
				pos, first = i, w
			}
		}
	}
	entries[pos] = tcptoEntry{addr: a, count: 1, when: now}
	return pos
}

// CleanTCPTo zeroes the table at path, as qmail-rspawn does at start and
// qmail-tcpok does on request.
func CleanTCPTo(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := flock(f, syscall.LOCK_EX); err != nil {
		f.Close()
		return err
	}
	_, err = f.WriteAt(make([]byte, tcptoSize), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TimedOut is one address of the table with at least one timeout.
type TimedOut struct {
	Addr     netip.Addr
	Timeouts int
	Last     time.Time
}

// ReadTCPTo lists the addresses in the table at path, in file order. It
// needs only read access (a shared lock), where qmail's qmail-tcpto
// wanted to write.
func ReadTCPTo(path string) ([]TimedOut, error) {
	f, buf, err := openTCPTo(path, os.O_RDONLY, syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	f.Close()
	var out []TimedOut
	for _, e := range decode(buf) {
		if e.count > 0 {
			out = append(out, TimedOut{Addr: e.addr, Timeouts: int(e.count), Last: time.Unix(int64(e.when), 0)})
		}
	}
	return out, nil
}

// PrintTCPTo writes the list as qmail-tcpto does:
// "192.0.2.7 timed out 300 seconds ago; # recent timeouts: 2".
func PrintTCPTo(w io.Writer, list []TimedOut, now time.Time) error {
	for _, e := range list {
		ago := uint32(now.Unix()) - uint32(e.Last.Unix())
		if _, err := fmt.Fprintf(w, "%s timed out %d seconds ago; # recent timeouts: %d\n", e.Addr, ago, e.Timeouts); err != nil {
			return err
		}
	}
	return nil
}
