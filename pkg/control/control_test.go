package control

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func instance(t *testing.T, files map[string]string) Dir {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, "control", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return New(root)
}

func TestValue(t *testing.T) {
	d := instance(t, map[string]string{
		"me":           "mail.example.com \t\n",
		"two":          "first\nsecond\n",
		"nonl":         "no newline",
		"cr":           "keeps cr\r\n",
		"empty":        "",
		"leadingspace": "  x",
	})
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"me", "mail.example.com", true},
		{"two", "first", true},
		{"nonl", "no newline", true},
		{"cr", "keeps cr\r", true},
		{"empty", "", true},
		{"leadingspace", "  x", true},
		{"absent", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok, err := d.Value(tc.name)
			if err != nil || v != tc.want || ok != tc.wantOK {
				t.Errorf("Value(%q) = %q, %v, %v; want %q, %v, nil", tc.name, v, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

func TestList(t *testing.T) {
	d := instance(t, map[string]string{
		"rcpthosts": "# hosted\nexample.com\n\n.example.net  \n\t\n#x\nlast",
		"locals":    "",
	})
	got, err := d.List("rcpthosts")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"example.com", ".example.net", "last"}; !reflect.DeepEqual(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	lines, err := d.Lines("rcpthosts")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Line{{2, "example.com"}, {4, ".example.net"}, {7, "last"}}; !reflect.DeepEqual(lines, want) {
		t.Errorf("Lines = %v, want %v", lines, want)
	}
	// An existing but empty locals is an empty list, not me.
	if got, err := d.List("locals"); err != nil || len(got) != 0 {
		t.Errorf("List(empty locals) = %q, %v", got, err)
	}
	if got, err := d.List("absent"); err != nil || got != nil {
		t.Errorf("List(absent) = %q, %v", got, err)
	}
}

func TestListDefaultsToMe(t *testing.T) {
	d := instance(t, map[string]string{"me": "mx.example.org\n"})
	if got, err := d.List("locals"); err != nil || !reflect.DeepEqual(got, []string{"mx.example.org"}) {
		t.Errorf("List(locals) = %q, %v; want [mx.example.org]", got, err)
	}
	if got, err := d.List("rcpthosts"); err != nil || got != nil {
		t.Errorf("List(rcpthosts) = %q, %v; want nil (absent rcpthosts is not me)", got, err)
	}
}

func TestString(t *testing.T) {
	withMe := instance(t, map[string]string{"me": "mx.example.org", "bouncefrom": "bounces\n"})
	noMe := instance(t, nil)
	tests := []struct {
		d       Dir
		name    string
		want    string
		wantErr string
	}{
		{withMe, "bouncefrom", "bounces", ""},
		{withMe, "bouncehost", "mx.example.org", ""},
		{withMe, "helohost", "mx.example.org", ""},
		{withMe, "doublebounceto", "postmaster", ""},
		{noMe, "bouncefrom", "MAILER-DAEMON", ""},
		{noMe, "bouncehost", "bouncehost", ""},
		{noMe, "defaultdomain", "defaultdomain", ""},
		{noMe, "envnoathost", "envnoathost", ""},
		{noMe, "helohost", "", "control/helohost: missing, and so is control/me"},
		{noMe, "smtpgreeting", "", "control/smtpgreeting: missing, and so is control/me"},
		{noMe, "nosuchfile", "", "control/nosuchfile: missing, and it has no default"},
	}
	for _, tc := range tests {
		got, err := tc.d.String(tc.name)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("String(%q) error = %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("String(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestInt(t *testing.T) {
	d := instance(t, map[string]string{
		"databytes":         "1000\n",
		"timeoutsmtpd":      "20MB\n",
		"concurrencyremote": "-5",
		"queuelifetime":     "99999999999999999999999",
		"timeoutremote":     "",
	})
	if n, err := d.Int("databytes"); n != 1000 || err != nil {
		t.Errorf("Int(databytes) = %d, %v", n, err)
	}
	if n, err := d.Int("concurrencylocal"); n != 10 || err != nil {
		t.Errorf("Int(concurrencylocal) = %d, %v; want default 10", n, err)
	}
	if n, err := New(t.TempDir()).Int("databytes"); n != 20971520 || err != nil {
		t.Errorf("default databytes = %d, %v; want 20971520", n, err)
	}
	for name, want := range map[string]string{
		"timeoutsmtpd":      `control/timeoutsmtpd:1: "20MB" is not a decimal number`,
		"concurrencyremote": `control/concurrencyremote:1: "-5" is not a decimal number`,
		"queuelifetime":     `control/queuelifetime:1: "99999999999999999999999" is out of range`,
		"timeoutremote":     `control/timeoutremote:1: empty`,
	} {
		n, err := d.Int(name)
		var ce *Error
		if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Int(%q) = %d, %v; want error starting %q", name, n, err, want)
		}
		if n != intDefaults[name] {
			t.Errorf("Int(%q) on error = %d, want the default %d", name, n, intDefaults[name])
		}
	}
}

func TestUnreadable(t *testing.T) {
	d := instance(t, nil)
	// A directory where a file should be: an error naming the file, not a default.
	if err := os.Mkdir(d.Path("me"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Value("me"); err == nil || !strings.HasPrefix(err.Error(), "control/me") {
		t.Errorf("Value(dir) error = %v, want one naming control/me", err)
	}
	if _, err := d.List("me"); err == nil || !strings.HasPrefix(err.Error(), "control/me") {
		t.Errorf("List(dir) error = %v, want one naming control/me", err)
	}
}

func TestHome(t *testing.T) {
	t.Setenv("QMAILHOME", "")
	if got := Home(); got != DefaultHome {
		t.Errorf("Home() with QMAILHOME empty = %q", got)
	}
	dir := t.TempDir()
	t.Setenv("QMAILHOME", dir)
	// The test binary is not setuid, so the environment is trusted.
	if got := Home(); got != dir {
		t.Errorf("Home() = %q, want %q", got, dir)
	}
	t.Chdir(dir)
	t.Setenv("QMAILHOME", "sub/../inst")
	if got := Home(); got != filepath.Join(dir, "inst") {
		t.Errorf("Home() with relative QMAILHOME = %q, want it made absolute", got)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add([]byte("a\n#b\n\n c \t\n"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("x:y\r\nz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := ParseList(data)
		n := strings.Count(string(data), "\n") + 1
		prev := 0
		for _, l := range lines {
			if l.Text == "" || l.Text[0] == '#' {
				t.Fatalf("entry %q should have been skipped", l.Text)
			}
			if strings.ContainsRune(l.Text, '\n') || strings.HasSuffix(l.Text, " ") || strings.HasSuffix(l.Text, "\t") {
				t.Fatalf("entry %q not trimmed", l.Text)
			}
			if l.No <= prev || l.No > n {
				t.Fatalf("line number %d out of order or range (prev %d, lines %d)", l.No, prev, n)
			}
			prev = l.No
		}
	})
}

func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "20971520", "20MB", "", "-1", "9223372036854775807", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseInt(s)
		if err == nil && (n < 0 || strings.TrimLeft(s, "0123456789") != "") {
			t.Fatalf("ParseInt(%q) = %d, accepted", s, n)
		}
	})
}
