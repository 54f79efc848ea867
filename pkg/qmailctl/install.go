package qmailctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/privsep"
)

// binMode is how a program is installed in a root install.
type binMode struct {
	owner string // account; "" is root
	perm  fs.FileMode
}

// programs are quail's programs and their owner and mode in a root
// install: qmail's (reference §11.3) for the programs qmail has, group
// qmail for all. quail's own: checkpassword setuid root, so qmail-smtpd,
// running as qmaild, can check passwords against the root-only shadow
// files; qmail-scan setuid qmailq like qmail-queue, which it feeds.
// qmail programs quail does not have (qmail-newmrh, splogger, ...) are
// left out. A new program under cmd/ must be added here (a test checks).
var programs = map[string]binMode{
	"qmail-queue":   {privsep.Queue, 0o711 | fs.ModeSetuid},
	"qmail-scan":    {privsep.Queue, 0o711 | fs.ModeSetuid},
	"checkpassword": {"", 0o711 | fs.ModeSetuid},

	"qmail-lspawn": {"", 0o700},
	"qmail-start":  {"", 0o700},
	"qmail-newu":   {"", 0o700},

	"qmail-getpw":  {"", 0o711},
	"qmail-local":  {"", 0o711},
	"qmail-remote": {"", 0o711},
	"qmail-rspawn": {"", 0o711},
	"qmail-clean":  {"", 0o711},
	"qmail-send":   {"", 0o711},
	"qmail-popup":  {"", 0o711},

	"qmail-inject":    {"", 0o755},
	"sendmail":        {"", 0o755},
	"qmail-smtpd":     {"", 0o755},
	"qmail-pop3d":     {"", 0o755},
	"qmail-qread":     {"", 0o755},
	"qmail-qstat":     {"", 0o755},
	"qmail-showctl":   {"", 0o755},
	"qmail-tcpok":     {"", 0o755},
	"qmail-tcpto":     {"", 0o755},
	"qmail-tcpserver": {"", 0o755},
	"qmailctl":        {"", 0o755},
}

func installFlags(f *pflag.FlagSet) {
	f.String("from", "", "`DIR` holding the built programs (default: the one holding this qmailctl)")
}

func runInstall(s IO, root string, flags *pflag.FlagSet, _ []string) error {
	from, _ := flags.GetString("from")
	if from == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this program's directory: %w (give --from DIR)", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return err
		}
		from = filepath.Dir(exe)
	}
	return Install(root, from, s.Stdout)
}

// Install copies quail's programs from the directory from into ROOT/bin,
// each replaced atomically: a running program keeps its old file, the
// next start gets the new one. In a root install each gets its owner,
// group qmail and mode from programs; run by an ordinary user they are
// plain copies, mode 0755, owned by that user.
func Install(root, from string, log io.Writer) error {
	bin := filepath.Join(root, "bin")
	if st, err := os.Stat(bin); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is missing: run qmailctl init --root %s first", bin, root)
	}
	if st, err := os.Stat(from); err != nil || !st.IsDir() {
		return fmt.Errorf("--from %s: not a directory", from)
	}
	gid := -1
	if privsep.Root() {
		g, err := privsep.LookupGroup(privsep.GroupQmail)
		if err != nil {
			return err
		}
		gid = g
	}
	names := make([]string, 0, len(programs))
	for name := range programs {
		names = append(names, name)
	}
	slices.Sort(names)
	var missing []string
	installed := 0
	for _, name := range names {
		src := filepath.Join(from, name)
		st, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		mode := binMode{perm: 0o755}
		uid := -1
		if privsep.Root() {
			mode = programs[name]
			uid = 0
			if mode.owner != "" {
				ids, err := privsep.Lookup(mode.owner)
				if err != nil {
					return err
				}
				uid = ids.UID
			}
		}
		dst := filepath.Join(bin, name)
		if err := installFile(src, dst, uid, gid, mode.perm); err != nil {
			return fmt.Errorf("install %s: %w", dst, err)
		}
		installed++
		if privsep.Root() {
			owner := mode.owner
			if owner == "" {
				owner = "root"
			}
			fmt.Fprintf(log, "installed %s (%s:%s %04o)\n", dst, owner, privsep.GroupQmail, unixPerm(mode.perm))
		} else {
			fmt.Fprintf(log, "installed %s\n", dst)
		}
	}
	if installed == 0 {
		return fmt.Errorf("no quail program in %s: build them first (scripts/build), or give --from DIR", from)
	}
	if len(missing) > 0 {
		fmt.Fprintf(log, "not in %s, not installed: %s\n", from, strings.Join(missing, " "))
	}
	return nil
}

// installFile replaces dst with a copy of src, owned and moded before it
// gets its name (atomicfile.WriteFrom), so the program is never visible
// with the wrong owner or a setuid bit on the wrong owner. When src
// already is dst, only owner and mode are set.
func installFile(src, dst string, uid, gid int, perm fs.FileMode) error {
	if same(src, dst) {
		return setOwner(dst, uid, gid, perm)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var owner *atomicfile.Owner
	if uid >= 0 {
		owner = &atomicfile.Owner{UID: uid, GID: gid}
	}
	return atomicfile.WriteFrom(dst, in, perm, owner)
}

// setOwner sets owner and then mode: chown clears the setuid bit.
func setOwner(path string, uid, gid int, perm fs.FileMode) error {
	if uid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, perm)
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// unixPerm is the mode as chmod writes it, 4711 for setuid.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	return p
}
