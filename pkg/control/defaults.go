package control

import "errors"

// intDefaults are the values numeric control files take when absent:
// qmail's, except databytes, which quail limits to 20 MB (SPEC §4).
var intDefaults = map[string]int64{
	"concurrencylocal":  10,
	"concurrencyremote": 20,
	"databytes":         20971520,
	"queuelifetime":     604800,
	"timeoutconnect":    60,
	"timeoutremote":     1200,
	"timeoutsmtpd":      1200,
}

// stringDefault says what a single-value file means when it is absent:
// first the value of control/me when fromMe, then literal when not empty.
type stringDefault struct {
	fromMe  bool
	literal string
}

var stringDefaults = map[string]stringDefault{
	"bouncefrom":       {literal: "MAILER-DAEMON"},
	"bouncehost":       {fromMe: true, literal: "bouncehost"},
	"defaultdomain":    {fromMe: true, literal: "defaultdomain"},
	"defaulthost":      {fromMe: true, literal: "defaulthost"},
	"doublebouncehost": {fromMe: true, literal: "doublebouncehost"},
	"doublebounceto":   {literal: "postmaster"},
	"envnoathost":      {fromMe: true, literal: "envnoathost"},
	"helohost":         {fromMe: true},
	"idhost":           {fromMe: true, literal: "idhost"},
	"localiphost":      {fromMe: true},
	"plusdomain":       {fromMe: true, literal: "plusdomain"},
	"smtpgreeting":     {fromMe: true},
}

// listDefaultsFromMe are the list files that mean "just me" when absent.
var listDefaultsFromMe = map[string]bool{
	"locals": true,
}

// ErrMissing means a control file is absent and has no default.
var ErrMissing = errors.New("missing, and it has no default")

// String reads a single-value control file with qmail's default when it
// is absent: for many files the value of control/me. A file with neither
// value nor default is an error naming the file, since qmail's programs
// refuse to start then.
func (d Dir) String(name string) (string, error) {
	if v, ok, err := d.Value(name); ok || err != nil {
		return v, err
	}
	def := stringDefaults[name]
	if def.fromMe {
		me, ok, err := d.Value("me")
		if err != nil {
			return "", err
		}
		if ok {
			return me, nil
		}
	}
	if def.literal != "" {
		return def.literal, nil
	}
	if def.fromMe {
		return "", &Error{File: rel(name), Err: errors.New("missing, and so is control/me: run qmailctl init or write the host name into control/me")}
	}
	return "", &Error{File: rel(name), Err: ErrMissing}
}

func (d Dir) listDefault(name string) ([]string, error) {
	if !listDefaultsFromMe[name] {
		return nil, nil
	}
	me, ok, err := d.Value("me")
	if err != nil || !ok {
		return nil, err
	}
	return []string{me}, nil
}
