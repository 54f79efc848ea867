//go:build integration

package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/users"
)

func TestQmailNewu(t *testing.T) {
	root := buildInstance(t, nil)
	assign := "=joe:joe:1001:100:/home/joe:::\n+list-:lists:1002:100:/home/lists:-::\n.\n"
	if err := os.WriteFile(filepath.Join(root, "users/assign"), []byte(assign), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, proc{args: []string{"qmail-newu"}, env: []string{"QMAILHOME=" + root}}); r.code != 0 {
		t.Fatalf("qmail-newu: exit %d %s", r.code, r.stderr)
	}
	e, ok, err := users.Lookup(root, "list-announce")
	if err != nil || !ok || e.User != "lists" || e.Ext != "announce" {
		t.Errorf("after qmail-newu, Lookup(list-announce) = %+v, %v, %v", e, ok, err)
	}
	if err := os.WriteFile(filepath.Join(root, "users/assign"), []byte("=joe:joe:1001\n.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, proc{args: []string{"qmail-newu"}, env: []string{"QMAILHOME=" + root}})
	if r.code != 111 || !strings.Contains(r.stderr, "users/assign:1: want six fields") {
		t.Errorf("bad assign: exit %d %q, want 111 naming the line", r.code, r.stderr)
	}
	// The old cdb is untouched by the failed run.
	if _, ok, _ := users.Lookup(root, "joe"); !ok {
		t.Error("a failed qmail-newu damaged users/cdb")
	}
}

func TestQmailGetpw(t *testing.T) {
	if r := run(t, proc{args: []string{"qmail-getpw"}}); r.code != 100 {
		t.Errorf("no argument: exit %d, want 100", r.code)
	}
	// root never takes mail: it goes to the alias user's .qmail-root, or,
	// without an alias user, the lookup fails temporarily (116).
	r := run(t, proc{args: []string{"qmail-getpw", "root"}})
	switch r.code {
	case 0:
		f := strings.Split(r.stdout, "\x00")
		if len(f) != 7 || f[0] != "alias" || f[4] != "-" || f[5] != "root" {
			t.Errorf("qmail-getpw root = %q", r.stdout)
		}
	case 116:
		if !strings.Contains(r.stderr, "alias user") {
			t.Errorf("exit 116 without a clear message: %q", r.stderr)
		}
	default:
		t.Errorf("qmail-getpw root: exit %d %q", r.code, r.stderr)
	}
}
