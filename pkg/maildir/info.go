package maildir

import (
	"fmt"
	"strings"
)

// Flags of the Maildir specification's version 2 info ("2,FLAGS"). Each
// is one ASCII letter; the specification's six are upper case, and
// readers such as Dovecot use lower-case letters for keywords.
const (
	FlagDraft   = 'D'
	FlagFlagged = 'F'
	FlagPassed  = 'P' // forwarded, resent or bounced
	FlagReplied = 'R'
	FlagSeen    = 'S'
	FlagTrashed = 'T'
)

// SplitName splits the base name of a message file at its first ':' into
// the unique part, which is also the POP3 UIDL, and the info after the
// colon ("" when there is none).
func SplitName(base string) (unique, info string) {
	unique, info, _ = strings.Cut(base, ":")
	return unique, info
}

// ParseInfo returns the flags of a version 2 info "2,FLAGS", in ASCII
// order without repeats (the specification stores them sorted; readers
// should not count on it). ok is false for any other info: empty, the
// experimental "1,...", or flags that are not ASCII letters.
func ParseInfo(info string) (flags string, ok bool) {
	rest, found := strings.CutPrefix(info, "2,")
	if !found {
		return "", false
	}
	flags, err := normalizeFlags(rest)
	if err != nil {
		return "", false
	}
	return flags, true
}

// FormatInfo returns the version 2 info for flags: "2," followed by the
// flags sorted, without repeats. Flags must be ASCII letters.
func FormatInfo(flags string) (string, error) {
	f, err := normalizeFlags(flags)
	if err != nil {
		return "", err
	}
	return "2," + f, nil
}

// WithFlags returns base with its info replaced by "2,FLAGS"; any other
// info it carried is dropped.
func WithFlags(base, flags string) (string, error) {
	info, err := FormatInfo(flags)
	if err != nil {
		return "", err
	}
	unique, _ := SplitName(base)
	return unique + ":" + info, nil
}

// HasFlag reports whether flag is among flags.
func HasFlag(flags string, flag byte) bool {
	return strings.IndexByte(flags, flag) >= 0
}

// normalizeFlags sorts flags and drops repeats; a byte that is not an
// ASCII letter is an error. Flags already in order come back unchanged,
// without allocating.
func normalizeFlags(flags string) (string, error) {
	sorted := true
	for i := 0; i < len(flags); i++ {
		c := flags[i]
		if !isFlag(c) {
			return "", fmt.Errorf("maildir flag %q is not an ASCII letter", c)
		}
		if i > 0 && flags[i-1] >= c {
			sorted = false
		}
	}
	if sorted {
		return flags, nil
	}
	var set [128]bool
	for i := 0; i < len(flags); i++ {
		set[flags[i]] = true
	}
	b := make([]byte, 0, len(flags))
	for c := byte('A'); c <= 'z'; c++ {
		if set[c] {
			b = append(b, c)
		}
	}
	return string(b), nil
}

func isFlag(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}
