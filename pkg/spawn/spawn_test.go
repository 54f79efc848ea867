package spawn

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Slot: 7, Mess: "5/1234", Sender: "a@b", Recipient: "c@d"}
	enc := c.Encode()
	if string(enc) != "\x075/1234\x00a@b\x00c@d\x00" {
		t.Errorf("Encode = %q", enc)
	}
	got, err := ReadCommand(bufio.NewReader(bytes.NewReader(enc)))
	if err != nil || got != c {
		t.Errorf("ReadCommand = %+v, %v", got, err)
	}
	if _, err := ReadCommand(bufio.NewReader(bytes.NewReader(enc[:5]))); err == nil {
		t.Error("truncated command accepted")
	}
}

func TestResult(t *testing.T) {
	r := Result{Slot: 3, Report: "Kdid 0+0+1/\n"}
	got, err := ReadResult(bufio.NewReader(bytes.NewReader(r.Encode())))
	if err != nil || got != r {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	long := Result{Slot: 1, Report: "Z" + strings.Repeat("x", 2*MaxReport)}
	got, err = ReadResult(bufio.NewReader(bytes.NewReader(long.Encode())))
	if err != nil || len(got.Report) != MaxReport {
		t.Errorf("long report kept %d bytes, %v", len(got.Report), err)
	}
}

func TestServe(t *testing.T) {
	var in bytes.Buffer
	for i := range 5 {
		in.Write(Command{Slot: byte(i), Mess: "1/1", Sender: "s", Recipient: "r@x"}.Encode())
	}
	var out bytes.Buffer
	err := Serve(&in, &out, 9, func(c Command) string { return "Kok " + string('0'+rune(c.Slot)) })
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&out)
	if b, _ := br.ReadByte(); b != 9 {
		t.Errorf("limit byte %d", b)
	}
	seen := map[byte]bool{}
	for {
		r, err := ReadResult(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Report != "Kok "+string('0'+rune(r.Slot)) {
			t.Errorf("slot %d report %q", r.Slot, r.Report)
		}
		seen[r.Slot] = true
	}
	if len(seen) != 5 {
		t.Errorf("%d reports, want 5", len(seen))
	}
}
