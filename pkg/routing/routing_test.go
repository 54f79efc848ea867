package routing

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/quail-mta/quail/pkg/control"
)

func table(t *testing.T, files map[string]string) *Table {
	t.Helper()
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "control"), 0o755)
	for n, c := range files {
		os.WriteFile(filepath.Join(root, "control", n), []byte(c), 0o644)
	}
	tb, err := Load(control.New(root))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRoute(t *testing.T) {
	tb := table(t, map[string]string{
		"me":             "mx.example.com\n",
		"locals":         "mx.example.com\nlocalhost\n",
		"percenthack":    "relay.example.com\n",
		"virtualdomains": "example.test:example.test\nJoe@Special.example:joe\n.sub.example:subs\nexcept.sub.example:\nexample.test:ignored-second\n",
	})
	for _, tc := range []struct {
		in   string
		ch   Channel
		want string
	}{
		{"joe@mx.example.com", Local, "joe@mx.example.com"},
		{"joe@MX.Example.COM", Local, "joe@MX.Example.COM"},
		{"joe", Local, "joe@mx.example.com"},
		{"ann@example.test", Local, "example.test-ann@example.test"},
		{"Ann@Example.Test", Local, "example.test-Ann@Example.Test"},
		{"joe@special.example", Local, "joe-joe@special.example"},
		{"bob@special.example", Remote, "bob@special.example"},
		{"x@a.sub.example", Local, "subs-x@a.sub.example"},
		{"x@except.sub.example", Remote, "x@except.sub.example"},
		{"x@sub.example", Remote, "x@sub.example"},
		{"u%other.example@relay.example.com", Remote, "u@other.example"},
		{"u%mx.example.com@relay.example.com", Local, "u@mx.example.com"},
		{"far@elsewhere.example", Remote, "far@elsewhere.example"},
	} {
		ch, got := tb.Route(tc.in)
		if ch != tc.ch || got != tc.want {
			t.Errorf("Route(%q) = %v %q, want %v %q", tc.in, ch, got, tc.ch, tc.want)
		}
	}
	for routed, want := range map[string]string{
		"example.test-ann@example.test": "ann@example.test",
		"subs-x@a.sub.example":          "x@a.sub.example",
		"joe-joe@special.example":       "joe@special.example",
	} {
		if got := tb.Unroute(routed); got != want {
			t.Errorf("Unroute(%q) = %q, want %q", routed, got, want)
		}
	}
	if got := tb.Unroute("ann-x@mx.example.com"); got != "ann-x@mx.example.com" {
		t.Errorf("Unroute of a plain local address changed it: %q", got)
	}
}

func TestCatchAll(t *testing.T) {
	tb := table(t, map[string]string{"me": "mx.example.com\n", "virtualdomains": ":alias-catch\n"})
	if ch, got := tb.Route("x@anything.example"); ch != Local || got != "alias-catch-x@anything.example" {
		t.Errorf("catch-all: %v %q", ch, got)
	}
}

func TestLoadError(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "control"), 0o755)
	os.WriteFile(filepath.Join(root, "control", "virtualdomains"), []byte("ok.example:ok\nbroken\n"), 0o644)
	if _, err := Load(control.New(root)); err == nil || err.Error() != "control/virtualdomains:2: want DOMAIN:PREPEND" {
		t.Errorf("Load = %v", err)
	}
}
