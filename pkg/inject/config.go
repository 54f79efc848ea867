package inject

import (
	"fmt"
	"time"

	"github.com/quail-mta/quail/pkg/control"
)

// Letters are the QMAILINJECT letters (qmail-inject(8)).
type Letters struct {
	CommentFrom      bool // c: From as addr (Name), not "Name" <addr>
	IgnoreReturnPath bool // s: drop an incoming Return-Path without using it
	DropFrom         bool // f: drop an incoming From (a default one is added)
	DropMessageID    bool // i: drop an incoming Message-ID (a new one is added)
	VERPRecipient    bool // r: per-recipient VERP: default sender user-@host-@[]
	VERPMessage      bool // m: per-message VERP: -<unixtime>.<pid> after the sender's user
}

// ParseLetters reads QMAILINJECT; unknown letters are ignored, as in
// qmail.
func ParseLetters(s string) Letters {
	var l Letters
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'c':
			l.CommentFrom = true
		case 's':
			l.IgnoreReturnPath = true
		case 'f':
			l.DropFrom = true
		case 'i':
			l.DropMessageID = true
		case 'r':
			l.VERPRecipient = true
		case 'm':
			l.VERPMessage = true
		}
	}
	return l
}

// Config is what one injection takes from the control files and the
// environment.
type Config struct {
	DefaultHost   string // added to addresses without a host
	DefaultDomain string // added to hosts without a dot
	PlusDomain    string // replaces a host's trailing '+'
	IDHost        string // host part of Message-IDs
	DataBytes     int64  // largest message queued; 0: no limit

	User string // From user: QMAILUSER, MAILUSER, USER, LOGNAME, else anonymous
	Host string // From host: QMAILHOST, MAILHOST; "" for defaulthost
	Name string // personal name: QMAILNAME, MAILNAME, NAME; "" for none

	SenderUser string // default envelope sender: QMAILSUSER, else User
	SenderHost string // QMAILSHOST, else Host

	Letters Letters
	Now     time.Time // for Date and Message-ID
	Pid     int       // for Message-ID and the m letter
}

// LoadConfig reads control/defaulthost, defaultdomain, plusdomain, idhost
// and databytes under root, then the environment, which overrides them.
// getenv returns "" for an unset variable; an empty variable counts as
// unset.
func LoadConfig(root string, getenv func(string) string, now time.Time, pid int) (Config, error) {
	ctl := control.New(root)
	cfg := Config{Now: now, Pid: pid, Letters: ParseLetters(getenv("QMAILINJECT"))}
	for _, c := range []struct {
		file, env string
		dst       *string
	}{
		{"defaulthost", "QMAILDEFAULTHOST", &cfg.DefaultHost},
		{"defaultdomain", "QMAILDEFAULTDOMAIN", &cfg.DefaultDomain},
		{"plusdomain", "QMAILPLUSDOMAIN", &cfg.PlusDomain},
		{"idhost", "QMAILIDHOST", &cfg.IDHost},
	} {
		if v := getenv(c.env); v != "" {
			*c.dst = v
			continue
		}
		v, err := ctl.String(c.file)
		if err != nil {
			return Config{}, err
		}
		*c.dst = v
	}
	var err error
	if v := getenv("DATABYTES"); v != "" {
		if cfg.DataBytes, err = control.ParseInt(v); err != nil {
			return Config{}, fmt.Errorf("DATABYTES: %w", err)
		}
	} else if cfg.DataBytes, err = ctl.Int("databytes"); err != nil {
		return Config{}, err
	}
	first := func(def string, names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return def
	}
	cfg.User = first("anonymous", "QMAILUSER", "MAILUSER", "USER", "LOGNAME")
	cfg.Host = first("", "QMAILHOST", "MAILHOST")
	cfg.Name = first("", "QMAILNAME", "MAILNAME", "NAME")
	cfg.SenderUser = first(cfg.User, "QMAILSUSER")
	cfg.SenderHost = first(cfg.Host, "QMAILSHOST")
	return cfg, nil
}
