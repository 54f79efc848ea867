package spawn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
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
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	long := Result{Slot: 1, Report: "Z" + strings.Repeat("x", 2*MaxReport)}
	got, err = ReadResult(bufio.NewReader(bytes.NewReader(long.Encode())))
	if err != nil || len(got.Report) != MaxReport {
		t.Errorf("long report kept %d bytes, %v", len(got.Report), err)
	}
}

func TestBatchWire(t *testing.T) {
	b := Batch{Slot: 4, Mess: "5/1234", Sender: "a@b", Recipients: []string{"x@d", "y@d", "z@d"}}
	enc := b.Encode()
	if want := "\x04*3\x005/1234\x00a@b\x00x@d\x00y@d\x00z@d\x00"; string(enc) != want {
		t.Errorf("Encode = %q, want %q", enc, want)
	}
	req, err := readRequest(bufio.NewReader(bytes.NewReader(enc)), 100)
	if err != nil || !req.many || req.probe || !reflect.DeepEqual(req.Batch, b) {
		t.Errorf("readRequest = %+v, %v", req, err)
	}
	// One recipient is qmail's command, byte for byte.
	one := Batch{Slot: 4, Mess: "5/1234", Sender: "a@b", Recipients: []string{"x@d"}}
	if string(one.Encode()) != "\x045/1234\x00a@b\x00x@d\x00" {
		t.Errorf("one-recipient batch = %q", one.Encode())
	}
	if string(Probe(0).Encode()) != "\x00?batch\x00\x00\x00" {
		t.Errorf("probe = %q", Probe(0).Encode())
	}
	for _, bad := range []string{"\x01*0\x005/1\x00a\x00", "\x01*101\x005/1\x00a\x00", "\x01*x\x00", "\x01*-1\x00"} {
		if _, err := readRequest(bufio.NewReader(strings.NewReader(bad)), 100); !errors.Is(err, ErrBadBatch) {
			t.Errorf("readRequest(%q) = %v, want ErrBadBatch", bad, err)
		}
	}
	if _, err := readRequest(bufio.NewReader(bytes.NewReader(enc[:len(enc)-3])), 100); err == nil {
		t.Error("truncated batch accepted")
	}

	res := Result{Slot: 4, Reports: []string{"Kok\n", "DGiving up.\n", "Zlater\n"}}
	if want := "\x04*3\x00Kok\n\x00DGiving up.\n\x00Zlater\n\x00"; string(res.Encode()) != want {
		t.Errorf("batch result = %q", res.Encode())
	}
	got, err := ReadBatchResult(bufio.NewReader(bytes.NewReader(res.Encode())), 100)
	if err != nil || !reflect.DeepEqual(got, res) {
		t.Errorf("ReadBatchResult = %+v, %v", got, err)
	}
	plain := Result{Slot: 9, Report: "Zno\n"}
	if got, err := ReadBatchResult(bufio.NewReader(bytes.NewReader(plain.Encode())), 100); err != nil || !reflect.DeepEqual(got, plain) {
		t.Errorf("ReadBatchResult(plain) = %+v, %v", got, err)
	}
	if _, err := ReadBatchResult(bufio.NewReader(strings.NewReader("\x01*5\x00Kok\x00")), 3); !errors.Is(err, ErrBadBatch) {
		t.Errorf("a batch result over the limit: %v", err)
	}
}

func TestBatchSize(t *testing.T) {
	for _, tc := range []struct {
		report string
		want   int
	}{
		{ProbeAnswer(100), 100},
		{"Kbatch 7\n", 7},
		{"Kbatch 5000", MaxBatch},
		{"Kbatch 0", 1},
		{"Kbatch x", 1},
		{"DInternal error: messid has nonnumerics. (#5.3.5)\n", 1},
		{"Krecorded\n", 1},
	} {
		if got := BatchSize(tc.report); got != tc.want {
			t.Errorf("BatchSize(%q) = %d, want %d", tc.report, got, tc.want)
		}
	}
}

// serveOut runs a spawner over in and returns its limit byte and the
// answers by slot.
func serveOut(t *testing.T, run func(in io.Reader, out io.Writer) error, in []byte, max int) (byte, map[byte]Result) {
	t.Helper()
	var out bytes.Buffer
	if err := run(bytes.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&out)
	limit, _ := br.ReadByte()
	got := map[byte]Result{}
	for {
		r, err := ReadBatchResult(br, max)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.Slot] = r
	}
	return limit, got
}

func TestServe(t *testing.T) {
	var in bytes.Buffer
	for i := range 5 {
		in.Write(Command{Slot: byte(i), Mess: "1/1", Sender: "s", Recipient: "r@x"}.Encode())
	}
	in.Write(Probe(5).Encode())
	limit, got := serveOut(t, func(in io.Reader, out io.Writer) error {
		return Serve(in, out, 9, func(c Command) string { return "Kok " + c.Mess })
	}, in.Bytes(), 1)
	if limit != 9 {
		t.Errorf("limit byte %d", limit)
	}
	if len(got) != 6 {
		t.Errorf("%d reports, want 6", len(got))
	}
	for slot, r := range got {
		if slot < 5 && r.Report != "Kok 1/1" {
			t.Errorf("slot %d report %q", slot, r.Report)
		}
	}
	// qmail's protocol knows no probe: it is a command like any other.
	if got[5].Report != "Kok ?batch" {
		t.Errorf("plain Serve answered the probe %q", got[5].Report)
	}
}

func TestServeBatches(t *testing.T) {
	var in bytes.Buffer
	in.Write(Probe(0).Encode())
	in.Write(Command{Slot: 1, Mess: "1/1", Sender: "s", Recipient: "one@x"}.Encode())
	in.Write(Batch{Slot: 2, Mess: "2/2", Sender: "s", Recipients: []string{"a@x", "b@x", "c@x"}}.Encode())
	in.Write(Batch{Slot: 3, Mess: "3/3", Sender: "s", Recipients: []string{"a@y", "b@y"}}.Encode())
	in.Write(Batch{Slot: 4, Mess: "4/4", Sender: "s", Recipients: []string{"a@z", "b@z"}}.Encode())
	_, got := serveOut(t, func(in io.Reader, out io.Writer) error {
		return ServeBatches(in, out, 20, 50, func(b Batch) []string {
			switch b.Mess {
			case "3/3":
				return []string{"Zqmail-spawn unable to open message. (#4.3.0)\n"} // one for all
			case "4/4":
				return []string{"Kjust one\n", "Kjust two\n", "Kthree?\n"} // wrong count
			}
			var reps []string
			for _, r := range b.Recipients {
				reps = append(reps, "K"+r)
			}
			return reps
		})
	}, in.Bytes(), 50)
	if got[0].Report != "Kbatch 50" {
		t.Errorf("probe answer %q", got[0].Report)
	}
	if got[1].Report != "Kone@x" || got[1].Reports != nil {
		t.Errorf("one recipient: %+v (want qmail's form)", got[1])
	}
	if !reflect.DeepEqual(got[2].Reports, []string{"Ka@x", "Kb@x", "Kc@x"}) {
		t.Errorf("batch: %+v", got[2])
	}
	if got[3].Report != "Zqmail-spawn unable to open message. (#4.3.0)\n" || got[3].Reports != nil {
		t.Errorf("one report for all: %+v", got[3])
	}
	if !strings.HasPrefix(got[4].Report, "ZInternal error") {
		t.Errorf("wrong number of reports: %+v", got[4])
	}
}

// FuzzReadRequest feeds arbitrary bytes to the spawner's command reader
// and qmail-send's answer reader: no panic, counts within their limits,
// and what is read encodes back to what was read.
func FuzzReadRequest(f *testing.F) {
	f.Add(Batch{Slot: 4, Mess: "5/1234", Sender: "a@b", Recipients: []string{"x@d", "y@d"}}.Encode())
	f.Add(Command{Slot: 1, Mess: "1/1", Sender: "", Recipient: "r@x"}.Encode())
	f.Add(Probe(0).Encode())
	f.Add(Result{Slot: 2, Reports: []string{"Kok", "Dno"}}.Encode())
	f.Add([]byte("\x01*99999999999999999999\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 8
		br := bufio.NewReader(bytes.NewReader(in))
		for {
			req, err := readRequest(br, max)
			if err != nil {
				break
			}
			if len(req.Recipients) < 1 || len(req.Recipients) > max {
				t.Fatalf("%d recipients", len(req.Recipients))
			}
			if strings.HasPrefix(req.Mess, "*") {
				continue // no S/N starts so; qmail's form could not carry it
			}
			again, err := readRequest(bufio.NewReader(bytes.NewReader(req.Encode())), max)
			if err != nil || !reflect.DeepEqual(again.Batch, req.Batch) {
				t.Fatalf("%+v encodes to something read as %+v, %v", req.Batch, again.Batch, err)
			}
		}
		br = bufio.NewReader(bytes.NewReader(in))
		for {
			res, err := ReadBatchResult(br, max)
			if err != nil {
				break
			}
			if len(res.Reports) > max || len(res.Report) > MaxReport {
				t.Fatalf("result %+v over its limits", res)
			}
			for _, r := range res.Reports {
				if len(r) > MaxReport {
					t.Fatalf("report of %d bytes", len(r))
				}
			}
		}
	})
}
