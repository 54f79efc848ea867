package dotqmail

import (
	"errors"
	"io"
	"io/fs"
	"iter"
	"os"
	"syscall"
)

// FS is what Find needs of a file system. testing/fstest.MapFS has both
// methods; OSFS is the real one. Names are joined to home with a "/".
type FS interface {
	Stat(name string) (fs.FileInfo, error) // follows symbolic links
	Open(name string) (fs.File, error)
}

// OSFS is the operating system's file system: names are paths, absolute
// or relative to the working directory.
type OSFS struct{}

// Stat is os.Stat.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Open opens name for reading without blocking, so that a FIFO put in
// place of a .qmail file cannot hang the delivery (qmail's open_read
// does the same).
func (OSFS) Open(name string) (fs.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// Choice is the .qmail file that applies to a recipient.
type Choice struct {
	// Name is the file chosen, relative to home (".qmail-foo-default"),
	// or "" when none exists and the default delivery applies.
	Name string
	// Content is the file's content; when it is empty, the default
	// delivery applies instead.
	Content []byte
	// Mode is the file's mode: its owner x bit makes the file
	// forward-only (see Parse).
	Mode fs.FileMode
	// Default is the part of the extension that "default" in Name
	// stands for: the DEFAULT variable, set only when HasDefault.
	Default    string
	HasDefault bool
}

// Instructions parses the chosen file, or defaultDelivery when there is
// none or it is empty.
func (c Choice) Instructions(defaultDelivery string) ([]Instruction, error) {
	return Parse(c.Content, c.Mode, defaultDelivery)
}

// Find checks the home directory (CheckHome) and chooses the .qmail
// file (Search). qmail-local checks for a loop between the two; a caller
// that does too calls them itself.
func Find(fsys FS, home, dash, ext string) (Choice, error) {
	if err := CheckHome(fsys, home); err != nil {
		return Choice{}, err
	}
	return Search(fsys, home, dash, ext)
}

// patrn is qmail's conf-patrn: mode bits that make a home directory or a
// .qmail file unsafe to trust (world-writable).
const patrn = 0o002

// CheckHome refuses a home directory that others can write to, or whose
// sticky bit is set: qmail's signal that its owner is editing .qmail
// files (ErrHomeSticky; qmail-local -n only warns about it).
func CheckHome(fsys FS, home string) error {
	fi, err := fsys.Stat(home)
	if err != nil {
		return &Error{text: "Unable to stat home directory: " + SysText(err) + ". (#4.3.0)", err: err}
	}
	if fi.Mode().Perm()&patrn != 0 {
		return ErrHomeWritable
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		return ErrHomeSticky
	}
	return nil
}

// candidate is a file name Search tries and, when the name ends in
// "default", where in the extension DEFAULT starts (else -1).
type candidate struct {
	name         string
	defaultStart int
}

// candidates yields the files Search tries, in order:
// .qmail<dash><ext>, then for each cut point from the end of ext back to
// its start (the end, after each '-', the start)
// .qmail<dash><prefix>default. It makes each name only when asked for
// it: an extension of many dashes must not cost memory up front.
func candidates(dash, ext string) iter.Seq[candidate] {
	return func(yield func(candidate) bool) {
		safe := safeExt(ext)
		base := ".qmail" + dash
		exact := candidate{name: base + safe, defaultStart: -1}
		if n := len(safe) - len("default"); n >= 0 && safe[n:] == "default" {
			exact.defaultStart = n
		}
		if !yield(exact) {
			return
		}
		for i := len(safe); i >= 0; i-- {
			if i == 0 || safe[i-1] == '-' {
				if !yield(candidate{name: base + safe[:i] + "default", defaultStart: i}) {
					return
				}
			}
		}
	}
}

// safeExt is ext as it appears in file names: ASCII letters lower-cased
// and every '.' turned into ':', so an extension cannot climb out of the
// home directory with "..".
func safeExt(ext string) string {
	b := []byte(ext)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '.':
			b[i] = ':'
		}
	}
	return string(b)
}

// Search chooses the .qmail file for extension ext, as qmail-local does.
// When no file applies, a dash of "" means the default delivery (the
// zero Choice), any other dash ErrNoMailbox.
func Search(fsys FS, home, dash, ext string) (Choice, error) {
	for c := range candidates(dash, ext) {
		ch, found, err := open(fsys, home, c.name)
		if err != nil {
			return Choice{}, err
		}
		if !found {
			continue
		}
		if c.defaultStart >= 0 {
			ch.Default, ch.HasDefault = ext[c.defaultStart:], true
		}
		return ch, nil
	}
	if dash != "" {
		return Choice{}, ErrNoMailbox
	}
	return Choice{}, nil
}

// open reads .qmail file name if it is a regular file. Anything that is
// not one is passed over, as qmail does.
func open(fsys FS, home, name string) (Choice, bool, error) {
	p := join(home, name)
	fi, err := fsys.Stat(p)
	if err != nil {
		if absent(err) {
			return Choice{}, false, nil
		}
		return Choice{}, false, openError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Choice{}, false, nil
	}
	f, err := fsys.Open(p)
	if err != nil {
		if absent(err) { // removed since the Stat
			return Choice{}, false, nil
		}
		return Choice{}, false, openError(name, err)
	}
	defer f.Close()
	// Decide on what was opened, not on what Stat saw.
	if fi, err = f.Stat(); err != nil {
		return Choice{}, false, openError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Choice{}, false, nil
	}
	if fi.Mode().Perm()&patrn != 0 {
		return Choice{}, false, ErrWritable
	}
	content, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Choice{}, false, &Error{text: "Unable to read " + name + ": " + SysText(err) + ". (#4.3.0)", err: err}
	}
	if len(content) > MaxSize {
		return Choice{}, false, ErrTooLarge
	}
	return Choice{Name: name, Content: content, Mode: fi.Mode()}, true, nil
}

func openError(name string, err error) error {
	return &Error{text: "Unable to open " + name + ": " + SysText(err) + ". (#4.3.0)", err: err}
}

// absent reports whether err means there is no such file. qmail passes
// over every open error except permission and temporary ones; quail is
// stricter and passes over only these, so that an unexpected error
// defers the mail rather than sending it somewhere else.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) ||
		errors.Is(err, syscall.ENAMETOOLONG)
}

// exists reports whether name (of any type) exists in home.
func exists(fsys FS, home, name string) (bool, error) {
	_, err := fsys.Stat(join(home, name))
	if err == nil {
		return true, nil
	}
	if absent(err) {
		return false, nil
	}
	return false, openError(name, err)
}

func join(home, name string) string {
	if home == "" || home == "." {
		return name
	}
	if home[len(home)-1] == '/' {
		return home + name
	}
	return home + "/" + name
}

// NewSender is the envelope sender for forwards (NEWSENDER). When the
// sender is neither empty nor "#@[]" and a file .qmail<dash><ext>-owner
// exists (ext as in file names, of any type), it is <local>-owner@<host>,
// or, when .qmail<dash><ext>-owner-default exists too, the VERP request
// <local>-owner-@<host>-@[] that qmail-send expands per recipient.
// Otherwise it is the sender.
func NewSender(fsys FS, a Args) (string, error) {
	if a.Sender == "" || a.Sender == "#@[]" {
		return a.Sender, nil
	}
	base := ".qmail" + a.Dash + safeExt(a.Ext)
	owner, err := exists(fsys, a.Home, base+"-owner")
	if err != nil || !owner {
		return a.Sender, err
	}
	verp, err := exists(fsys, a.Home, base+"-owner-default")
	if err != nil {
		return a.Sender, err
	}
	if verp {
		return a.Local + "-owner-@" + a.Host + "-@[]", nil
	}
	return a.Local + "-owner@" + a.Host, nil
}
