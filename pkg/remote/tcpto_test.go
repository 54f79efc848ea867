package remote

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newTable makes an empty lock/tcpto in a temporary directory, with a
// clock the test sets.
func newTable(t *testing.T) (*TCPTo, string, *time.Time) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tcpto")
	if err := os.WriteFile(path, make([]byte, tcptoSize), 0o644); err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_700_000_000, 0)
	tt := NewTCPTo(path)
	tt.now = func() time.Time { return clock }
	return tt, path, &clock
}

func TestTCPToFormat(t *testing.T) {
	t.Parallel()
	tt, path, clock := newTable(t)
	a := netip.MustParseAddr("192.0.2.7")
	tt.Record(a, true, false)
	data, _ := os.ReadFile(path)
	if len(data) != tcptoSize {
		t.Fatalf("table is %d bytes", len(data))
	}
	want := make([]byte, 16)
	copy(want, []byte{192, 0, 2, 7, 1})
	binary.LittleEndian.PutUint32(want[8:], uint32(clock.Unix()))
	if !bytes.Equal(data[:16], want) || !bytes.Equal(data[16:], make([]byte, tcptoSize-16)) {
		t.Errorf("first record % x, want % x (rest zero)", data[:16], want)
	}
	// An IPv4-mapped address is the same address.
	if _, listed := tt.Skip(netip.MustParseAddr("::ffff:192.0.2.7")); !listed {
		t.Error("::ffff:192.0.2.7 not found as 192.0.2.7")
	}
}

func TestTCPToRules(t *testing.T) {
	t.Parallel()
	tt, path, clock := newTable(t)
	a := netip.MustParseAddr("192.0.2.7")
	skip := func() bool { s, _ := tt.Skip(a); return s }
	count := func() int {
		list, err := ReadTCPTo(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list {
			if e.Addr == a {
				return e.Timeouts
			}
		}
		return 0
	}

	if s, listed := tt.Skip(a); s || listed {
		t.Fatalf("empty table: skip %v, listed %v", s, listed)
	}
	tt.Record(a, true, false)
	if skip() || count() != 1 {
		t.Fatalf("one timeout: skip %v, count %d; want tried again, count 1", skip(), count())
	}
	*clock = clock.Add(60 * time.Second)
	tt.Record(a, true, true)
	if count() != 1 {
		t.Errorf("a timeout 60 s after the last counted: count %d, want 1 (qmail counts one per 120 s)", count())
	}
	*clock = clock.Add(61 * time.Second)
	tt.Record(a, true, true)
	if count() != 2 || !skip() {
		t.Fatalf("second timeout 121 s later: count %d, skip %v; want 2, skipped", count(), skip())
	}
	// Skipped for (60 + pid&31) << 6 seconds after the last timeout.
	*clock = clock.Add(time.Duration(tt.hold-1) * time.Second)
	if !skip() {
		t.Error("not skipped any more just before the hold time ends")
	}
	*clock = clock.Add(time.Second)
	if skip() {
		t.Error("still skipped after the hold time")
	}
	if tt.hold < 3840 || tt.hold > 5824 {
		t.Errorf("hold %d s, want 64 to 97 minutes", tt.hold)
	}
	for range 20 {
		*clock = clock.Add(200 * time.Second)
		tt.Record(a, true, true)
	}
	if count() != tcptoMaxCount {
		t.Errorf("count %d after many timeouts, want the cap %d", count(), tcptoMaxCount)
	}
	// A connect that succeeds (or is refused) clears the count.
	tt.Record(a, false, true)
	if skip() || count() != 0 {
		t.Errorf("after a good connect: skip %v, count %d", skip(), count())
	}
	if _, listed := tt.Skip(a); !listed {
		t.Error("a cleared address keeps its record, as in qmail")
	}
	// A success for an address not listed writes nothing.
	before, _ := os.ReadFile(path)
	tt.Record(netip.MustParseAddr("192.0.2.8"), false, false)
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a success for an unlisted address changed the table")
	}
}

func TestTCPToFull(t *testing.T) {
	t.Parallel()
	tt, path, clock := newTable(t)
	// Fill all 64 records; the first address gets two timeouts, so its
	// time plus 1024 s per timeout is the latest but one.
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
	for i := range tcptoRecords {
		tt.Record(addr(i), true, false)
		*clock = clock.Add(time.Second)
	}
	*clock = clock.Add(200 * time.Second)
	tt.Record(addr(0), true, true)
	tt.Record(netip.MustParseAddr("203.0.113.1"), true, false)
	list, _ := ReadTCPTo(path)
	if len(list) != tcptoRecords {
		t.Fatalf("%d records in use, want %d", len(list), tcptoRecords)
	}
	if list[1].Addr != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("the new address took record 1 of %v; want the oldest (record 1: 198.51.100.1)", list[1])
	}
	if list[0].Addr != addr(0) || list[0].Timeouts != 2 {
		t.Errorf("record 0 = %+v", list[0])
	}
}

func TestTCPToShortOrMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := NewTCPTo(filepath.Join(dir, "none"))
	a := netip.MustParseAddr("192.0.2.7")
	missing.Record(a, true, false)
	if s, _ := missing.Skip(a); s {
		t.Error("a missing table skipped an address")
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing table was created")
	}
	// A table of 40 bytes has two whole records, as qmail reads it.
	short := filepath.Join(dir, "short")
	os.WriteFile(short, make([]byte, 40), 0o644)
	tt := NewTCPTo(short)
	tt.Record(a, true, false)
	tt.Record(netip.MustParseAddr("192.0.2.8"), true, false)
	tt.Record(netip.MustParseAddr("192.0.2.9"), true, false)
	if data, _ := os.ReadFile(short); len(data) != 40 {
		t.Errorf("short table grew to %d bytes", len(data))
	}
	if list, _ := ReadTCPTo(short); len(list) != 2 {
		t.Errorf("short table: %v", list)
	}
	var nilTable *TCPTo
	nilTable.Record(a, true, false)
	if s, l := nilTable.Skip(a); s || l {
		t.Error("nil table listed an address")
	}
}

func TestTCPToIPv6InMemory(t *testing.T) {
	t.Parallel()
	tt, path, clock := newTable(t)
	a := netip.MustParseAddr("2001:db8::25")
	tt.Record(a, true, false)
	*clock = clock.Add(200 * time.Second)
	tt.Record(a, true, true)
	if s, _ := tt.Skip(a); !s {
		t.Error("IPv6 address with two timeouts not skipped")
	}
	if data, _ := os.ReadFile(path); !bytes.Equal(data, make([]byte, tcptoSize)) {
		t.Error("an IPv6 address was written to qmail's IPv4 table")
	}
	tt.Record(a, false, true)
	if s, _ := tt.Skip(a); s {
		t.Error("IPv6 address still skipped after a good connect")
	}
}

// Deliveries in one process and qmail-remote processes beside it each
// open and lock the file: none of their updates may be lost.
func TestTCPToConcurrent(t *testing.T) {
	t.Parallel()
	tt, path, _ := newTable(t)
	other := NewTCPTo(path) // as another process would
	var wg sync.WaitGroup
	for i := range 48 {
		tbl := tt
		if i%2 == 1 {
			tbl = other
		}
		wg.Go(func() { tbl.Record(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), true, false) })
	}
	wg.Wait()
	list, err := ReadTCPTo(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 48 {
		t.Errorf("%d of 48 concurrent timeouts recorded", len(list))
	}
}

func TestCleanAndPrintTCPTo(t *testing.T) {
	t.Parallel()
	tt, path, clock := newTable(t)
	tt.Record(netip.MustParseAddr("192.0.2.7"), true, false)
	*clock = clock.Add(150 * time.Second)
	tt.Record(netip.MustParseAddr("192.0.2.7"), true, true)
	tt.Record(netip.MustParseAddr("192.0.2.9"), true, false)
	list, err := ReadTCPTo(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	PrintTCPTo(&b, list, clock.Add(30*time.Second))
	want := "192.0.2.7 timed out 30 seconds ago; # recent timeouts: 2\n192.0.2.9 timed out 30 seconds ago; # recent timeouts: 1\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	if err := CleanTCPTo(path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); !bytes.Equal(data, make([]byte, tcptoSize)) {
		t.Error("CleanTCPTo left data in the table")
	}
}

// fullListener is an address whose connects time out: a listening
// socket with a backlog of 0 whose one queue place is taken, so the
// kernel drops further SYNs.
func fullListener(t *testing.T, ip [4]byte) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", ap.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", ap.String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", ap)
	}
	return ap
}

// idleTarget is a listener that must not be contacted; contacted tells
// whether it was.
func idleTarget(t *testing.T, ip string) (Target, func() bool) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return Target{Addr: netip.MustParseAddrPort(ln.Addr().String())}, func() bool {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		return err == nil
	}
}

func TestDeliverUsesTCPTo(t *testing.T) {
	t.Parallel()
	tt, path, _ := newTable(t)
	withTable := func(c *Config) { c.TCPTo = tt; c.ConnectTimeout = 300 * time.Millisecond }
	wantOK := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\x00"

	// An address that timed out twice, recently, is not tried.
	dead, contacted := idleTarget(t, "127.0.0.2")
	tt.Record(dead.Addr.Addr(), true, false)
	tt.now = func() time.Time { return time.Now().Add(-200 * time.Second) }
	tt.Record(dead.Addr.Addr(), true, true)
	tt.now = time.Now
	tt.Record(dead.Addr.Addr(), true, true)
	p, good := startPeer(t, nil, acceptScript)
	if got := deliverTo(t, withTable, []Target{dead, good}, "a@example.net", []string{"b@example.org"}, msg1); got != wantOK {
		t.Errorf("got %q", got)
	}
	p.wait(t, 1)
	if contacted() {
		t.Error("an address lock/tcpto marks dead was tried")
	}

	// A connect that times out is recorded; the next address is tried.
	slow := fullListener(t, [4]byte{127, 0, 0, 3})
	p, good = startPeer(t, nil, acceptScript)
	if got := deliverTo(t, withTable, []Target{{Addr: slow}, good}, "a@example.net", []string{"b@example.org"}, msg1); got != wantOK {
		t.Errorf("got %q", got)
	}
	p.wait(t, 1)
	list, _ := ReadTCPTo(path)
	if !hasTimeouts(list, "127.0.0.3", 1) {
		t.Errorf("after a connect timeout the table holds %v", list)
	}

	// A refused connect is no timeout, and clears a listed address.
	tt.Record(netip.MustParseAddr("127.0.0.1"), true, false)
	if got := deliverTo(t, withTable, []Target{deadTarget(t)}, "a@example.net", []string{"b@example.org"}, msg1); got != "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00" {
		t.Errorf("got %q", got)
	}
	list, _ = ReadTCPTo(path)
	if hasTimeouts(list, "127.0.0.1", 1) {
		t.Errorf("a refused connect counted as a timeout, or did not clear: %v", list)
	}

	// Every address skipped: qmail's "no connection" report, at once.
	start := time.Now()
	if got := deliverTo(t, withTable, []Target{dead}, "a@example.net", []string{"b@example.org"}, msg1); got != "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00" {
		t.Errorf("got %q", got)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("a skipped address took %v", d)
	}
}

func hasTimeouts(list []TimedOut, addr string, n int) bool {
	for _, e := range list {
		if e.Addr.String() == addr && e.Timeouts == n {
			return true
		}
	}
	return false
}

// FuzzTCPTo runs qmail's rules over any table a file may hold (qmail
// wrote it, or something else did): no panic, and each outcome leaves
// the address where the rules say.
func FuzzTCPTo(f *testing.F) {
	f.Add(make([]byte, tcptoSize), []byte{192, 0, 2, 7}, uint32(1_700_000_000), true)
	f.Add(bytes.Repeat([]byte{0xff}, tcptoSize), []byte{255, 255, 255, 255}, uint32(0), true)
	f.Add(bytes.Repeat([]byte{1}, 40), []byte{1, 1, 1, 1}, uint32(5), false)
	f.Add(bytes.Repeat([]byte{0xff}, 16), []byte{255, 255, 255, 255}, uint32(1000), true) // count 255
	f.Fuzz(func(t *testing.T, table, ip []byte, now uint32, timedOut bool) {
		if len(ip) != 4 || len(table) > tcptoSize {
			return
		}
		a := netip.AddrFrom4([4]byte(ip))
		entries := decode(table[:len(table)&^(tcptoRecord-1)])
		before := append([]tcptoEntry(nil), entries...)
		_, _ = lookup(entries, a, now, 3840)
		i := update(entries, a, timedOut, now)
		if i < 0 {
			return
		}
		e := entries[i]
		if e.addr != a {
			t.Fatalf("record %d holds %v after an update for %v", i, e.addr, a)
		}
		switch {
		case !timedOut && e.count != 0:
			t.Fatalf("a good connect left count %d", e.count)
		case timedOut && (e.count == 0 || e.count > tcptoMaxCount):
			t.Fatalf("a timeout left count %d (was %d)", e.count, before[i].count)
		}
		for j := range entries {
			if j != i && entries[j] != before[j] {
				t.Fatalf("record %d changed by an update of record %d", j, i)
			}
		}
	})
}
