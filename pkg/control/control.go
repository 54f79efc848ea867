// Package control reads qmail control files the way qmail does.
//
// A control file lives in $QMAILHOME/control and holds either one value
// (the first line counts) or a list (one entry per line). Both kinds lose
// trailing spaces, tabs and the newline; list files also skip blank lines
// and lines that start with '#'. A missing file is not an error: the
// caller gets qmail's default, which for many files is the value of
// control/me (see Defaults).
//
// quail departs from qmail in one place, on purpose: a numeric file whose
// first line is not a plain decimal number is an error naming the file and
// line, where qmail silently kept the default (so "20MB" in databytes meant
// no limit at all) or read the leading digits ("20MB" as 20 bytes).
package control

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/quail-mta/quail/pkg/sysfile"
)

// DefaultHome is the instance root when QMAILHOME is unset or untrusted.
const DefaultHome = "/var/qmail"

// Home returns the instance root: $QMAILHOME if it is set and may be
// trusted, else DefaultHome. A setuid or setgid program must not let the
// caller's environment redirect it to files the caller made (SPEC §4), so
// QMAILHOME counts only when the real uid is root or the program runs with
// the caller's own uid and gid. Such a program instead serves the
// instance it is installed in (see installedRoot), so a root install
// elsewhere than /var/qmail works for every caller.
func Home() string {
	h := os.Getenv("QMAILHOME")
	if !EnvTrusted() {
		if root, ok := installedRoot(); ok {
			return root
		}
		return DefaultHome
	}
	if h == "" {
		return DefaultHome
	}
	if abs, err := filepath.Abs(h); err == nil {
		return abs
	}
	return filepath.Clean(h)
}

// installedRoot is the instance a program is installed in, ROOT for
// ROOT/bin/PROGRAM, taken from the kernel's record of the executable (not
// from anything the caller controls), and only when ROOT/bin and ROOT
// belong to root and no one else may write them: a caller cannot make
// such directories, and with Linux's protected hard links cannot link a
// setuid program into a directory of its own.
func installedRoot() (string, bool) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", false
	}
	bin := filepath.Dir(exe)
	if filepath.Base(bin) != "bin" {
		return "", false
	}
	root := filepath.Dir(bin)
	for _, dir := range []string{bin, root} {
		var st syscall.Stat_t
		if syscall.Lstat(dir, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
			return "", false
		}
	}
	return root, true
}

// EnvTrusted reports whether this process may act on environment variables
// that redirect it (QMAILHOME, QMAILQUEUE, ...): false in a setuid or
// setgid program run by someone other than root.
func EnvTrusted() bool {
	uid := os.Getuid()
	return uid == 0 || (uid == os.Geteuid() && os.Getgid() == os.Getegid())
}

// Error is a problem with one control file, and the line when there is one.
type Error struct {
	File string // path as given to the reader, e.g. "control/databytes"
	Line int    // 1-based; 0 when the problem is not with one line
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for line of file, for callers that check the
// entries of a list file themselves.
func Errorf(file string, line int, format string, args ...any) error {
	return &Error{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

// Line is one entry of a list file with its line number, for messages.
type Line struct {
	No   int
	Text string
}

// Dir reads the control files of one instance.
type Dir struct {
	root string
}

// New returns a reader for the control files under root (the instance
// root, not its control subdirectory).
func New(root string) Dir { return Dir{root: root} }

// Root is the instance root the files are read from.
func (d Dir) Root() string { return d.root }

// Path is the file name of control file name.
func (d Dir) Path(name string) string { return filepath.Join(d.root, "control", name) }

// rel is the name used in error messages, as an admin would type it from
// the instance root.
func rel(name string) string { return "control/" + name }

// Value reads a single-value control file: its first line without
// trailing whitespace. ok is false when the file does not exist.
func (d Dir) Value(name string) (v string, ok bool, err error) {
	data, err := sysfile.ReadFileCached(d.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, &Error{File: rel(name), Err: err}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return trimRight(line), true, nil
}

// List reads a list control file. A missing file gives a nil list, except
// for files that qmail defaults to control/me (locals).
func (d Dir) List(name string) ([]string, error) {
	lines, err := d.Lines(name)
	if err != nil {
		return nil, err
	}
	if lines == nil {
		return d.listDefault(name)
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out, err
}

// Lines is List with line numbers, for callers that check each entry.
func (d Dir) Lines(name string) ([]Line, error) {
	data, err := sysfile.ReadFileCached(d.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{File: rel(name), Err: err}
	}
	return ParseList(data), nil
}

// ParseList splits the contents of a list file into its entries.
func ParseList(data []byte) []Line {
	out := []Line{}
	for no := 1; len(data) > 0; no++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		t := trimRight(string(line))
		if t == "" || t[0] == '#' {
			continue
		}
		out = append(out, Line{No: no, Text: t})
	}
	return out
}

// Int reads a numeric control file, with qmail's default (quail's for
// databytes) when the file does not exist.
func (d Dir) Int(name string) (int64, error) {
	def, ok := intDefaults[name]
	if !ok {
		return 0, &Error{File: rel(name), Err: errors.New("not a numeric control file (quail bug)")}
	}
	return d.IntOr(name, def)
}

// IntOr reads a numeric control file; def when the file does not exist.
func (d Dir) IntOr(name string, def int64) (int64, error) {
	v, ok, err := d.Value(name)
	if err != nil || !ok {
		return def, err
	}
	n, err := ParseInt(v)
	if err != nil {
		return def, &Error{File: rel(name), Line: 1, Err: err}
	}
	return n, nil
}

// ParseInt parses the value of a numeric control file: decimal digits
// only, as qmail writes them.
func ParseInt(v string) (int64, error) {
	if v == "" {
		return 0, errors.New("empty, want a decimal number")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number (digits only, no units)", v)
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", v)
	}
	return n, nil
}

// trimRight strips what qmail strips: trailing newline, spaces and tabs
// (not CR, which qmail keeps).
func trimRight(s string) string {
	for len(s) > 0 {
		switch s[len(s)-1] {
		case '\n', ' ', '\t':
			s = s[:len(s)-1]
		default:
			return s
		}
	}
	return s
}
