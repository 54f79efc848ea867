package checkpw

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/quail-mta/quail/pkg/contract"
	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/exitcode"
	"github.com/quail-mta/quail/pkg/privsep"
)

// FailDelay is how long a failed attempt waits before checkpassword
// answers, so that guessing passwords costs the attacker time while the
// server's CPU stays idle.
const FailDelay = time.Second

// Shell is the SHELL given to the program: virtual users have no login
// shell.
const Shell = "/bin/false"

const usage = `usage: checkpassword PROGRAM [ARG...]

Reads login\0password\0timestamp\0 from fd 3 (at most 512 bytes). The login
is USER@DOMAIN; the password may be the clear password, an APOP digest or a
CRAM-MD5 response. On success runs PROGRAM as the mailbox owner in the
mailbox's home with USER, HOME and SHELL set. Exits 1 for bad credentials,
2 for misuse, 111 for temporary trouble. The instance is $QMAILHOME
(default /var/qmail).

`

// Run is checkpassword: read fd 3, check, and on success become the
// mailbox owner, change to the mailbox's home and exec args[1:]. It
// returns only on failure, with the exit status.
func Run(args []string, fd3 io.Reader, stderr io.Writer) int {
	flags := pflag.NewFlagSet("checkpassword", pflag.ContinueOnError)
	flags.SetInterspersed(false) // what follows the program is its own
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitcode.OK
		}
		fmt.Fprintf(stderr, "checkpassword: %v (see checkpassword --help)\n", err)
		return exitcode.CheckpwMisuse
	}
	args = append(args[:1], flags.Args()...)
	if len(args) < 2 {
		fmt.Fprintln(stderr, "checkpassword: usage: checkpassword PROGRAM [ARG...] (see checkpassword --help)")
		return exitcode.CheckpwMisuse
	}
	input, err := io.ReadAll(io.LimitReader(fd3, MaxInput+1))
	if err != nil {
		if errors.Is(err, syscall.EBADF) {
			fmt.Fprintln(stderr, "checkpassword: fd 3 is not open: the caller must write login\\0password\\0timestamp\\0 there")
			return exitcode.CheckpwMisuse
		}
		fmt.Fprintf(stderr, "checkpassword: read fd 3: %v\n", err)
		return exitcode.CheckpwTemp
	}
	if c, ok := fd3.(io.Closer); ok {
		c.Close()
	}
	req, err := ParseRequest(input)
	if err != nil {
		return fail(stderr, err, nil)
	}
	store := contract.New(control.Home())
	u, err := Check(store, req)
	if err != nil {
		return fail(stderr, err, req.Login)
	}
	if err := become(); err != nil {
		fmt.Fprintf(stderr, "checkpassword: %v\n", err)
		return exitcode.CheckpwTemp
	}
	if err := os.Chdir(u.Home); err != nil {
		fmt.Fprintf(stderr, "checkpassword: %s: %v\n", u.Address(), err)
		return exitcode.CheckpwTemp
	}
	prog, err := exec.LookPath(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "checkpassword: %v\n", err)
		return exitcode.CheckpwTemp
	}
	env := append(os.Environ(), "USER="+u.Address(), "HOME="+u.Home, "SHELL="+Shell)
	err = syscall.Exec(prog, args[1:], env)
	fmt.Fprintf(stderr, "checkpassword: exec %s: %v\n", prog, err)
	return exitcode.CheckpwTemp
}

// fail logs a refused attempt and returns its status, after FailDelay
// when the credentials were wrong.
func fail(stderr io.Writer, err error, login []byte) int {
	switch {
	case errors.Is(err, ErrMisuse):
		fmt.Fprintf(stderr, "checkpassword: %v\n", err)
		return exitcode.CheckpwMisuse
	case errors.Is(err, ErrBad):
		fmt.Fprintf(stderr, "checkpassword: authentication failed: login=%q ip=%s\n", login, remoteIP())
		time.Sleep(FailDelay)
		return exitcode.CheckpwBad
	}
	fmt.Fprintf(stderr, "checkpassword: temporary failure: %v\n", err)
	return exitcode.CheckpwTemp
}

func remoteIP() string {
	if ip := os.Getenv("TCPREMOTEIP"); ip != "" {
		return ip
	}
	return "unknown"
}

// become switches to the virtual mailbox owner when running as root:
// groups first, then the gid, then the uid, after which nothing can be
// taken back.
func become() error {
	if !privsep.Root() {
		return nil
	}
	owner, err := privsep.Lookup(privsep.Virtual)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(owner.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", owner.GID, err)
	}
	if err := syscall.Setuid(owner.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", owner.UID, err)
	}
	return nil
}
