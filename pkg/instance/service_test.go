package instance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceScripts(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    ScriptOptions
		want map[string][]string // file → lines it must hold
		not  map[string][]string
	}{
		{"root install with ucspi-tcp and daemontools", ScriptOptions{Root: "/var/qmail", RootInstall: true,
			TCPServer: "/usr/bin/tcpserver", Multilog: "/usr/bin/multilog", Setuidgid: "/usr/bin/setuidgid"},
			map[string][]string{
				"smtpd/run": {"QMAILHOME=/var/qmail", "TCPSERVER=/usr/bin/tcpserver", "PORT=25", "exec 2>&1", "QMAILDUID=`id -u qmaild`",
					"\t\"$TCPSERVER\" -v -R -H -l \"$LOCAL\" -u \"$QMAILDUID\" -g \"$NOFILESGID\" \"$@\" -c \"$MAXSMTPD\" \\",
					"\t\"$HOST\" \"$PORT\" \"$QMAILHOME/bin/qmail-smtpd\""},
				"submission/run": {"PORT=587", "\t\"$HOST\" \"$PORT\" \"$QMAILHOME/bin/qmail-smtpd\" --submission"},
				"smtps/run":      {"PORT=465", "if [ ! -f \"$QMAILHOME/control/servercert.pem\" ]; then", "\t\"$HOST\" \"$PORT\" \"$QMAILHOME/bin/qmail-smtpd\" --smtps"},
				"pop3/run": {"PORT=110", "\t\"$TCPSERVER\" -v -R -H -l \"$LOCAL\" \"$HOST\" \"$PORT\" \\",
					"\t\"$QMAILHOME/bin/qmail-popup\" \"$LOCAL\" \"$QMAILHOME/bin/checkpassword\" \"$QMAILHOME/bin/qmail-pop3d\" Maildir"},
				"send/run":     {"exec env - PATH=\"$QMAILHOME/bin:/usr/local/bin:/usr/bin:/bin\" QMAILHOME=\"$QMAILHOME\" \\", "\t\"$QMAILHOME/bin/qmail-start\" \"$DELIVERY\""},
				"send/log/run": {"exec /usr/bin/setuidgid qmaill /usr/bin/multilog t ./main"},
			},
			map[string][]string{"pop3/run": {` -u "`, " -g "}}},
		{"ordinary user, no outside tools, a root with a quote", ScriptOptions{Root: "/home/joe/it's mail"},
			map[string][]string{
				"smtpd/run":    {`QMAILHOME='/home/joe/it'\''s mail'`, `TCPSERVER="$QMAILHOME/bin/qmail-tcpserver"`, "\t\"$TCPSERVER\" -v -R -H -l \"$LOCAL\" \"$@\" -c \"$MAXSMTPD\" \\"},
				"pop3/log/run": {"exec cat >>./main/current"},
			},
			map[string][]string{"smtpd/run": {"id -u", "-u \"$QMAILDUID\""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for _, f := range ServiceScripts(tc.o) {
				files[f.Path] = f.Content
				if !strings.HasPrefix(f.Content, "#!/bin/sh\n") {
					t.Errorf("%s: no #!/bin/sh", f.Path)
				}
				// The shell must accept every script.
				if out, err := exec.Command("sh", "-n", "-c", f.Content).CombinedOutput(); err != nil {
					t.Errorf("%s: sh -n: %v %s\n%s", f.Path, err, out, f.Content)
				}
			}
			if len(files) != 2*len(Services) {
				t.Errorf("%d files, want a run and a log/run for each of %v", len(files), Services)
			}
			for file, lines := range tc.want {
				have := strings.Split(files[file], "\n")
				for _, l := range lines {
					if !contains(have, l) {
						t.Errorf("%s lacks the line %q:\n%s", file, l, files[file])
					}
				}
			}
			for file, subs := range tc.not {
				for _, s := range subs {
					if strings.Contains(files[file], s) {
						t.Errorf("%s holds %q:\n%s", file, s, files[file])
					}
				}
			}
		})
	}
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

// The scripts run: a stand-in for tcpserver records its arguments and
// environment, the way the run script hands them over.
func TestServiceScriptRuns(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "control"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "control/me"), []byte("mx.example.test\n"), 0o644)
	os.WriteFile(filepath.Join(root, "control/tcp.smtp.cdb"), nil, 0o644)
	fake := []byte("#!/bin/sh\necho \"$*\"\nenv | sort\n")
	os.WriteFile(filepath.Join(root, "bin/qmail-tcpserver"), fake, 0o755)
	os.WriteFile(filepath.Join(root, "bin/tcpserver"), fake, 0o755)
	// quail's launcher is asked to reuse qmail-smtpd processes (-k);
	// ucspi-tcp's tcpserver has no such flag and is not.
	for _, tc := range []struct{ tcpserver, reuse string }{
		{"", "-k 100 "},
		{filepath.Join(root, "bin/tcpserver"), ""},
	} {
		var script string
		for _, f := range ServiceScripts(ScriptOptions{Root: root, TCPServer: tc.tcpserver}) {
			if f.Path == "submission/run" {
				script = f.Content
			}
		}
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SECRET=leak"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		want := "-v -R -H -l mx.example.test -x " + root + "/control/tcp.smtp.cdb " + tc.reuse + "-c 100 0 587 " + root + "/bin/qmail-smtpd --submission\n" +
			"PATH=" + root + "/bin:/usr/local/bin:/usr/bin:/bin\nPWD=" + mustGetwd(t) + "\nQMAILHOME=" + root + "\n"
		if string(out) != want {
			t.Errorf("the script (launcher %q) ran\n%s\nwant\n%s", tc.tcpserver, out, want)
		}
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// A second run adds only what is missing: an admin's edits stay, a
// removed script comes back, and nothing else is said.
func TestWriteServicesKeepsEdits(t *testing.T) {
	root := t.TempDir()
	var log []string
	logf := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	if err := writeServices(root, false, logf); err != nil {
		t.Fatal(err)
	}
	if len(log) != 1+3*len(Services)+2*len(Services) {
		t.Errorf("first run said %d lines, want one per directory and file:\n%s", len(log), strings.Join(log, "\n"))
	}
	for _, s := range Services {
		for _, f := range []string{"run", "log/run"} {
			st, err := os.Stat(filepath.Join(root, "service", s, f))
			if err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("%s/%s: %v, mode %v; want an executable", s, f, err, st.Mode())
			}
		}
	}
	edited := filepath.Join(root, "service", "smtpd", "run")
	os.WriteFile(edited, []byte("#!/bin/sh\n# mine\n"), 0o755)
	os.Remove(filepath.Join(root, "service", "pop3", "log", "run"))
	log = nil
	if err := writeServices(root, false, logf); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(edited); string(b) != "#!/bin/sh\n# mine\n" {
		t.Errorf("the admin's script was replaced: %q", b)
	}
	if strings.Join(log, "\n") != "created service/pop3/log/run" {
		t.Errorf("second run said %q, want only the removed script", log)
	}
}
