package dotqmail

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
)

// Kind is what a .qmail line asks for.
type Kind int

// Kinds of delivery instruction.
const (
	Maildir Kind = iota + 1 // a line starting with '.' or '/' and ending with '/'
	Mbox                    // any other line starting with '.' or '/'
	Program                 // '|': run the rest with /bin/sh -c
	Forward                 // '&' and the address, or a bare address
)

func (k Kind) String() string {
	switch k {
	case Maildir:
		return "maildir"
	case Mbox:
		return "mbox"
	case Program:
		return "program"
	case Forward:
		return "forward"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Instruction is one delivery a .qmail file asks for.
type Instruction struct {
	Kind Kind
	// Arg is the Maildir or mbox path as written (a Maildir's with its
	// trailing '/'), the shell command after '|', or the address.
	Arg string
}

// String is the line qmail-local -n prints: "maildir ./Maildir/",
// "mbox ./Mailbox", "program CMD", "forward ADDR".
func (in Instruction) String() string { return in.Kind.String() + " " + in.Arg }

// Parse reads the lines of a .qmail file as qmail-local does. content
// is the file, mode its mode; an empty content means defaultDelivery
// (qmail-start's argument), which is read the same way but never
// forward-only.
//
// Lines end at '\n' (a missing final one is supplied); spaces and tabs
// at their end are removed. Then the first byte decides: '#' comment;
// nothing: ignored, except that a blank first line is an error
// (ErrFirstBlank); '|' program; '.' or '/' a file, a Maildir when the
// line ends with '/', else an mbox; '&' forward to the rest; "+list"
// makes the rest of the file forward-only, and any other '+' line is
// ignored (qmail's undocumented behaviour); anything else is an address
// to forward to, the whole line.
//
// A file whose owner x bit is set is forward-only: a file or program
// line in it is an error (ErrFileForwardOnly, ErrProgForwardOnly).
//
// Parse checks the whole file before any delivery starts, where qmail
// stops at the offending line after delivering the lines above it; the
// two differ only for a file or program line after "+list" (see
// docs/dot-qmail.5.md). It also refuses what qmail never limited:
// content over MaxSize bytes (ErrTooLarge), over MaxLines lines
// (ErrTooManyLines), or with a NUL byte (ErrNUL), which qmail would have
// cut the line at. Every error is temporary.
func Parse(content []byte, mode fs.FileMode, defaultDelivery string) ([]Instruction, error) {
	forwardOnly := mode.Perm()&0o100 != 0
	if len(content) == 0 {
		content = []byte(defaultDelivery)
		forwardOnly = false
	}
	if len(content) > MaxSize {
		return nil, ErrTooLarge
	}
	if bytes.IndexByte(content, 0) >= 0 {
		return nil, ErrNUL
	}
	text := string(content)
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text = text[:len(text)-1]
	if strings.Count(text, "\n") >= MaxLines {
		return nil, ErrTooManyLines
	}
	var out []Instruction
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			if i == 0 {
				return nil, ErrFirstBlank
			}
			continue
		}
		switch line[0] {
		case '#':
		case '.', '/':
			if forwardOnly {
				return nil, ErrFileForwardOnly
			}
			kind := Mbox
			if line[len(line)-1] == '/' {
				kind = Maildir
			}
			out = append(out, Instruction{Kind: kind, Arg: line})
		case '|':
			if forwardOnly {
				return nil, ErrProgForwardOnly
			}
			out = append(out, Instruction{Kind: Program, Arg: line[1:]})
		case '+':
			if line[1:] == "list" {
				forwardOnly = true
			}
		case '&':
			out = append(out, Instruction{Kind: Forward, Arg: line[1:]})
		default:
			out = append(out, Instruction{Kind: Forward, Arg: line})
		}
	}
	return out, nil
}
