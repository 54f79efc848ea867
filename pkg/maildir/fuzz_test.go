package maildir

import (
	"strings"
	"testing"
)

// FuzzInfo feeds arbitrary info parts to the flag parser and checks it
// against a plain model: "2," followed by ASCII letters is accepted, and
// its flags are that set in ASCII order; anything else is refused. What
// it accepts must format, and rename through WithFlags, back to itself.
// Seeds are in testdata/fuzz/FuzzInfo.
func FuzzInfo(f *testing.F) {
	for _, s := range []string{"2,", "2,S", "2,FRS", "2,TS", "1,x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, info string) {
		flags, ok := ParseInfo(info)

		// The model.
		rest, wantOK := strings.CutPrefix(info, "2,")
		var set [256]bool
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
				wantOK = false
			}
			set[c] = true
		}
		if ok != wantOK {
			t.Fatalf("ParseInfo(%q) ok = %v, want %v", info, ok, wantOK)
		}
		if !ok {
			if flags != "" {
				t.Fatalf("ParseInfo(%q) refused it but returned flags %q", info, flags)
			}
			return
		}
		var want []byte
		for c := range 256 {
			if set[c] {
				want = append(want, byte(c))
			}
		}
		if flags != string(want) {
			t.Fatalf("ParseInfo(%q) = %q, want %q", info, flags, want)
		}

		formatted, err := FormatInfo(flags)
		if err != nil || formatted != "2,"+flags {
			t.Fatalf("FormatInfo(%q) = %q, %v", flags, formatted, err)
		}
		if again, ok := ParseInfo(formatted); !ok || again != flags {
			t.Fatalf("ParseInfo(FormatInfo(%q)) = %q, %v", flags, again, ok)
		}
		base, err := WithFlags("1700000000.M1P2Q3.host:"+info, rest)
		if err != nil || base != "1700000000.M1P2Q3.host:2,"+flags {
			t.Fatalf("WithFlags(..., %q) = %q, %v", rest, base, err)
		}
		unique, gotInfo := SplitName(base)
		if unique != "1700000000.M1P2Q3.host" || gotInfo != formatted {
			t.Fatalf("SplitName(%q) = %q, %q", base, unique, gotInfo)
		}
		m := Message{Name: "cur/" + base, UIDL: unique}
		if m.Flags() != flags {
			t.Fatalf("Message(%q).Flags() = %q, want %q", base, m.Flags(), flags)
		}
		for _, c := range []byte(flags) {
			if !HasFlag(flags, c) {
				t.Fatalf("HasFlag(%q, %q) = false", flags, c)
			}
		}
	})
}
