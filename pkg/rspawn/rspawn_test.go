package rspawn

import (
	"testing"

	"github.com/quail-mta/quail/pkg/remote"
)

func TestReport(t *testing.T) {
	acc := func(t string) remote.Report { return remote.Report{Status: remote.Accepted, Text: t} }
	tmp := func(t string) remote.Report { return remote.Report{Status: remote.TempFail, Text: t} }
	prm := func(t string) remote.Report { return remote.Report{Status: remote.PermFail, Text: t} }
	for _, tc := range []struct {
		name string
		r    remote.Result
		want string
	}{
		{"delivered", remote.Result{Recipients: []remote.Report{acc("")}, Message: acc("192.0.2.7 accepted message.\nRemote host said: 250 ok\n")},
			"K192.0.2.7 accepted message.\nRemote host said: 250 ok\n"},
		{"recipient refused", remote.Result{Recipients: []remote.Report{prm("192.0.2.7 does not like recipient.\nRemote host said: 550 no\nGiving up on 192.0.2.7.\n")}, Message: prm("")},
			"D192.0.2.7 does not like recipient.\nRemote host said: 550 no\nGiving up on 192.0.2.7.\n"},
		{"recipient deferred", remote.Result{Recipients: []remote.Report{tmp("192.0.2.7 does not like recipient.\nRemote host said: 450 later\n")}, Message: prm("")},
			"Z192.0.2.7 does not like recipient.\nRemote host said: 450 later\n"},
		{"accepted, message failed after the dot", remote.Result{Recipients: []remote.Report{acc("")}, Message: tmp("192.0.2.7 failed after I sent the message.\nRemote host said: 451 disk\n")},
			"Z192.0.2.7 failed after I sent the message.\nRemote host said: 451 disk\n"},
		{"no connection", remote.Result{Message: tmp("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")},
			"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"},
		{"sender refused", remote.Result{Message: prm("Connected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n")},
			"DConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n"},
	} {
		if got := Report(tc.r); got != tc.want {
			t.Errorf("%s: Report = %q, want %q", tc.name, got, tc.want)
		}
	}
}
