package ratelimit

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/control"
)

func TestStateRoundTrip(t *testing.T) {
	st := state{width: int64(time.Minute), last: t0.UnixNano(), blockFrom: 1, blockUntil: 2, blockLimit: 3}
	st.slots[7] = slot{bucket: 12345, count: 678}
	st.slots[59] = slot{bucket: -5, count: 1 << 40}
	var b [stateLen]byte
	st.encode(b[:])
	got, ok := decode(b[:])
	if !ok || got != st {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", st, got, ok)
	}
	for i := range b {
		c := b
		c[i] ^= 0x10
		if _, ok := decode(c[:]); ok {
			t.Errorf("byte %d changed: still decoded", i)
		}
	}
	if _, ok := decode(b[:stateLen-1]); ok {
		t.Error("short state decoded")
	}
}

func TestFloorDiv(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 60, -1},
	} {
		if got := floorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// The ring never holds more than the window, whatever the times.
func TestAdvanceBounded(t *testing.T) {
	var st state
	w := time.Hour
	at := t0.UnixNano()
	for i := range 10_000 {
		// Forward in uneven steps, now and then a step back.
		step := int64((i*7919)%600) * int64(time.Second)
		if i%97 == 0 {
			step = -int64(3 * time.Hour)
		}
		at += step
		now, _ := st.advance(w, at)
		st.add(1, now)
		k := floorDiv(now, st.width)
		for _, s := range st.slots {
			if s.count > 0 && (s.bucket > k || s.bucket <= k-Buckets) {
				t.Fatalf("step %d: bucket %d outside (%d, %d]", i, s.bucket, k-Buckets, k)
			}
		}
		if st.sum() > uint64(i+1) {
			t.Fatalf("step %d: sum %d > %d counted", i, st.sum(), i+1)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"*:100:1000:1h:30m\nexample.com:500:5000:1d:2h\n",
		"# comment\n\nexempt.example:0:0:0:0\n",
		"big.example: 0 : 20000 : 1h30m : 45m \n",
		"example.com:1:1:1h\n",
		"a.example:1:1:1h:1h\nA.EXAMPLE:1:1:1h:1h\n",
		"x.example:99999999999:1:999999999d:3h\n",
		"x.example:1:1:1h30:1d2h3m4s\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parse(control.ParseList(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "control/ratelimits:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
			return
		}
		check := func(who string, l Limits) {
			if l.Block < 0 || l.Block > MaxBlock {
				t.Fatalf("%s: block %v outside [0, %v]", who, l.Block, MaxBlock)
			}
			if l.Window < 0 || l.Window > MaxWindow {
				t.Fatalf("%s: window %v outside [0, %v]", who, l.Window, MaxWindow)
			}
			if (l.Send != 0 || l.Receive != 0) && l.Window == 0 {
				t.Fatalf("%s: limits %+v without a window", who, l)
			}
			if l.Send < 0 || l.Receive < 0 {
				t.Fatalf("%s: negative limit %+v", who, l)
			}
		}
		check("*", tab.def)
		for d, l := range tab.byDomain {
			check(d, l)
			if tab.For(strings.ToUpper(d)) != l {
				t.Fatalf("For(%q) is not the line of %q", strings.ToUpper(d), d)
			}
		}
	})
}

func FuzzState(f *testing.F) {
	var good [stateLen]byte
	st := state{width: int64(time.Minute), last: t0.UnixNano()}
	st.slots[3] = slot{bucket: t0.UnixNano() / int64(time.Minute), count: 4}
	st.encode(good[:])
	f.Add(good[:], int64(0), int64(time.Hour))
	f.Add([]byte("qrl1"), int64(-1e18), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, delta, window int64) {
		st, ok := decode(data)
		if !ok {
			// Damaged files are no history; fuzz the ring from
			// the raw bytes anyway, so odd values reach advance.
			if len(data) < stateLen {
				return
			}
			var c [stateLen]byte
			copy(c[:], data)
			copy(c[:], magic)
			binary.LittleEndian.PutUint32(c[4:], crc32.ChecksumIEEE(c[8:]))
			if st, ok = decode(c[:]); !ok {
				return // width <= 0
			}
		}
		w := time.Duration(window % int64(MaxWindow))
		if w <= 0 {
			w = time.Second
		}
		now := t0.UnixNano() + delta%int64(100*365*24*time.Hour)
		at, _ := st.advance(w, now)
		st.add(1, at)
		if st.sum() == 0 {
			t.Fatal("count lost")
		}
		_ = st.blocked(1, time.Hour, at)
		var b [stateLen]byte
		st.encode(b[:])
		if got, ok := decode(b[:]); !ok || got != st {
			t.Fatal("state does not survive encoding")
		}
	})
}
