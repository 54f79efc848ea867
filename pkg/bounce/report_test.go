package bounce

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		name, rcpt, text, want string
	}{
		{"plain", "bob@example.net", "Sorry, no mailbox here by that name. (#5.1.1)\n",
			"<bob@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"},
		{"no final newline", "bob@example.net", "Giving up on 192.0.2.7.",
			"<bob@example.net>:\nGiving up on 192.0.2.7.\n\n"},
		{"empty text", "bob@example.net", "", "<bob@example.net>:\n\n"},
		{"empty line inside", "b@x", "a\n\nb\n", "<b@x>:\na\n/b\n\n"},
		{"two empty lines", "b@x", "a\n\n\nb\n", "<b@x>:\na\n//b\n\n"},
		{"text starts empty", "b@x", "\nb\n", "<b@x>:\n/b\n\n"},
		// qmail leaves an empty line at the very end alone.
		{"trailing empty line", "b@x", "a\n\n", "<b@x>:\na\n\n\n"},
		{"newline in recipient", "b\n@x", "a\n", "<b_@x>:\na\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Format(tc.rcpt, tc.text)); got != tc.want {
				t.Errorf("Format(%q, %q) = %q, want %q", tc.rcpt, tc.text, got, tc.want)
			}
		})
	}
}

func TestAppendParseRoundTrip(t *testing.T) {
	in := []Failure{
		{"bob@example.net", "192.0.2.7 does not like recipient.\nRemote host said: 550 no such user\nGiving up on 192.0.2.7.\n"},
		{"carol@example.com", "Sorry, no mailbox here by that name. (#5.1.1)\n"},
		{"", ""},
		{"dave@example.com", "line one\n/line three\n"},
		{"<odd>:@example.com", "<looks>:\nlike a header\n"},
	}
	var buf bytes.Buffer
	for _, f := range in {
		if err := Append(&buf, f.Recipient, f.Text); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("Parse(Append(...)) = %q, want %q", got, in)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []Failure
		wantErr bool
	}{
		{"empty file", "", nil, false},
		// What qmail-send writes for a report that ended with an empty line.
		{"extra empty lines", "<a@x>:\ntext\n\n\n<b@x>:\nmore\n\n",
			[]Failure{{"a@x", "text\n"}, {"b@x", "more\n"}}, false},
		{"cut after the report", "<a@x>:\ntext\n", []Failure{{"a@x", "text\n"}}, false},
		{"cut inside a line", "<a@x>:\nte", []Failure{{"a@x", "te\n"}}, false},
		{"cut after the recipient", "<a@x>:\n", []Failure{{"a@x", ""}}, false},
		{"cut inside the recipient", "<a@x>:\ntext\n\n<b@", []Failure{{"a@x", "text\n"}}, true},
		{"no recipient line", "text\n\n", nil, true},
		{"garbage after an entry", "<a@x>:\nt\n\nnot an entry\n", []Failure{{"a@x", "t\n"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzParse feeds arbitrary bounce files to Parse: it must never panic,
// what it returns must keep its promises (a text is empty or ends with a
// newline and holds no empty line), and writing the failures back with
// Format must read back the same. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("<a@x>:\ntext\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _ := Parse(data) // the failures before an error are good too
		var buf bytes.Buffer
		for _, fl := range got {
			if fl.Text != "" && (fl.Text[len(fl.Text)-1] != '\n' || bytes.Contains([]byte(fl.Text), []byte("\n\n")) || fl.Text[0] == '\n') {
				t.Fatalf("Parse(%q) gave text %q", data, fl.Text)
			}
			buf.Write(Format(fl.Recipient, fl.Text))
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse of Format's output %q: %v", buf.Bytes(), err)
		}
		if len(again) != len(got) || (len(got) > 0 && !reflect.DeepEqual(again, got)) {
			t.Fatalf("round trip of %q: got %q, want %q", data, again, got)
		}
	})
}
