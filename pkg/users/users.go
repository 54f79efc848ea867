// Package users maps local parts to system accounts the way qmail does:
// users/assign, compiled by qmail-newu into users/cdb, and qmail-getpw's
// search of the system's password database for what users/cdb does not
// name. quail's virtual mailboxes live elsewhere (package contract).
package users

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/quail-mta/quail/pkg/cdb"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/passwd"
	"github.com/quail-mta/quail/pkg/sysfile"
)

// Entry is where mail for a local part goes: qmail-local's user, uid,
// gid, home, dash and extension arguments.
type Entry struct {
	User     string
	UID, GID int
	Home     string
	Dash     string // "" or "-": how the extension joins .qmail
	Ext      string
}

// Assign is one line of users/assign.
type Assign struct {
	Wildcard bool   // '+' line: Local is a prefix
	Local    string // as written; keys are lower-cased
	Fields   [6]string
}

// ParseAssign parses users/assign as qmail-newu does: '=' and '+' lines
// of a local part and six colon-terminated fields, ended by a line '.'.
func ParseAssign(data []byte) ([]Assign, error) {
	const file = "users/assign"
	var out []Assign
	for no := 1; ; no++ {
		if len(data) == 0 {
			return nil, control.Errorf(file, no, "missing the final line \".\"")
		}
		line, rest, found := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) > 0 && line[0] == '.' {
			return out, nil
		}
		if !found {
			return nil, control.Errorf(file, no, "missing the final line \".\"")
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, control.Errorf(file, no, "NUL byte")
		}
		if len(line) == 0 || (line[0] != '=' && line[0] != '+') {
			return nil, control.Errorf(file, no, "want =local:user:uid:gid:home:dash:ext: or +prefix:user:uid:gid:home:dash:pre:")
		}
		local, fields, ok := bytes.Cut(line[1:], []byte{':'})
		if !ok {
			return nil, control.Errorf(file, no, "no ':' after the local part")
		}
		f := strings.SplitN(string(fields), ":", 7)
		if len(f) < 7 {
			return nil, control.Errorf(file, no, "want six fields after the local part, each ended by ':'")
		}
		a := Assign{Wildcard: line[0] == '+', Local: string(local)}
		copy(a.Fields[:], f[:6])
		out = append(out, a)
	}
}

// WriteCDB compiles assign into root/users/cdb, byte for byte as
// qmail-newu would, and installs it atomically.
func WriteCDB(root string, assign []Assign) error {
	w, err := cdb.Create(filepath.Join(root, "users", "cdb"), 0o644)
	if err != nil {
		return err
	}
	var wild []byte
	for _, a := range assign {
		key := []byte("!" + strings.ToLower(a.Local))
		if a.Wildcard {
			if n := len(a.Local); n > 0 && bytes.IndexByte(wild, a.Local[n-1]) < 0 {
				wild = append(wild, a.Local[n-1])
			}
		} else {
			key = append(key, 0)
		}
		if err := w.Add(key, []byte(strings.Join(a.Fields[:], "\x00"))); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Add(nil, wild); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// Newu is qmail-newu: compile root/users/assign into root/users/cdb.
func Newu(root string) error {
	data, err := sysfile.ReadFile(filepath.Join(root, "users", "assign"))
	if err != nil {
		return fmt.Errorf("read users/assign: %w", err)
	}
	assign, err := ParseAssign(data)
	if err != nil {
		return err
	}
	return WriteCDB(root, assign)
}

// ErrCDB wraps trouble reading users/cdb (qmail-lspawn's exit 117).
var ErrCDB = errors.New("trouble reading users/cdb")

// Lookup finds local in root/users/cdb as qmail-lspawn does: the exact
// entry first, then wildcard entries, longest prefix first. ok is false
// when users/cdb is absent or names nothing for local.
func Lookup(root, local string) (e Entry, ok bool, err error) {
	db, err := cdb.Open(filepath.Join(root, "users", "cdb"))
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %v", ErrCDB, err)
	}
	defer db.Close()
	wild, found, err := db.Get(nil)
	if err != nil || !found {
		return Entry{}, false, fmt.Errorf("%w: no wildcard record (rebuild it with qmail-newu): %v", ErrCDB, err)
	}
	key := []byte("!" + strings.ToLower(local) + "\x00")
	for i, flagwild := len(key), false; i > 0; i, flagwild = i-1, true {
		if flagwild && i > 1 && bytes.IndexByte(wild, key[i-1]) < 0 {
			continue
		}
		data, found, err := db.Get(key[:i])
		if err != nil {
			return Entry{}, false, fmt.Errorf("%w: %v", ErrCDB, err)
		}
		if !found {
			continue
		}
		if flagwild {
			data = append(data, local[i-1:]...)
		}
		e, err := parseEntry(data)
		if err != nil {
			return Entry{}, false, fmt.Errorf("%w: %v", ErrCDB, err)
		}
		return e, true, nil
	}
	return Entry{}, false, nil
}

// parseEntry reads user\0uid\0gid\0home\0dash\0ext.
func parseEntry(data []byte) (Entry, error) {
	f := strings.Split(string(data), "\x00")
	if len(f) != 6 {
		return Entry{}, fmt.Errorf("entry has %d fields, want 6", len(f))
	}
	uid, err1 := strconv.Atoi(f[1])
	gid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Entry{}, fmt.Errorf("entry for %s has non-numeric uid or gid", f[0])
	}
	return Entry{User: f[0], UID: uid, GID: gid, Home: f[3], Dash: f[4], Ext: f[5]}, nil
}

// Format is the entry as qmail-getpw prints it: six NUL-terminated fields.
func (e Entry) Format() []byte {
	return fmt.Appendf(nil, "%s\x00%d\x00%d\x00%s\x00%s\x00%s\x00", e.User, e.UID, e.GID, e.Home, e.Dash, e.Ext)
}

// Passwd is the system password database qmail-getpw searches.
type Passwd interface {
	// Lookup returns the account name; ok is false when there is none.
	Lookup(name string) (e Entry, ok bool, err error)
}

// System is the host's password database (getpwnam), as package passwd
// reads it.
type System struct{}

// Lookup implements Passwd.
func (System) Lookup(name string) (Entry, bool, error) {
	u, ok, err := passwd.Lookup(name)
	return Entry{User: u.Name, UID: u.UID, GID: u.GID, Home: u.Home}, ok, err
}

// maxUserLen is qmail-getpw's limit: longer prefixes are never names.
const maxUserLen = 32

// ErrNoAlias means neither an account nor the alias user takes the mail
// (qmail-getpw's exit 116).
var ErrNoAlias = errors.New("unable to find alias user")

// Getpw is qmail-getpw: the longest prefix of local, ending at its end or
// at a '-', that names an account with a uid other than 0 whose home
// directory exists and belongs to it; else the alias user with the whole
// local part as extension.
func Getpw(pw Passwd, local, alias string) (Entry, error) {
	return getpw(pw, local, alias, false)
}

// GetpwOutsider is Getpw for a caller without the rights delivery has,
// such as qmail-smtpd's recipient check running as qmaild: a home it may
// not stat (EACCES) is taken to exist and belong to its account, since
// delivery, running as root, would find it so. Telling such an account
// from the alias user's extension would need root.
func GetpwOutsider(pw Passwd, local, alias string) (Entry, error) {
	return getpw(pw, local, alias, true)
}

func getpw(pw Passwd, local, alias string, outsider bool) (Entry, error) {
	for end := len(local); end >= 0; end-- {
		if end < len(local) && local[end] != '-' {
			continue
		}
		if end >= maxUserLen {
			continue
		}
		e, found, err := pw.Lookup(strings.ToLower(local[:end]))
		if err != nil {
			return Entry{}, err
		}
		if !found || e.UID == 0 {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(e.Home, &st); err != nil {
			if outsider && err == syscall.EACCES {
				if end < len(local) {
					e.Dash, e.Ext = "-", local[end+1:]
				}
				return e, nil
			}
			switch err {
			case syscall.ENOENT, syscall.ENOTDIR, syscall.EACCES, syscall.ELOOP, syscall.ENAMETOOLONG:
				continue // not a usable home: not this account
			}
			return Entry{}, fmt.Errorf("stat home of %s: %w", e.User, err)
		}
		if int(st.Uid) != e.UID {
			continue
		}
		if end < len(local) {
			e.Dash, e.Ext = "-", local[end+1:]
		}
		return e, nil
	}
	e, found, err := pw.Lookup(alias)
	if err != nil {
		return Entry{}, err
	}
	if !found {
		return Entry{}, ErrNoAlias
	}
	e.Dash, e.Ext = "-", local
	return e, nil
}
