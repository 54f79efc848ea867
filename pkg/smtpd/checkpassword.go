package smtpd

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Checkpassword is an Authenticator that runs a checkpassword-interface
// program (SPEC §7), the way qmail's SMTP AUTH patches do: Args[0] with
// the rest of Args as its subprogram, "user NUL secret NUL timestamp NUL"
// on fd 3. For CRAM-MD5 the secret is the digest and the challenge goes in
// the timestamp slot (Hoffmann's order, which quail's checkpassword
// reads).
//
// It fails closed: only exit status 0 is a success, 1 is wrong
// credentials, and anything else (2 for misuse, 111, a crash, a program
// that cannot be started or does not finish) is an error, a temporary
// failure for the client.
type Checkpassword struct {
	Args    []string
	Timeout time.Duration // 0: one minute
}

func (c Checkpassword) Check(user, secret, challenge string) (bool, error) {
	if len(c.Args) == 0 {
		return false, errors.New("no checkpassword program")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return false, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		r.Close()
		w.Close()
		return false, err
	}
	defer null.Close()
	p, err := os.StartProcess(c.Args[0], c.Args, &os.ProcAttr{
		Files: []*os.File{null, null, os.Stderr, r},
	})
	r.Close()
	if err != nil {
		w.Close()
		return false, fmt.Errorf("cannot run %s: %w", c.Args[0], err)
	}
	// The data fits in a pipe buffer: the write cannot block.
	_, werr := w.Write([]byte(user + "\x00" + secret + "\x00" + challenge + "\x00"))
	w.Close()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	timer := time.AfterFunc(timeout, func() { p.Kill() })
	st, err := p.Wait()
	timer.Stop()
	switch {
	case err != nil:
		return false, err
	case st.Success() && werr == nil:
		return true, nil
	case st.Exited() && st.ExitCode() == 1:
		return false, nil
	case st.Exited():
		return false, fmt.Errorf("%s exited %d", c.Args[0], st.ExitCode())
	}
	return false, fmt.Errorf("%s: %s", c.Args[0], st)
}
