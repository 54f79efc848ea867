package dotqmail

import (
	"testing"
)

func TestProgramResult(t *testing.T) {
	t.Parallel()
	permanent := map[int]bool{100: true, 64: true, 65: true, 70: true, 76: true, 77: true, 78: true, 112: true}
	for code := range 256 {
		want := Temporary
		switch {
		case code == 0:
			want = Delivered
		case code == 99:
			want = DeliveredStop
		case permanent[code]:
			want = Permanent
		}
		if got := ProgramResult(code, false); got != want {
			t.Errorf("exit %d: %v, want %v", code, got, want)
		}
		if got := ProgramResult(code, true); got != Crashed {
			t.Errorf("signaled with %d: %v, want crashed", code, got)
		}
	}
}

func TestOutcomeMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o      Outcome
		failed bool
		stop   bool
		exit   int
		text   string
	}{
		{Delivered, false, false, 0, ""},
		{DeliveredStop, false, true, 0, ""},
		{Permanent, true, false, 100, ""},
		{Temporary, true, false, 111, ""},
		{Crashed, true, false, 111, "Aack, child crashed. (#4.3.0)"},
	}
	for _, tt := range tests {
		if tt.o.Failed() != tt.failed || tt.o.Stop() != tt.stop || tt.o.ExitCode() != tt.exit || tt.o.Text() != tt.text {
			t.Errorf("%v: Failed %v Stop %v ExitCode %d Text %q; want %v %v %d %q",
				tt.o, tt.o.Failed(), tt.o.Stop(), tt.o.ExitCode(), tt.o.Text(), tt.failed, tt.stop, tt.exit, tt.text)
		}
	}
}

func TestCountsReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c    Counts
		want string
	}{
		{Counts{}, "did 0+0+0\n"},
		{Counts{Files: 1}, "did 1+0+0\n"},
		{Counts{Files: 2, Forwards: 3, Programs: 4, QP: 12345}, "did 2+3+4\nqp 12345\n"},
		{Counts{Programs: 1}, "did 0+0+1\n"},
	}
	for _, tt := range tests {
		if got := tt.c.Report(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestLspawnReport(t *testing.T) {
	t.Parallel()
	out := []byte("did 1+0+0\n")
	tests := []struct {
		status  int
		crashed bool
		output  []byte
		want    string
	}{
		{0, false, out, "Kdid 1+0+0\n"},
		{111, false, []byte("Unable to open x. (#4.3.0)\n"), "ZUnable to open x. (#4.3.0)\n"},
		{71, false, out, "Zdid 1+0+0\n"},
		{74, false, out, "Zdid 1+0+0\n"},
		{75, false, out, "Zdid 1+0+0\n"},
		{100, false, []byte("Sorry, no mailbox here by that name. (#5.1.1)\n"), "DSorry, no mailbox here by that name. (#5.1.1)\n"},
		{1, false, out, "Ddid 1+0+0\n"},
		{72, false, out, "Ddid 1+0+0\n"},
		{101, false, out, "Ddid 1+0+0\n"},
		{114, false, out, "Ddid 1+0+0\n"},
		{122, false, out, "Ddid 1+0+0\n"},
		{255, false, out, "Ddid 1+0+0\n"},
		{112, false, out, "ZInternal qmail-lspawn bug.\n"},
		{113, false, out, "ZNot allowed to perform deliveries as root.\n"},
		{115, false, out, "ZNFS failure in qmail-local.\n"},
		{116, false, out, "ZUnable to find alias user!\n"},
		{117, false, out, "ZTrouble reading users/cdb in qmail-lspawn.\n"},
		{118, false, out, "ZTemporary failure in qmail-lspawn.\n"},
		{119, false, out, "ZOut of memory in qmail-lspawn.\n"},
		{120, false, out, "ZUnable to run qmail-local.\n"},
		{121, false, out, "ZUnable to run qmail-getpw.\n"},
		{126, false, out, "DUnable to run qmail-local.\n"},
		{0, true, out, "Zqmail-local crashed.\n"},
		{100, true, out, "Zqmail-local crashed.\n"},
		{0, false, []byte("did 0+0+1\n\x00hidden"), "Kdid 0+0+1\n"},
		{0, false, nil, "K"},
	}
	for _, tt := range tests {
		if got := LspawnReport(tt.status, tt.crashed, tt.output); got != tt.want {
			t.Errorf("status %d crashed %v: %q, want %q", tt.status, tt.crashed, got, tt.want)
		}
	}
}
