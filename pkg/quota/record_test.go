package quota

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in  string
		recounted int64
		usage     Usage
		bad       bool
	}{
		{"fresh", "recounted 1700000000 12.34\n100 2\n", 1700000000, Usage{100, 2}, false},
		{"with changes", "recounted 1700000000 -\n100 2\n50 1\n-100 -1\n+7 +1\n", 1700000000, Usage{57, 3}, false},
		{"unfinished last line", "recounted 1700000000 -\n100 2\n50 1\n-10", 1700000000, Usage{150, 3}, false},
		{"unfinished header", "recounted 1700000000 -", 0, Usage{}, false},
		{"empty", "", 0, Usage{}, false},
		{"no header", "100 2\n", 0, Usage{}, true},
		{"bad header word", "recount 1700000000 -\n100 2\n", 0, Usage{100, 2}, true},
		{"no stamp", "recounted 1700000000\n100 2\n", 0, Usage{100, 2}, true},
		{"bad time", "recounted -5 -\n", 0, Usage{}, true},
		{"three numbers", "recounted 1700000000 -\n1 2 3\n", 1700000000, Usage{}, true},
		{"blank line", "recounted 1700000000 -\n\n1 1\n", 1700000000, Usage{1, 1}, true},
		{"huge", "recounted 1700000000 -\n99999999999999999 1\n", 1700000000, Usage{}, true},
		{"not decimal", "recounted 1700000000 -\n0x10 1\n", 1700000000, Usage{}, true},
		{"NUL bytes", "recounted 1700000000 -\n\x00\x00\n", 1700000000, Usage{}, true},
	} {
		r := parseRecord([]byte(tc.in))
		if r.recounted != tc.recounted || r.usage != tc.usage || r.bad != tc.bad || r.size != len(tc.in) {
			t.Errorf("%s: got %+v; want recounted %d, usage %+v, bad %v", tc.name, r, tc.recounted, tc.usage, tc.bad)
		}
	}
}

func TestFormatRecord(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	data := formatRecord(now, "12.34", Usage{5000, 3})
	if string(data) != "recounted 1700000000 12.34\n5000 3\n" {
		t.Errorf("formatRecord = %q", data)
	}
	r := parseRecord(data)
	if r.due(now, "12.34") {
		t.Errorf("a fresh record is due: %+v", r)
	}
	for _, tc := range []struct {
		name  string
		now   time.Time
		stamp string
	}{
		{"old", now.Add(MaxAge + time.Second), "12.34"},
		{"clock set back", now.Add(-time.Hour), "12.34"},
		{"passwd changed", now, "12.35"},
	} {
		if !r.due(tc.now, tc.stamp) {
			t.Errorf("%s: not due", tc.name)
		}
	}
	if r.due(now.Add(MaxAge), "12.34") {
		t.Error("due at exactly MaxAge")
	}
}

// FuzzParseRecord: a record is a file anyone with the deliverer's rights
// can damage; reading it must never fail, and what quail writes must read
// back as written.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("recounted 1700000000 12.34\n100 2\n50 1\n-10"), int64(5), int64(1))
	f.Add([]byte(""), int64(0), int64(0))
	f.Add([]byte("\n\n\n"), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, bytesN, msgs int64) {
		r := parseRecord(data)
		if r.size != len(data) {
			t.Fatalf("size %d, want %d", r.size, len(data))
		}
		if !bytes.Contains(data, []byte{'\n'}) && (r.recounted != 0 || r.usage != (Usage{}) || r.bad) {
			t.Fatalf("no complete line, but %+v", r)
		}
		if bytesN > maxValue || bytesN < -maxValue || msgs > maxValue || msgs < -maxValue {
			return
		}
		now := time.Unix(1700000000, 0)
		w := parseRecord(append(formatRecord(now, "1.2", Usage{1, 1}), formatLine(nil, Usage{bytesN, msgs})...))
		if w.bad || w.recounted != now.Unix() || w.stamp != "1.2" || w.usage != (Usage{1 + bytesN, 1 + msgs}) {
			t.Fatalf("round trip of %d %d: %+v", bytesN, msgs, w)
		}
	})
}

// parseValueRef is what parseValue must agree with: strconv's base-10
// parse, within maxValue either way.
func parseValueRef(b []byte) (int64, bool) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || v > maxValue || v < -maxValue {
		return 0, false
	}
	return v, true
}

func TestParseValue(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"0", "7", "-7", "+7", "-0", "007", "2410", "17592186044416", "-17592186044416",
		"17592186044417", "-17592186044417", "99999999999999999999999", "",
		"-", "+", "--1", "+-1", "1-", " 1", "1 ", "0x10", "1_000", "\x001", "١",
	} {
		got, gotOK := parseValue([]byte(in))
		want, wantOK := parseValueRef([]byte(in))
		if got != want || gotOK != wantOK {
			t.Errorf("parseValue(%q) = %d, %v; want %d, %v", in, got, gotOK, want, wantOK)
		}
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"2410", "-1", "+0", "17592186044417", "9223372036854775808", "1e3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, gotOK := parseValue(in)
		want, wantOK := parseValueRef(in)
		if got != want || gotOK != wantOK {
			t.Fatalf("parseValue(%q) = %d, %v; strconv says %d, %v", in, got, gotOK, want, wantOK)
		}
	})
}
