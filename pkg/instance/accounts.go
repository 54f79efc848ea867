package instance

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/quail-mta/quail/pkg/passwd"
	"github.com/quail-mta/quail/pkg/privsep"
)

// ensureAccounts creates the groups and accounts that are missing, with homes
// under root, using the system's groupadd and useradd. It reports each
// one it created through created. Existing accounts are left as they are.
// "Missing" is what privsep's lookups will say: absent from the very
// files they read (package passwd).
func ensureAccounts(root string, created func(kind, name string)) error {
	for _, g := range privsep.Groups {
		_, ok, err := passwd.LookupGroup(g)
		if err != nil {
			return fmt.Errorf("look up system group %s: %w", g, err)
		}
		if ok {
			continue
		}
		if err := run("groupadd", "--system", g); err != nil {
			return err
		}
		created("group", g)
	}
	for _, a := range privsep.Accounts {
		_, ok, err := passwd.Lookup(a.Name)
		if err != nil {
			return fmt.Errorf("look up system account %s: %w", a.Name, err)
		}
		if ok {
			continue
		}
		home := root
		if a.HomeInRoot != "" {
			home = root + "/" + a.HomeInRoot
		}
		if err := run("useradd", "--system", "--no-create-home", "--home-dir", home,
			"--shell", nologin(), "--gid", a.Group, a.Name); err != nil {
			return err
		}
		created("user", a.Name)
	}
	return nil
}

func nologin() string {
	for _, p := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/false"
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return nil
}
