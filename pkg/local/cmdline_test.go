package local

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	ops := []string{"joe", "/home/joe", "joe-x", "-", "x", "example.test", "-bob@example.org", "./Maildir/"}
	want := Request{User: "joe", Home: "/home/joe", Local: "joe-x", Dash: "-", Ext: "x", Domain: "example.test", Sender: "-bob@example.org", DefaultDelivery: "./Maildir/"}
	for _, tc := range []struct {
		name   string
		args   []string
		dryRun bool
		err    string // "" for none
	}{
		{name: "plain", args: ops},
		{name: "--", args: append([]string{"--"}, ops...)},
		{name: "-n", args: append([]string{"-n"}, ops...), dryRun: true},
		{name: "-n --", args: append([]string{"-n", "--"}, ops...), dryRun: true},
		{name: "-nN: the last wins", args: append([]string{"-nN"}, ops...)},
		{name: "-Nn", args: append([]string{"-N", "-n"}, ops...), dryRun: true},
		{name: "empty operands", args: []string{"joe", "/h", "joe", "", "", "d", "", ""}},
		{name: "too few", args: ops[:7], err: "need exactly 8 operands"},
		{name: "too many", args: append(ops, "x"), err: "need exactly 8 operands"},
		{name: "none", args: nil, err: "got 0"},
		{name: "relative home", args: []string{"joe", "home/joe", "joe", "", "", "d", "s", "./Maildir/"}, err: "homedir must be an absolute path"},
		{name: "unknown option", args: append([]string{"-x"}, ops...), err: "unknown shorthand flag: 'x'"},
		{name: "help", args: []string{"--help"}, err: "help requested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseArgs(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.DryRun != tc.dryRun {
				t.Errorf("DryRun %v, want %v", req.DryRun, tc.dryRun)
			}
			if tc.name != "empty operands" {
				w := want
				w.DryRun = tc.dryRun
				if req.User != w.User || req.Home != w.Home || req.Local != w.Local || req.Dash != w.Dash ||
					req.Ext != w.Ext || req.Domain != w.Domain || req.Sender != w.Sender || req.DefaultDelivery != w.DefaultDelivery {
					t.Errorf("got %+v\nwant %+v", req, w)
				}
			}
		})
	}
	if _, err := ParseArgs([]string{"-h"}); !errors.Is(err, ErrHelp) {
		t.Errorf("-h: %v, want ErrHelp", err)
	}
}

func TestSeekableMessage(t *testing.T) {
	t.Parallel()
	f := message(t, sampleMsg)
	got, copied, err := SeekableMessage(f, t.TempDir())
	if err != nil || copied || got != f {
		t.Errorf("a regular file: %v, copied %v, %v", got, copied, err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { io.WriteString(w, sampleMsg); w.Close() }()
	dir := t.TempDir()
	got, copied, err = SeekableMessage(r, dir)
	r.Close()
	if err != nil || !copied {
		t.Fatalf("a pipe: copied %v, %v", copied, err)
	}
	defer got.Close()
	b := make([]byte, len(sampleMsg)+1)
	n, _ := got.ReadAt(b, 0)
	if string(b[:n]) != sampleMsg {
		t.Errorf("the copy holds %q", b[:n])
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the copy was left in %s", dir)
	}
}
