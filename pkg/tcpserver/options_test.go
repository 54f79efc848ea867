package tcpserver

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func TestParseArgs(t *testing.T) {
	def := Defaults()
	for _, tc := range []struct {
		name string
		args string
		env  map[string]string
		want func(o *Options)
	}{
		{"defaults", "0 25 prog", nil, func(o *Options) {}},
		{"bundled", "-vRH 0 25 prog", nil, func(o *Options) {
			o.Verbosity, o.RemoteInfo, o.RemoteHost = Verbose, false, false
		}},
		{"last of a pair wins", "-H -h -r -R -p -P -D -d -v -q 0 25 prog", nil, func(o *Options) {
			o.Verbosity = Quiet
			o.RemoteInfo = false
		}},
		{"values attached and apart", "-c10 -b 5 -t7 -l mx.example.com -Bhello -x/etc/tcp.smtp.cdb -X 0 25 prog", nil, func(o *Options) {
			o.Limit, o.Backlog, o.InfoTimeout = 10, 5, 7*time.Second
			o.LocalHost, o.HasLocalHost = "mx.example.com", true
			o.Banner, o.Rules, o.AllowNoRules = "hello", "/etc/tcp.smtp.cdb", true
		}},
		{"value in a bundle", "-vc 3 -1Dpo 0 25 prog", nil, func(o *Options) {
			o.Verbosity, o.Limit, o.PrintPort, o.NoDelay, o.Paranoid, o.KeepIPOptions = Verbose, 3, true, true, true, true
		}},
		{"reuse", "-k 100 0 25 prog", nil, func(o *Options) { o.Reuse = 100 }},
		{"reuse off", "-vk0 0 25 prog", nil, func(o *Options) { o.Verbosity, o.Reuse = Verbose, 0 }},
		{"ids", "-u 7770 -g 2108 0 25 prog", nil, func(o *Options) { o.UID, o.GID = 7770, 2108 }},
		{"ids from env", "-U 0 25 prog", map[string]string{"UID": "7770", "GID": "2108"}, func(o *Options) { o.UID, o.GID = 7770, 2108 }},
		{"-U then -u", "-U -u 5 0 25 prog", map[string]string{"UID": "7770", "GID": "2108"}, func(o *Options) { o.UID, o.GID = 5, 2108 }},
		{"-U with nothing set", "-u 5 -U 0 25 prog", nil, func(o *Options) { o.UID = 5 }},
		{"-l 0", "-l 0 0 25 prog", nil, func(o *Options) { o.LocalHost, o.HasLocalHost = "0", true }},
		{"options end at HOST", "-v 0 25 prog -c 5 -x y", nil, func(o *Options) {
			o.Verbosity = Verbose
			o.Program = []string{"prog", "-c", "5", "-x", "y"}
		}},
		{"empty host", "-v  25 prog", nil, func(o *Options) { o.Verbosity, o.Host = Verbose, "" }},
		{"double dash", "-- 0 25 prog", nil, func(o *Options) {}},
		{"banner may look like an option", "-B -v 0 25 prog", nil, func(o *Options) { o.Banner = "-v" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := strings.Split(tc.args, " ")
			getenv := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			got, err := ParseArgs(args, getenv, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := def
			want.Host, want.Port, want.Program = "0", "25", []string{"prog"}
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseArgs(%q)\n got %+v\nwant %+v", tc.args, got, want)
			}
		})
	}
}

func TestParseArgsOperands(t *testing.T) {
	o, err := ParseArgs([]string{"-v", "::1", "pop3", "qmail-popup", "mx", "checkpassword", "qmail-pop3d", "Maildir"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "::1" || o.Port != "pop3" || !reflect.DeepEqual(o.Program, []string{"qmail-popup", "mx", "checkpassword", "qmail-pop3d", "Maildir"}) {
		t.Errorf("got host %q port %q program %q", o.Host, o.Port, o.Program)
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-z", "0", "25", "prog"}, nil, "'z'"},
		{[]string{"-c", "0", "0", "25", "prog"}, nil, `"0" for "-c, --limit"`},
		{[]string{"-c", "x", "0", "25", "prog"}, nil, `"x" for "-c, --limit"`},
		{[]string{"-b", "-1", "0", "25", "prog"}, nil, `"-1" for "-b, --backlog"`},
		{[]string{"-k", "x", "0", "25", "prog"}, nil, `"x" for "-k, --reuse"`},
		{[]string{"-u", "joe", "0", "25", "prog"}, nil, `"joe" for "-u, --uid"`},
		{[]string{"-g", "4294967295", "0", "25", "prog"}, nil, `for "-g, --gid"`},
		{[]string{"-t", "1.5", "0", "25", "prog"}, nil, `for "-t, --info-timeout"`},
		{[]string{"-x"}, nil, "x"},
		{[]string{"0", "25"}, nil, "HOST PORT PROGRAM"},
		{[]string{"-v"}, nil, "HOST PORT PROGRAM"},
		{[]string{}, nil, "HOST PORT PROGRAM"},
		{[]string{"-U", "0", "25", "prog"}, map[string]string{"UID": "qmaild"}, "$UID"},
		{[]string{"--verbose=no", "0", "25", "prog"}, nil, "takes no value"},
	} {
		getenv := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		_, err := ParseArgs(tc.args, getenv, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrHelp) {
			t.Errorf("ParseArgs(%q): err %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestParseArgsHelp(t *testing.T) {
	var out strings.Builder
	_, err := ParseArgs([]string{"--help"}, noEnv, &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: err %v, want ErrHelp", err)
	}
	for _, want := range []string{Usage, "-x CDB", "TCPREMOTEINFO", "qmail-tcpserver(8)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	// -h is tcpserver's "look up the host", not help.
	if _, err := ParseArgs([]string{"-h", "0", "25", "prog"}, noEnv, &out); err != nil {
		t.Errorf("-h: %v", err)
	}
}
