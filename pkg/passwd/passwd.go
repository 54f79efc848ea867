// Package passwd looks accounts and groups up in the host's passwd(5)
// and group(5) files, by the rules Go's os/user follows there (its
// reading of glibc's parser), the files being all that a static Go
// program can consult.
//
// The files are read through sysfile's cache: qmail-lspawn looks an
// account up for every delivery, a reused qmail-smtpd for every
// recipient, and a hosting provider's /etc/passwd can hold thousands of
// lines. A lookup then costs one stat(2) and a scan of the cached bytes;
// the file is read again when it changes (sysfile.ReadFileShared). The
// price is the file's size in memory for the life of a process that
// looked something up, one-shot programs and supervisors included.
package passwd

import (
	"bytes"
	"strconv"

	"github.com/quail-mta/quail/pkg/sysfile"
)

// The files read. Tests point them elsewhere.
var (
	File      = "/etc/passwd"
	GroupFile = "/etc/group"
)

// User is an account's entry.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// Lookup returns the account called name; ok is false when there is
// none. err is set only when the file cannot be read.
func Lookup(name string) (u User, ok bool, err error) {
	data, err := sysfile.ReadFileShared(File)
	if err != nil {
		return User{}, false, err
	}
	u, ok = parseUser(data, name)
	return u, ok, nil
}

// LookupGroup returns the gid of the group called name; ok is false when
// there is none. err is set only when the file cannot be read.
func LookupGroup(name string) (gid int, ok bool, err error) {
	data, err := sysfile.ReadFileShared(GroupFile)
	if err != nil {
		return 0, false, err
	}
	gid, ok = parseGroup(data, name)
	return gid, ok, nil
}

// parseUser finds name in the contents of a passwd file: lines trimmed of
// surrounding space; blank lines, comments and NIS entries ("+" and "-")
// skipped, and lines of fewer than seven fields or with ids that are not
// numbers; the first entry of that name wins.
func parseUser(data []byte, name string) (User, bool) {
	f, ok := find(data, name, 7)
	if !ok {
		return User{}, false
	}
	uid, _ := strconv.Atoi(string(f[2])) // find checked both
	gid, _ := strconv.Atoi(string(f[3]))
	return User{Name: name, UID: uid, GID: gid, Home: string(f[5])}, true
}

// parseGroup is parseUser for a group file, whose lines have four fields.
func parseGroup(data []byte, name string) (int, bool) {
	f, ok := find(data, name, 4)
	if !ok {
		return 0, false
	}
	gid, _ := strconv.Atoi(string(f[2])) // find checked it
	return gid, true
}

// find returns the fields of the first usable line of data whose first
// field is name, split into at most n fields. A line with a named entry
// whose ids do not parse is skipped by glibc and the search goes on, so
// find checks the numeric fields itself (2 always, 3 in a passwd line).
func find(data []byte, name string, n int) ([][]byte, bool) {
	if name == "" {
		return nil, false
	}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' || bytes.Count(line, []byte{':'}) < n-1 {
			continue
		}
		f := bytes.SplitN(line, []byte{':'}, n)
		if string(f[0]) != name || !numeric(f[2]) || (n == 7 && !numeric(f[3])) {
			continue
		}
		return f, true
	}
	return nil, false
}

func numeric(b []byte) bool {
	_, err := strconv.Atoi(string(b))
	return err == nil
}
