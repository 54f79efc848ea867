package ratelimit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/control"
)

func writeControl(t *testing.T, root, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "control", ControlFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissing(t *testing.T) {
	tab, err := Load(control.New(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.For("example.com"); got != (Limits{}) {
		t.Errorf("no file: For = %+v, want no limits", got)
	}
	var nilTable *Table
	if got := nilTable.For("example.com"); got != (Limits{}) {
		t.Errorf("nil table: For = %+v, want no limits", got)
	}
}

func TestLoad(t *testing.T) {
	root := t.TempDir()
	writeControl(t, root, strings.Join([]string{
		"# contract limits",
		"*:100:1000:1h:30m",
		"",
		"Example.COM:500:5000:1d:2h",
		"big.example: 0 : 20000 : 1h30m : 45m ",
		"exempt.example:0:0:0:0",
		"capped.example:10:10:10m:3h",
		"secs.example:1:2:90:30",
	}, "\n")+"\n")
	tab, err := Load(control.New(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		domain string
		want   Limits
	}{
		{"example.com", Limits{500, 5000, 24 * time.Hour, 2 * time.Hour}},
		{"EXAMPLE.com", Limits{500, 5000, 24 * time.Hour, 2 * time.Hour}},
		{"big.example", Limits{0, 20000, 90 * time.Minute, 45 * time.Minute}},
		{"exempt.example", Limits{}},
		{"capped.example", Limits{10, 10, 10 * time.Minute, MaxBlock}},
		{"secs.example", Limits{1, 2, 90 * time.Second, 30 * time.Second}},
		{"other.example", Limits{100, 1000, time.Hour, 30 * time.Minute}},
		{"sub.example.com", Limits{100, 1000, time.Hour, 30 * time.Minute}},
	} {
		if got := tab.For(tc.domain); got != tc.want {
			t.Errorf("For(%q) = %+v, want %+v", tc.domain, got, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		line          int
		want          string // in the error
	}{
		{"four fields", "example.com:1:1:1h\n", 1, "DOMAIN:SEND:RECEIVE:WINDOW:BLOCK"},
		{"six fields", "example.com:1:1:1h:1h:1\n", 1, "DOMAIN:SEND:RECEIVE:WINDOW:BLOCK"},
		{"bad domain", "# x\nexa mple.com:1:1:1h:1h\n", 2, "not allowed"},
		{"single label", "localhost:1:1:1h:1h\n", 1, "fully qualified"},
		{"duplicate", "a.example:1:1:1h:1h\nb.example:1:1:1h:1h\nA.example:2:2:1h:1h\n", 3, "line 1"},
		{"duplicate default", "*:1:1:1h:1h\n*:2:2:1h:1h\n", 2, "line 1"},
		{"send units", "example.com:10k:1:1h:1h\n", 1, "SEND"},
		{"receive negative", "example.com:1:-1:1h:1h\n", 1, "RECEIVE"},
		{"send empty", "example.com::1:1h:1h\n", 1, "SEND"},
		{"huge count", "example.com:99999999999:1:1h:1h\n", 1, "more than"},
		{"window unit", "example.com:1:1:1w:1h\n", 1, "WINDOW"},
		{"window fraction", "example.com:1:1:1.5h:1h\n", 1, "WINDOW"},
		{"window trailing number", "example.com:1:1:1h30:1h\n", 1, "WINDOW"},
		{"window empty", "example.com:1:1::1h\n", 1, "WINDOW"},
		{"window zero with limit", "example.com:1:0:0:1h\n", 1, "WINDOW is 0"},
		{"window too long", "example.com:1:1:32d:1h\n", 1, "longer than"},
		{"window overflow", "example.com:1:1:999999999d:1h\n", 1, "longer than"},
		{"block unit", "example.com:1:1:1h:1x\n", 1, "BLOCK"},
		{"block sign", "example.com:1:1:1h:-1h\n", 1, "BLOCK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeControl(t, root, tc.content)
			tab, err := Load(control.New(root))
			if err == nil {
				t.Fatalf("Load = %+v, want an error", tab)
			}
			var ce *control.Error
			if !errors.As(err, &ce) || ce.File != "control/ratelimits" || ce.Line != tc.line {
				t.Errorf("error %q: want control/ratelimits line %d", err, tc.line)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	root := t.TempDir()
	// A directory in place of the file cannot be read, even by root.
	if err := os.MkdirAll(filepath.Join(root, "control", ControlFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(control.New(root)); err == nil || !strings.Contains(err.Error(), "control/ratelimits") {
		t.Errorf("Load = %v, want an error naming control/ratelimits", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"90", 90 * time.Second, true},
		{"90s", 90 * time.Second, true},
		{"15m", 15 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1d2h3m4s", 26*time.Hour + 3*time.Minute + 4*time.Second, true},
		{"2h2h", 4 * time.Hour, true},
		{"", 0, false},
		{"h", 0, false},
		{"1H", 0, false},
		{"1ms", 0, false},
		{"1h 30m", 0, false},
		{"+1h", 0, false},
		{"1234567890s", 0, false},
	} {
		got, err := parseDuration("WINDOW", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, MaxWindow, 26*time.Hour + 4*time.Second} {
		got, err := parseDuration("X", formatDuration(d))
		if err != nil || got != d {
			t.Errorf("parseDuration(formatDuration(%v) = %q) = %v, %v", d, formatDuration(d), got, err)
		}
	}
}
