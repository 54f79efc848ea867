package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/privsep"
)

// Services are the daemontools-style services init writes under
// ROOT/service, in the order they should start.
var Services = []string{"send", "smtpd", "submission", "smtps", "pop3"}

// ScriptOptions choose how the run scripts are written.
type ScriptOptions struct {
	Root string // absolute
	// RootInstall: qmail-smtpd gets tcpserver's -u qmaild -g nofiles,
	// the loggers run as qmaill.
	RootInstall bool
	// TCPServer is the launcher's path; empty means quail's own,
	// $QMAILHOME/bin/qmail-tcpserver.
	TCPServer string
	// Multilog and Setuidgid are daemontools' programs; an empty
	// Multilog makes the loggers append to ./main/current instead.
	Multilog, Setuidgid string
}

// ScriptFile is one file of a service directory.
type ScriptFile struct {
	Path    string // relative to ROOT/service
	Content string
}

// LookupScriptTools fills in the tools found on this machine: ucspi-tcp's
// tcpserver when installed (what qmail admins run), daemontools'
// multilog and setuidgid.
func LookupScriptTools(o ScriptOptions) ScriptOptions {
	look := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			return ""
		}
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	o.TCPServer = look("tcpserver")
	o.Multilog = look("multilog")
	o.Setuidgid = look("setuidgid")
	return o
}

// shQuote quotes s for sh, unless it needs none.
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

const scriptPath = `PATH="$QMAILHOME/bin:/usr/local/bin:/usr/bin:/bin"`

// ServiceScripts returns the run scripts of every service and of its
// logger, in the shape Life with qmail made familiar: settings at the
// top, `exec 2>&1` so errors reach the log, `exec env -` so the programs
// get only PATH and QMAILHOME.
func ServiceScripts(o ScriptOptions) []ScriptFile {
	header := func(what string) string {
		return "#!/bin/sh\n" + what +
			"# Written by qmailctl init, which never overwrites it: edit freely.\n" +
			"QMAILHOME=" + shQuote(o.Root) + "\n"
	}
	tcpserver := `"$QMAILHOME/bin/qmail-tcpserver"`
	tcpserverNote := "# quail's launcher; ucspi-tcp's tcpserver takes the same flags.\n"
	if o.TCPServer != "" {
		tcpserver = shQuote(o.TCPServer)
		tcpserverNote = "# ucspi-tcp's tcpserver, found when init ran; quail's own takes the same\n" +
			"# flags: TCPSERVER=\"$QMAILHOME/bin/qmail-tcpserver\"\n"
	}
	listener := func(what, port, program string, smtp bool) string {
		s := header(what) + tcpserverNote + "TCPSERVER=" + tcpserver + "\n" +
			"HOST=0 # 0: every address\nPORT=" + port + "\n" +
			"exec 2>&1\n" +
			"LOCAL=`head -n 1 \"$QMAILHOME/control/me\"`\n"
		check := `[ -z "$LOCAL" ]`
		if smtp {
			s += "MAXSMTPD=`head -n 1 \"$QMAILHOME/control/concurrencyincoming\" 2>/dev/null`\n" +
				"[ -n \"$MAXSMTPD\" ] || MAXSMTPD=100\n"
			if o.RootInstall {
				s += "QMAILDUID=`id -u qmaild`\nNOFILESGID=`id -g qmaild`\n"
				check += ` || [ -z "$QMAILDUID" ] || [ -z "$NOFILESGID" ]`
			}
		}
		s += "if " + check + "; then\n" +
			"\techo \"$0: control/me or an account is missing: run qmailctl init --root $QMAILHOME\"\n" +
			"\tsleep 10\n\texit 1\nfi\n"
		if port == "465" {
			s += "if [ ! -f \"$QMAILHOME/control/servercert.pem\" ]; then\n" +
				"\techo \"$0: control/servercert.pem is missing: run qmailctl cert --self-signed --root $QMAILHOME, or install a certificate\"\n" +
				"\tsleep 10\n\texit 1\nfi\n"
		}
		if smtp {
			s += "# Clients that may relay, and other per-IP settings: control/tcp.smtp\n" +
				"# (e.g. 127.:allow,RELAYCLIENT=\"\"), compiled with\n" +
				"#   tcprules control/tcp.smtp.cdb control/tcp.smtp.tmp < control/tcp.smtp\n" +
				"set --\n" +
				"if [ -f \"$QMAILHOME/control/tcp.smtp.cdb\" ]; then\n" +
				"\tset -- -x \"$QMAILHOME/control/tcp.smtp.cdb\"\n" +
				"fi\n"
			s += "# quail's launcher can hand a finished qmail-smtpd the next connection\n" +
				"# (-k: up to 100 sessions per process, one at a time); tcpserver cannot.\n" +
				"case \"$TCPSERVER\" in\n*/qmail-tcpserver) set -- \"$@\" -k 100 ;;\nesac\n"
			drop := ""
			if o.RootInstall {
				drop = ` -u "$QMAILDUID" -g "$NOFILESGID"`
			}
			s += "exec env - " + scriptPath + " QMAILHOME=\"$QMAILHOME\" \\\n" +
				"\t\"$TCPSERVER\" -v -R -H -l \"$LOCAL\"" + drop + " \"$@\" -c \"$MAXSMTPD\" \\\n" +
				"\t\"$HOST\" \"$PORT\" " + program + "\n"
		} else {
			if o.RootInstall {
				s += "# No -u: qmail-popup stays root, which checkpassword needs.\n"
			}
			s += "exec env - " + scriptPath + " QMAILHOME=\"$QMAILHOME\" \\\n" +
				"\t\"$TCPSERVER\" -v -R -H -l \"$LOCAL\" \"$HOST\" \"$PORT\" \\\n" +
				"\t" + program + "\n"
		}
		return s
	}
	send := header("# quail's delivery side: qmail-start runs qmail-send, qmail-lspawn,\n"+
		"# qmail-rspawn and qmail-clean. svc -t stops it once the deliveries in\n"+
		"# flight are done, svc -h rereads the control files, svc -a retries\n"+
		"# everything queued now. Users without a .qmail file get the first line\n"+
		"# of control/defaultdelivery.\n") +
		"exec 2>&1\n" +
		"DELIVERY=`head -n 1 \"$QMAILHOME/control/defaultdelivery\" 2>/dev/null`\n" +
		"[ -n \"$DELIVERY\" ] || DELIVERY=./Maildir/\n" +
		"exec env - " + scriptPath + " QMAILHOME=\"$QMAILHOME\" \\\n" +
		"\t\"$QMAILHOME/bin/qmail-start\" \"$DELIVERY\"\n"

	var logRun string
	switch {
	case o.Multilog != "" && o.RootInstall && o.Setuidgid != "":
		logRun = "#!/bin/sh\n# The service's log, kept by multilog in ./main (TAI64N time stamps,\n" +
			"# rotated). Written by qmailctl init, which never overwrites it.\n" +
			"exec " + shQuote(o.Setuidgid) + " qmaill " + shQuote(o.Multilog) + " t ./main\n"
	case o.Multilog != "":
		logRun = "#!/bin/sh\n# The service's log, kept by multilog in ./main (TAI64N time stamps,\n" +
			"# rotated). Written by qmailctl init, which never overwrites it.\n" +
			"exec " + shQuote(o.Multilog) + " t ./main\n"
	default:
		logRun = "#!/bin/sh\n# The service's log, appended to ./main/current: no time stamps, no\n" +
			"# rotation. multilog (daemontools) was not installed when qmailctl init\n" +
			"# wrote this; with it, this line does better:\n" +
			"#   exec setuidgid qmaill multilog t ./main\n" +
			"exec cat >>./main/current\n"
	}
	smtpd := `"$QMAILHOME/bin/qmail-smtpd"`
	files := []ScriptFile{
		{"send/run", send},
		{"smtpd/run", listener("# qmail-smtpd on port 25 (MX): mail for the domains in control/rcpthosts;\n"+
			"# relaying for RELAYCLIENT and authenticated clients.\n", "25", smtpd, true)},
		{"submission/run", listener("# qmail-smtpd on port 587 (submission): customers' mail clients, which\n"+
			"# must authenticate (SMTP AUTH after STARTTLS) before they send.\n", "587", smtpd+" --submission", true)},
		{"smtps/run", listener("# qmail-smtpd on port 465: submission over implicit TLS, with the key and\n"+
			"# certificate in control/servercert.pem.\n", "465", smtpd+" --smtps", true)},
		{"pop3/run", listener("# POP3 on port 110: qmail-popup checks the login with checkpassword,\n"+
			"# which runs qmail-pop3d as the mailbox's owner in its directory.\n", "110",
			`"$QMAILHOME/bin/qmail-popup" "$LOCAL" "$QMAILHOME/bin/checkpassword" "$QMAILHOME/bin/qmail-pop3d" Maildir`, false)},
	}
	for _, s := range Services {
		files = append(files, ScriptFile{s + "/log/run", logRun})
	}
	return files
}

// writeServices creates what is missing of ROOT/service: the service
// directories, their run scripts and log directories. An existing
// script is the admin's and stays as it is.
func writeServices(root string, rootInstall bool, logf func(string, ...any)) error {
	o := LookupScriptTools(ScriptOptions{Root: root, RootInstall: rootInstall})
	base := filepath.Join(root, "service")
	var logIDs *privsep.IDs
	if rootInstall {
		ids, err := privsep.Lookup(privsep.Log)
		if err != nil {
			return err
		}
		logIDs = &ids
	}
	if err := mkdirLogged(base, 0o755, logf); err != nil {
		return err
	}
	for _, s := range Services {
		for _, d := range []string{s, s + "/log"} {
			if err := mkdirLogged(filepath.Join(base, d), 0o755, logf); err != nil {
				return err
			}
		}
		main := filepath.Join(base, s, "log", "main")
		// Logs name addresses and client IPs: not for every local user.
		created, err := mkdir(main, 0o750, logf)
		if err != nil {
			return err
		}
		if created && logIDs != nil {
			if err := os.Lchown(main, logIDs.UID, logIDs.GID); err != nil {
				return err
			}
		}
	}
	for _, f := range ServiceScripts(o) {
		p := filepath.Join(base, f.Path)
		if _, err := os.Lstat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := atomicfile.WriteFile(p, []byte(f.Content), 0o755); err != nil {
			return err
		}
		logf("created service/%s", f.Path)
	}
	return nil
}

func mkdirLogged(p string, perm fs.FileMode, logf func(string, ...any)) error {
	_, err := mkdir(p, perm, logf)
	return err
}

// mkdir creates directory p unless it exists, and reports whether it did.
func mkdir(p string, perm fs.FileMode, logf func(string, ...any)) (bool, error) {
	err := os.Mkdir(p, perm)
	if err == nil {
		logf("created %s/", p)
		return true, nil
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return false, fmt.Errorf("create %s: %w", p, err)
}
