//go:build integration

package test

// The run scripts qmailctl init writes under ROOT/service, started the
// way a qmail admin starts them: by svscan, each service with its log
// service behind a pipe. Each must serve (a 220 or +OK greeting) and its
// log must reach multilog's ./main/current.

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

func TestServicesAsRoot(t *testing.T) {
	testutil.NeedRoot(t)
	testServices(t, nil)
}

func TestServicesAsOrdinaryUser(t *testing.T) { testServices(t, qrAs()) }

func testServices(t *testing.T, cred *syscall.Credential) {
	svscan := testutil.NeedTool(t, "svscan", "daemontools")
	svc := testutil.NeedTool(t, "svc", "daemontools")
	testutil.NeedTool(t, "multilog", "daemontools")
	root := qrInstance(t, cred)
	services := filepath.Join(root, "service")

	// The scripts use ucspi-tcp's tcpserver when init found it, quail's
	// otherwise.
	script, err := os.ReadFile(filepath.Join(services, "smtpd", "run"))
	if err != nil {
		t.Fatal(err)
	}
	wantTCPServer := `TCPSERVER="$QMAILHOME/bin/qmail-tcpserver"`
	if p, err := exec.LookPath("tcpserver"); err == nil {
		wantTCPServer = "TCPSERVER=" + p
	}
	if !strings.Contains(string(script), "\n"+wantTCPServer+"\n") {
		t.Errorf("smtpd/run does not use %s:\n%s", wantTCPServer, script)
	}

	// What an admin edits: the address. Here a free port on 127.0.0.1.
	addr := map[string]string{}
	for _, s := range []string{"smtpd", "submission", "smtps", "pop3"} {
		addr[s] = qrFreeAddr(t)
		host, port, _ := net.SplitHostPort(addr[s])
		p := filepath.Join(services, s, "run")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		edited := regexp.MustCompile(`(?m)^HOST=.*$`).ReplaceAllString(string(b), "HOST="+host)
		edited = regexp.MustCompile(`(?m)^PORT=\d+$`).ReplaceAllString(edited, "PORT="+port)
		if edited == string(b) {
			t.Fatalf("%s has no HOST= and PORT= lines to edit", p)
		}
		if err := os.WriteFile(p, []byte(edited), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(svscan, services)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Dir = services
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	// A file, not a pipe: the supervisors inherit svscan's output, and
	// cmd.Wait would wait for them to close it.
	svlog, err := os.Create(filepath.Join(t.TempDir(), "svscan.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer svlog.Close()
	cmd.Stdout, cmd.Stderr = svlog, svlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// svscan first, or it would restart the supervisors that svc -x
		// ends; then each service, then its logger.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		var dirs, logs []string
		for _, s := range []string{"send", "smtpd", "submission", "smtps", "pop3"} {
			dirs = append(dirs, filepath.Join(services, s))
			logs = append(logs, filepath.Join(services, s, "log"))
		}
		for _, d := range [][]string{dirs, logs} {
			if out, err := exec.Command(svc, append([]string{"-dx"}, d...)...).CombinedOutput(); err != nil {
				t.Errorf("svc -dx: %v %s", err, out)
			}
		}
		qrNoLeftovers(t, root)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Cleanup(stop)

	greetings := map[string]string{"smtpd": "220 mail.example.test", "submission": "220 mail.example.test", "smtps": "220 mail.example.test", "pop3": "+OK <"}
	for _, s := range []string{"smtpd", "submission", "smtps", "pop3"} {
		line := svGreeting(t, addr[s], s == "smtps", svlog)
		if !strings.HasPrefix(line, greetings[s]) {
			t.Errorf("service %s on %s greets %q, want %q...", s, addr[s], line, greetings[s])
		}
	}

	// Every service's log reached multilog, time-stamped.
	for s, want := range map[string]string{
		"send":       "status: local 0/10 remote 0/20",
		"smtpd":      "tcpserver: status: 0/100",
		"submission": "tcpserver: status: 0/100",
		"smtps":      "tcpserver: status: 0/100",
		"pop3":       "tcpserver: status: 0/40",
	} {
		current := filepath.Join(services, s, "log", "main", "current")
		re := regexp.MustCompile(`(?m)^@[0-9a-f]{24} ` + regexp.QuoteMeta(want) + `$`)
		deadline := time.Now().Add(15 * time.Second)
		for {
			b, _ := os.ReadFile(current)
			if re.Match(b) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s lacks %q:\n%s", current, want, b)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if cred == nil && os.Geteuid() == 0 {
			// multilog runs as qmaill.
			l, err := user.Lookup("qmaill")
			if err != nil {
				t.Fatal(err)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(current, &st); err == nil && strconv.Itoa(int(st.Uid)) != l.Uid {
				t.Errorf("%s is owned by uid %d, want qmaill (%s)", current, st.Uid, l.Uid)
			}
		}
	}
	stop()
}

// svGreeting waits until addr accepts a connection and returns the
// server's first line.
func svGreeting(t *testing.T, addr string, useTLS bool, svlog *os.File) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var c net.Conn
		var err error
		if useTLS {
			c, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		} else {
			c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		}
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Errorf("greeting from %s: %v", addr, err)
			}
			return line
		}
		if time.Now().After(deadline) {
			said, _ := os.ReadFile(svlog.Name())
			t.Fatalf("nothing listens on %s: %v; svscan said:\n%s", addr, err, said)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
