package maildate

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC), "26 Sep 1995 04:46:54 -0000"},
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "1 Jan 2024 00:00:00 -0000"},
		{time.Date(2026, 12, 31, 23, 59, 59, 999, time.FixedZone("x", 3600)), "31 Dec 2026 22:59:59 -0000"},
	} {
		if got := Format(tc.t); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
