package smtpd

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// pid is this process's id, for the CRAM-MD5 challenge and the log.
var pid = os.Getpid()

// authMechanisms are the mechanisms offered now: PLAIN and LOGIN send the
// password itself, so only inside TLS unless the admin allows it.
func (s *session) authMechanisms() []string {
	if s.cfg.Auth == nil {
		return nil
	}
	var mechs []string
	if s.tls != nil || s.cfg.AuthPlaintext {
		mechs = append(mechs, "LOGIN", "PLAIN")
	}
	if s.cfg.AuthCRAM {
		mechs = append(mechs, "CRAM-MD5")
	}
	return mechs
}

func (s *session) offers(mech string) bool {
	for _, m := range s.authMechanisms() {
		if m == mech {
			return true
		}
	}
	return false
}

// errCanceled is a client's "*" during an AUTH exchange.
var errCanceled = errors.New("canceled")

// errMalformed is an AUTH answer that is not what the mechanism expects.
var errMalformed = errors.New("malformed")

func (s *session) authCmd(arg string) error {
	switch {
	case s.cfg.Auth == nil:
		s.refuse("503 auth not available (#5.3.3)")
		return nil
	case s.authUser != "":
		s.refuse("503 you're already authenticated (#5.5.0)")
		return nil
	case s.mail:
		s.refuse("503 no auth during mail transaction (#5.5.0)")
		return nil
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if !s.offers(mech) {
		if mech == "PLAIN" || mech == "LOGIN" {
			s.refuse("538 auth not available without TLS (#5.3.3)")
			return nil
		}
		s.refuse("504 auth type unimplemented (#5.5.1)")
		return nil
	}
	var user, secret, challenge string
	var err error
	switch mech {
	case "PLAIN":
		user, secret, err = s.authPlain(initial, hasInitial)
	case "LOGIN":
		user, secret, err = s.authLogin(initial, hasInitial)
	case "CRAM-MD5":
		user, secret, challenge, err = s.authCRAM(hasInitial)
	}
	switch {
	case errors.Is(err, errCanceled):
		s.refuse("501 auth exchange canceled (#5.0.0)")
		return nil
	case errors.Is(err, errMalformed):
		s.refuse("501 malformed auth input (#5.5.4)")
		return nil
	case err != nil:
		return err
	}
	ok, err := s.cfg.Auth.Check(user, secret, challenge)
	if err != nil || !ok {
		// Each failure, the checker's own too (it must not answer
		// faster than a wrong password, or tell users apart), waits
		// longer before the answer, so guessing passwords through one
		// connection is slow; a few end it.
		s.authFail++
		reply := "535 authentication failed (#5.7.1)"
		if err != nil {
			s.logf("event=auth-error mech=%s user=%q failures=%d err=%q", mech, user, s.authFail, err.Error())
			reply = "454 oops, problem with child and I can't auth (#4.3.0)"
		} else {
			s.logf("event=auth-failed mech=%s user=%q failures=%d", mech, user, s.authFail)
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
		time.Sleep(failDelay(s.authFail))
		s.refuse(reply)
		if s.authFail >= maxAuthFailures {
			s.reply("421 too many failed authentications, closing connection (#4.7.0)")
			s.w.Flush()
			return errors.New("too many failed authentications")
		}
		return nil
	}
	s.authUser = user
	s.errors = 0
	s.logf("event=auth mech=%s user=%q", mech, user)
	s.reply("235 ok, go ahead (#2.0.0)")
	return nil
}

// FailDelay is the wait before the answer to a session's first failed
// AUTH; each further failure waits one more FailDelay.
var FailDelay = time.Second

func failDelay(n int) time.Duration { return time.Duration(n) * FailDelay }

// authLine reads one line of an AUTH exchange and decodes its base64.
func (s *session) authLine() ([]byte, error) {
	line, err := s.readLine(maxAuthLine)
	if errors.Is(err, errTooLong) {
		return nil, errMalformed
	}
	if err != nil {
		return nil, err
	}
	return decodeAuth(line)
}

func decodeAuth(line string) ([]byte, error) {
	if line == "*" {
		return nil, errCanceled
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, errMalformed
	}
	return b, nil
}

// credential checks a user name or password from the client: empty, or
// holding a NUL or another control byte, it is refused rather than cut
// short into something else.
func credential(b []byte) (string, error) {
	if len(b) == 0 || hasControl(string(b)) {
		return "", errMalformed
	}
	return string(b), nil
}

func (s *session) authPlain(initial string, hasInitial bool) (user, pass string, err error) {
	var resp []byte
	switch {
	case !hasInitial:
		s.reply("334 ")
		resp, err = s.authLine()
	case initial == "=":
		resp = nil
	default:
		resp, err = decodeAuth(initial)
	}
	if err != nil {
		return "", "", err
	}
	// authzid NUL authcid NUL passwd; the authzid is ignored, as in
	// qmail's AUTH patches.
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 {
		return "", "", errMalformed
	}
	if user, err = credential([]byte(parts[1])); err != nil {
		return "", "", err
	}
	if pass, err = credential([]byte(parts[2])); err != nil {
		return "", "", err
	}
	return user, pass, nil
}

func (s *session) authLogin(initial string, hasInitial bool) (user, pass string, err error) {
	var b []byte
	if hasInitial {
		b, err = decodeAuth(initial)
	} else {
		s.reply("334 VXNlcm5hbWU6") // "Username:"
		b, err = s.authLine()
	}
	if err != nil {
		return "", "", err
	}
	if user, err = credential(b); err != nil {
		return "", "", err
	}
	s.reply("334 UGFzc3dvcmQ6") // "Password:"
	if b, err = s.authLine(); err != nil {
		return "", "", err
	}
	if pass, err = credential(b); err != nil {
		return "", "", err
	}
	return user, pass, nil
}

func (s *session) authCRAM(hasInitial bool) (user, digest, challenge string, err error) {
	if hasInitial {
		return "", "", "", errMalformed
	}
	challenge = fmt.Sprintf("<%d.%d@%s>", pid, s.cfg.Now().UnixNano(), s.cfg.Hostname)
	s.reply("334 %s", base64.StdEncoding.EncodeToString([]byte(challenge)))
	b, err := s.authLine()
	if err != nil {
		return "", "", "", err
	}
	sp := strings.LastIndexByte(string(b), ' ')
	if sp < 0 {
		return "", "", "", errMalformed
	}
	if user, err = credential(b[:sp]); err != nil {
		return "", "", "", err
	}
	if digest, err = credential(b[sp+1:]); err != nil {
		return "", "", "", err
	}
	return user, digest, challenge, nil
}
