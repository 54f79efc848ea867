package popup

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/pop3"
	"github.com/quail-mta/quail/pkg/popgrant"
	"github.com/quail-mta/quail/pkg/privsep"
)

const usage = `usage: qmail-popup HOSTNAME CHECKPASSWORD SUBPROGRAM [ARG...]

Answers the POP3 AUTHORIZATION state on descriptors 0 and 1 (run it from
tcpserver, as root): USER/PASS, APOP, CAPA, STLS, NOOP, QUIT. A login runs
CHECKPASSWORD SUBPROGRAM [ARG...] with user\0password\0timestamp\0 on
fd 3, for instance: qmail-popup mail.example.com checkpassword qmail-pop3d
Maildir. Control files: servercert.pem, pop3plaintext, timeoutpop3,
popbeforesmtp, under $QMAILHOME/control. See qmail-popup(8).

`

// Control files read by qmail-popup.
const (
	CertFile      = "servercert.pem"
	PlaintextFile = "pop3plaintext"
)

// Run is qmail-popup's main: it returns the exit status, 0 when the
// session ended well (QUIT, or a login whose session ran), 1 otherwise
// (a failed login, trouble, a timeout), 2 on misuse.
func Run(args []string, env []string, stderr io.Writer) int {
	flags := pflag.NewFlagSet("qmail-popup", pflag.ContinueOnError)
	flags.SetInterspersed(false) // what follows CHECKPASSWORD is its own
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, usage); flags.PrintDefaults() }
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "qmail-popup: %v (see qmail-popup --help)\n", err)
		return 2
	}
	conn := pop3.Stdio()
	if flags.NArg() < 2 || flags.Arg(0) == "" {
		conn.Write([]byte("-ERR usage: popup hostname subprogram\r\n"))
		fmt.Fprintln(stderr, "qmail-popup: usage: qmail-popup HOSTNAME CHECKPASSWORD SUBPROGRAM [ARG...] (see qmail-popup --help)")
		return 2
	}
	pop3.NoDelay(1)
	hostname, argv := flags.Arg(0), flags.Args()[1:]

	root := control.Home()
	ctl := control.New(root)
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "qmail-popup: "+format+"\n", a...) }
	timeout := pop3.DefaultTimeout
	if n, err := ctl.IntOr(pop3.TimeoutFile, int64(pop3.DefaultTimeout/time.Second)); err != nil {
		logf("%v; using %v", err, timeout)
	} else if n > 0 {
		timeout = time.Duration(min(n, 1<<31)) * time.Second
	}
	plaintext := false
	if v, _, err := ctl.Value(PlaintextFile); err != nil {
		logf("%v", err)
	} else {
		plaintext = v == "1"
	}
	var tlsConf func() (*tls.Config, error)
	certPath := ctl.Path(CertFile)
	if _, err := os.Stat(certPath); err == nil {
		tlsConf = func() (*tls.Config, error) { return loadTLS(certPath) }
	} else if !errors.Is(err, os.ErrNotExist) {
		// There, but unreadable: TLS was meant; fail closed.
		tlsConf = func() (*tls.Config, error) { return nil, err }
	}

	ip := getenv(env, "TCPREMOTEIP")
	if ip == "" {
		ip = pop3.PeerIP(0)
	}
	failures := &Failures{Dir: filepath.Join(root, "run", "popfail")}
	onLogin := func() {
		recordGrant(ctl, root, ip, logf)
		failures.Clear(ip)
		if err := dropPrivileges(); err != nil {
			logf("ip=%s %v", ip, err)
		}
	}
	now := time.Now()
	res, err := Serve(conn, Config{
		Stamp:     fmt.Sprintf("<%d.%d@%s>", os.Getpid(), now.Unix(), hostname),
		Launcher:  &Exec{Argv: argv, Stdin: conn.In, Stdout: conn.Out, Conn: conn, Env: env, Timeout: timeout},
		OnLogin:   onLogin,
		TLS:       tlsConf,
		Plaintext: plaintext,
		RemoteIP:  ip,
		Limiter:   failures,
		Timeout:   timeout,
		Log:       stderr,
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errors.New("timeout")
		}
		logf("ip=%s %v", ip, err)
		return 1
	}
	if res == Refused {
		return 1
	}
	return 0
}

// loadTLS reads control/servercert.pem: the certificate chain and the
// private key in one PEM file (the convention of the qmail TLS patches).
func loadTLS(path string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(path, path)
	if err != nil {
		return nil, fmt.Errorf("control/%s: %w (it must hold the certificate chain and the private key, PEM)", CertFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// recordGrant notes the client's address for POP-before-SMTP.
func recordGrant(ctl control.Dir, root, ip string, logf func(string, ...any)) {
	window, err := popgrant.Window(ctl)
	switch {
	case err != nil:
		logf("ip=%s no POP-before-SMTP grant: %v", ip, err)
	case window == 0:
	case ip == "":
		logf("ip=unknown no POP-before-SMTP grant: neither TCPREMOTEIP nor the socket on fd 0 gives the client's address")
	default:
		if err := popgrant.Record(root, ip, time.Now()); err != nil {
			logf("ip=%s no POP-before-SMTP grant: %v", ip, err)
		}
	}
}

// dropPrivileges: once the login is recorded, qmail-popup needs root for
// nothing more, yet may go on relaying a TLS session for an hour; it does
// so as qmaild. Run by an ordinary user, it keeps that user.
func dropPrivileges() error {
	if !privsep.Root() {
		return nil
	}
	ids, err := privsep.Lookup(privsep.Daemon)
	if err != nil {
		return fmt.Errorf("staying root after the login: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(ids.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", ids.GID, err)
	}
	if err := syscall.Setuid(ids.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", ids.UID, err)
	}
	return nil
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if len(env[i]) > len(key) && env[i][len(key)] == '=' && env[i][:len(key)] == key {
			return env[i][len(key)+1:]
		}
	}
	return ""
}
