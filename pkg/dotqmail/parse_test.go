package dotqmail

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		def     string
		want    []Instruction
		wantErr error
	}{
		{"maildir", "./Maildir/\n", 0o644, "", []Instruction{{Maildir, "./Maildir/"}}, nil},
		{"absolute maildir", "/var/mail/joe/\n", 0o644, "", []Instruction{{Maildir, "/var/mail/joe/"}}, nil},
		{"mbox", "./Mailbox\n", 0o644, "", []Instruction{{Mbox, "./Mailbox"}}, nil},
		{"absolute mbox", "/var/spool/mail/joe", 0o644, "", []Instruction{{Mbox, "/var/spool/mail/joe"}}, nil},
		{"program", "|preline /usr/bin/procmail\n", 0o644, "", []Instruction{{Program, "preline /usr/bin/procmail"}}, nil},
		{"program keeps inner spaces", "|  echo  hi\n", 0o644, "", []Instruction{{Program, "  echo  hi"}}, nil},
		{"empty program", "|\n", 0o644, "", []Instruction{{Program, ""}}, nil},
		{"ampersand forward", "&bob@example.org\n", 0o644, "", []Instruction{{Forward, "bob@example.org"}}, nil},
		{"ampersand keeps a leading '#'", "&#weird@example.org\n", 0o644, "", []Instruction{{Forward, "#weird@example.org"}}, nil},
		{"bare forward", "bob@example.org\n", 0o644, "", []Instruction{{Forward, "bob@example.org"}}, nil},
		{"bare forward, whole line", " bob\n", 0o644, "", []Instruction{{Forward, " bob"}}, nil},
		{"comment", "# a comment\n./Maildir/\n#./Mailbox\n", 0o644, "", []Instruction{{Maildir, "./Maildir/"}}, nil},
		{"trailing spaces and tabs", "./Maildir/ \t \n|cmd\t\n&a@b  \n", 0o644, "", []Instruction{{Maildir, "./Maildir/"}, {Program, "cmd"}, {Forward, "a@b"}}, nil},
		{"CR is not stripped", "./Maildir/\r\n", 0o644, "", []Instruction{{Mbox, "./Maildir/\r"}}, nil},
		{"blank lines later are ignored", "./Maildir/\n\n   \n\t\n&a\n", 0o644, "", []Instruction{{Maildir, "./Maildir/"}, {Forward, "a"}}, nil},
		{"no final newline", "&a\n&b", 0o644, "", []Instruction{{Forward, "a"}, {Forward, "b"}}, nil},
		{"order kept", "&a\n./Mailbox\n|p\n./M/\n", 0o644, "", []Instruction{{Forward, "a"}, {Mbox, "./Mailbox"}, {Program, "p"}, {Maildir, "./M/"}}, nil},
		{"other + lines are ignored", "+foo\n+\n&a\n", 0o644, "", []Instruction{{Forward, "a"}}, nil},
		{"+list before forwards only", "+list\n&a\nb\n", 0o644, "", []Instruction{{Forward, "a"}, {Forward, "b"}}, nil},
		{"+list with trailing space", "+list \n&a\n", 0o644, "", []Instruction{{Forward, "a"}}, nil},
		{"only comments", "#nothing\n", 0o644, "", nil, nil},

		{"blank first line", "\n./Maildir/\n", 0o644, "", nil, ErrFirstBlank},
		{"whitespace first line", " \t\n./Maildir/\n", 0o644, "", nil, ErrFirstBlank},

		{"x bit: forwards fine", "&a\nb@c\n#c\n", 0o744, "", []Instruction{{Forward, "a"}, {Forward, "b@c"}}, nil},
		{"x bit: file line", "&a\n./Maildir/\n", 0o744, "", nil, ErrFileForwardOnly},
		{"x bit: mbox line", "/var/mail/joe\n", 0o700, "", nil, ErrFileForwardOnly},
		{"x bit: program line", "&a\n|cmd\n", 0o744, "", nil, ErrProgForwardOnly},
		{"group x bit does not count", "./Maildir/\n", 0o654, "", []Instruction{{Maildir, "./Maildir/"}}, nil},
		{"+list then file", "&a\n+list\n./Maildir/\n", 0o644, "", nil, ErrFileForwardOnly},
		{"+list then program", "+list\n|cmd\n", 0o644, "", nil, ErrProgForwardOnly},
		{"file then +list then file: checked before delivering", "./M/\n+list\n./N/\n", 0o644, "", nil, ErrFileForwardOnly},
		{"+list must be exact", "+lists\n./M/\n", 0o644, "", []Instruction{{Maildir, "./M/"}}, nil},

		{"empty: default delivery", "", 0o644, "./Maildir/", []Instruction{{Maildir, "./Maildir/"}}, nil},
		{"empty with x bit: default not forward-only", "", 0o744, "|cmd\n./Mailbox", []Instruction{{Program, "cmd"}, {Mbox, "./Mailbox"}}, nil},
		{"empty default delivery", "", 0o644, "", nil, ErrFirstBlank},

		{"NUL byte", "&a\x00b\n", 0o644, "", nil, ErrNUL},
		{"NUL in default", "", 0o644, "./M\x00/", nil, ErrNUL},
		{"size cap", strings.Repeat("#\n", MaxSize/2) + "#", 0o644, "", nil, ErrTooLarge},
		{"line cap", strings.Repeat("&a\n", MaxLines+1), 0o644, "", nil, ErrTooManyLines},
		{"line cap, last line without newline", strings.Repeat("#\n", MaxLines) + "&a", 0o644, "", nil, ErrTooManyLines},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(tt.content), tt.mode, tt.def)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseAtCaps(t *testing.T) {
	t.Parallel()
	// Exactly MaxLines lines and exactly MaxSize bytes are accepted.
	ins, err := Parse([]byte(strings.Repeat("&a\n", MaxLines)), 0o644, "")
	if err != nil || len(ins) != MaxLines {
		t.Errorf("MaxLines lines: %d instructions, %v", len(ins), err)
	}
	big := "&" + strings.Repeat("a", MaxSize-2) + "\n"
	if ins, err = Parse([]byte(big), 0o644, ""); err != nil || len(ins) != 1 {
		t.Errorf("MaxSize bytes: %d instructions, %v", len(ins), err)
	}
}

func TestParseErrorTexts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		text string
	}{
		{ErrFirstBlank, "Uh-oh: first line of .qmail file is blank. (#4.2.1)"},
		{ErrFileForwardOnly, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"},
		{ErrProgForwardOnly, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"},
		{ErrTooLarge, "Uh-oh: .qmail file is larger than 1048576 bytes. (#4.2.1)"},
		{ErrTooManyLines, "Uh-oh: .qmail file has more than 10000 lines. (#4.2.1)"},
		{ErrNUL, "Uh-oh: .qmail file contains a NUL byte. (#4.2.1)"},
	}
	for _, tt := range tests {
		if tt.err.Error() != tt.text || !tt.err.Temporary() || tt.err.ExitCode() != 111 {
			t.Errorf("%q: temporary %v, exit %d; want %q, temporary, 111", tt.err.Error(), tt.err.Temporary(), tt.err.ExitCode(), tt.text)
		}
	}
}

func TestInstructionString(t *testing.T) {
	t.Parallel()
	// qmail-local -n prints these.
	ins, err := Parse([]byte("./Maildir/\n./Mailbox\n|prog arg\n&a@b\nc@d\n"), 0o644, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.String())
	}
	want := []string{"maildir ./Maildir/", "mbox ./Mailbox", "program prog arg", "forward a@b", "forward c@d"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
