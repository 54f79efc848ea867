package recipient

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/privsep"
	"github.com/quail-mta/quail/pkg/users"
)

type fakePasswd map[string]users.Entry

func (f fakePasswd) Lookup(name string) (users.Entry, bool, error) {
	e, ok := f[name]
	return e, ok, nil
}

func setup(t *testing.T) *Resolver {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"control", "domains", "users"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	s := contract.New(root)
	for _, d := range []string{"example.test", "catch.example", "my-shop.example"} {
		if err := s.AddDomain(contract.Domain{Name: d}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"joe@example.test", "joe-smith@example.test", "ann@my-shop.example"} {
		if err := s.AddUser(a, []byte("pw"), false); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "domains", "example.test", ".qmail-sales"), []byte("joe@example.test\n"), 0o644)
	os.WriteFile(filepath.Join(root, "domains", "catch.example", ".qmail-default"), []byte("./Maildir/\n"), 0o644)
	os.WriteFile(filepath.Join(root, "users", "assign"), []byte("=lists:lists:1002:100:/home/lists:::\n.\n"), 0o644)
	if err := users.Newu(root); err != nil {
		t.Fatal(err)
	}
	return &Resolver{
		Root:   root,
		Passwd: fakePasswd{"alias": {User: "alias", UID: 7790, GID: 2108, Home: "/var/qmail/alias"}},
		Owner:  func() (string, privsep.IDs, error) { return "qmailv", privsep.IDs{UID: 8000, GID: 8000}, nil },
	}
}

func TestResolve(t *testing.T) {
	r := setup(t)
	dom := func(d string, parts ...string) string {
		return filepath.Join(append([]string{r.Root, "domains", d}, parts...)...)
	}
	for _, tc := range []struct {
		local string
		want  Target
	}{
		{"lists", Target{User: "lists", UID: 1002, GID: 100, Home: "/home/lists"}},
		{"example.test-joe", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("example.test", "joe"), Domain: "example.test"}},
		{"example.test-JOE", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("example.test", "joe"), Domain: "example.test"}},
		{"example.test-joe-lists", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("example.test", "joe"), Dash: "-", Ext: "lists", Domain: "example.test"}},
		{"example.test-joe-smith", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("example.test", "joe-smith"), Domain: "example.test"}},
		{"example.test-sales", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("example.test"), Dash: "-", Ext: "sales", Domain: "example.test"}},
		{"catch.example-anyone", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("catch.example"), Dash: "-", Ext: "anyone", Domain: "catch.example"}},
		{"my-shop.example-ann", Target{User: "qmailv", UID: 8000, GID: 8000, Home: dom("my-shop.example", "ann"), Domain: "my-shop.example"}},
		{"nobody-here", Target{User: "alias", UID: 7790, GID: 2108, Home: filepath.Join(r.Root, "alias"), Dash: "-", Ext: "nobody-here"}},
	} {
		got, err := r.Resolve(tc.local)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %+v, %v\n want %+v", tc.local, got, err, tc.want)
		}
	}
	for _, local := range []string{"example.test-bob", "example.test-sales-x", "my-shop.example-joe"} {
		if _, err := r.Resolve(local); !errors.Is(err, ErrNoMailbox) {
			t.Errorf("Resolve(%q) err = %v, want ErrNoMailbox", local, err)
		}
	}
}

func TestSingleUser(t *testing.T) {
	r := setup(t)
	r.SingleUser = true
	got, err := r.Resolve("postmaster")
	want := Target{User: "qmailv", UID: 8000, GID: 8000, Home: filepath.Join(r.Root, "alias"), Dash: "-", Ext: "postmaster"}
	if err != nil || got != want {
		t.Errorf("Resolve(postmaster) = %+v, %v; want %+v", got, err, want)
	}
	// Virtual domains are the same in both modes.
	if got, err := r.Resolve("example.test-joe"); err != nil || got.Home != filepath.Join(r.Root, "domains", "example.test", "joe") {
		t.Errorf("Resolve(example.test-joe) = %+v, %v", got, err)
	}
}
