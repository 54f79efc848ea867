package maildir

import "testing"

func TestParseInfo(t *testing.T) {
	tests := []struct {
		info, flags string
		ok          bool
	}{
		{"2,", "", true},
		{"2,S", "S", true},
		{"2,FRS", "FRS", true},
		{"2,SRF", "FRS", true}, // unsorted: accepted, sorted
		{"2,SS", "S", true},    // repeated
		{"2,Sa", "Sa", true},   // Dovecot keyword letters
		{"2,aS", "Sa", true},   // ASCII order: upper case first
		{"", "", false},
		{"2", "", false},
		{"1,experimental", "", false},
		{"3,S", "", false},
		{"2,S,", "", false},
		{"2,S:", "", false},
		{"2,S T", "", false},
		{"2,1", "", false},
		{"2,\xff", "", false},
	}
	for _, tt := range tests {
		flags, ok := ParseInfo(tt.info)
		if flags != tt.flags || ok != tt.ok {
			t.Errorf("ParseInfo(%q) = %q, %v; want %q, %v", tt.info, flags, ok, tt.flags, tt.ok)
		}
	}
}

func TestFormatInfo(t *testing.T) {
	for in, want := range map[string]string{"": "2,", "S": "2,S", "TSDS": "2,DST"} {
		if got, err := FormatInfo(in); got != want || err != nil {
			t.Errorf("FormatInfo(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := FormatInfo("S/"); err == nil {
		t.Error("FormatInfo accepted '/'")
	}
}

func TestWithFlags(t *testing.T) {
	tests := []struct{ base, flags, want string }{
		{"1.M2P3Q4.h", "S", "1.M2P3Q4.h:2,S"},
		{"1.M2P3Q4.h:2,S", "", "1.M2P3Q4.h:2,"},
		{"1.M2P3Q4.h:2,S", "TS", "1.M2P3Q4.h:2,ST"},
		{"1.M2P3Q4.h:1,old", "R", "1.M2P3Q4.h:2,R"},
		{"a:b:c", "F", "a:2,F"},
	}
	for _, tt := range tests {
		if got, err := WithFlags(tt.base, tt.flags); got != tt.want || err != nil {
			t.Errorf("WithFlags(%q, %q) = %q, %v; want %q", tt.base, tt.flags, got, err, tt.want)
		}
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct{ base, unique, info string }{
		{"u", "u", ""},
		{"u:2,S", "u", "2,S"},
		{"u:", "u", ""},
		{"u:2,S:x", "u", "2,S:x"},
	}
	for _, tt := range tests {
		if u, i := SplitName(tt.base); u != tt.unique || i != tt.info {
			t.Errorf("SplitName(%q) = %q, %q; want %q, %q", tt.base, u, i, tt.unique, tt.info)
		}
	}
	if !HasFlag("RS", FlagSeen) || HasFlag("RS", FlagTrashed) {
		t.Error("HasFlag")
	}
}
