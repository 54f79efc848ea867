package ratelimit

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/control"
)

// ControlFile is the control file holding the limits.
const ControlFile = "ratelimits"

// MaxBlock is the longest block SPEC §8 allows; longer blocks in the
// control file are shortened to it.
const MaxBlock = 2 * time.Hour

// MaxWindow is the longest window: a month, for monthly allowances. The
// ring keeps Buckets buckets whatever the window, so a long window only
// makes each bucket coarser.
const MaxWindow = 31 * 24 * time.Hour

// maxCount bounds SEND and RECEIVE so a typo of extra digits is caught.
const maxCount = math.MaxInt32

// Default is the domain field of the line that applies to every contract
// without a line of its own.
const Default = "*"

// Limits are one contract's; zero values mean no limit.
type Limits struct {
	Send, Receive int
	Window, Block time.Duration
}

// limit is the limit of direction d, 0 for none.
func (l Limits) limit(d Direction) int {
	if l.Window <= 0 {
		return 0
	}
	switch d {
	case Send:
		return max(l.Send, 0)
	case Receive:
		return max(l.Receive, 0)
	}
	return 0
}

// block is the block time as enforced: never over MaxBlock.
func (l Limits) block() time.Duration {
	return min(max(l.Block, 0), MaxBlock)
}

// Table is the parsed control/ratelimits.
type Table struct {
	byDomain map[string]Limits
	def      Limits
}

// Load reads control/ratelimits. A missing file means no limits.
func Load(ctl control.Dir) (*Table, error) {
	lines, err := ctl.Lines(ControlFile)
	if err != nil {
		return nil, err
	}
	return parse(lines)
}

// For returns the limits of the contract domain: its own line, else the
// "*" line, else no limits.
func (t *Table) For(domain string) Limits {
	if t == nil {
		return Limits{}
	}
	if l, ok := t.byDomain[strings.ToLower(domain)]; ok {
		return l
	}
	return t.def
}

const format = "want DOMAIN:SEND:RECEIVE:WINDOW:BLOCK, such as example.com:500:5000:1h:30m"

// parse checks every entry; the first bad one is an error naming
// control/ratelimits and its line, since a limit silently dropped would
// let a contract send without one.
func parse(lines []control.Line) (*Table, error) {
	const file = "control/" + ControlFile
	t := &Table{byDomain: map[string]Limits{}}
	seen := map[string]int{}
	for _, ln := range lines {
		errf := func(f string, args ...any) error { return control.Errorf(file, ln.No, f, args...) }
		fields := strings.Split(ln.Text, ":")
		if len(fields) != 5 {
			return nil, errf("%q: %s", ln.Text, format)
		}
		for i := range fields {
			fields[i] = strings.Trim(fields[i], " \t")
		}
		domain := fields[0]
		if domain != Default {
			d, err := contract.NormalizeDomain(domain)
			if err != nil {
				return nil, errf("%v (or %q for the default)", err, Default)
			}
			domain = d
		}
		if prev, dup := seen[domain]; dup {
			return nil, errf("%s already has limits on line %d; keep one line per domain", domain, prev)
		}
		seen[domain] = ln.No
		var l Limits
		var err error
		if l.Send, err = parseCount("SEND", fields[1]); err != nil {
			return nil, errf("%v", err)
		}
		if l.Receive, err = parseCount("RECEIVE", fields[2]); err != nil {
			return nil, errf("%v", err)
		}
		if l.Window, err = parseDuration("WINDOW", fields[3]); err != nil {
			return nil, errf("%v", err)
		}
		if l.Window > MaxWindow {
			return nil, errf("WINDOW %q is longer than %s", fields[3], formatDuration(MaxWindow))
		}
		if (l.Send > 0 || l.Receive > 0) && l.Window == 0 {
			return nil, errf("WINDOW is 0 but a limit is set: give the time the limits count over, such as 1h")
		}
		if l.Block, err = parseDuration("BLOCK", fields[4]); err != nil {
			return nil, errf("%v", err)
		}
		l.Block = min(l.Block, MaxBlock)
		if domain == Default {
			t.def = l
		} else {
			t.byDomain[domain] = l
		}
	}
	return t, nil
}

// parseCount reads a message count: decimal digits, 0 for no limit.
func parseCount(name, v string) (int, error) {
	n, err := control.ParseInt(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	if n > maxCount {
		return 0, fmt.Errorf("%s: %d messages is more than %d", name, n, maxCount)
	}
	return int(n), nil
}

// durationLimit keeps the sum in parseDuration far from overflow; it is
// well above MaxWindow, so a long value gets the clearer "longer than"
// error from the caller or is capped as a block.
const durationLimit = 1000 * 24 * time.Hour

// parseDuration reads a duration as admins write one: a number of
// seconds (as qmail's timeout files hold), or numbers each followed by a
// unit d, h, m or s, such as 90s, 15m, 1h30m, 1d. No signs, fractions or
// smaller units: a rate limit has no use for them.
func parseDuration(name, v string) (time.Duration, error) {
	bad := func() error {
		return fmt.Errorf("%s %q: want seconds or a duration such as 90s, 15m, 1h30m or 1d", name, v)
	}
	if v == "" {
		return 0, bad()
	}
	var total time.Duration
	for rest := v; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, bad()
		}
		n, _ := control.ParseInt(rest[:i])
		unit := time.Second
		if i < len(rest) {
			switch rest[i] {
			case 'd':
				unit = 24 * time.Hour
			case 'h':
				unit = time.Hour
			case 'm':
				unit = time.Minute
			case 's':
				unit = time.Second
			default:
				return 0, bad()
			}
			i++
		} else if rest != v {
			// "1h30" is more likely a typo than 1h and 30 seconds.
			return 0, bad()
		}
		if n > int64(durationLimit/unit) || total+time.Duration(n)*unit > durationLimit {
			return 0, fmt.Errorf("%s %q is longer than %s", name, v, formatDuration(durationLimit))
		}
		total += time.Duration(n) * unit
		rest = rest[i:]
	}
	return total, nil
}

// formatDuration writes d in the syntax parseDuration reads.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}
