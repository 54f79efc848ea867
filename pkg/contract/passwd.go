package contract

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/quail-mta/quail/pkg/control"
)

// Mailbox is one line of domains/DOMAIN/passwd.
type Mailbox struct {
	Name string // the local part, lower case
	Dir  string // home directory, relative to the domain's directory
}

// Credential is one line of domains/DOMAIN/shadow.
type Credential struct {
	Name string
	Hash string // SHA-512-crypt, $6$...
	// Secret is the clear password, kept only for accounts that use APOP
	// or CRAM-MD5 (both need it); nil for the others.
	Secret []byte
}

// ParsePasswd parses a passwd file; file names it in errors.
func ParsePasswd(file string, data []byte) ([]Mailbox, error) {
	var out []Mailbox
	seen := map[string]bool{}
	for _, l := range splitLines(data) {
		name, dir, ok := strings.Cut(l.Text, ":")
		if !ok || strings.Contains(dir, ":") {
			return nil, control.Errorf(file, l.No, "want NAME:DIR")
		}
		if err := checkName(name); err != nil {
			return nil, control.Errorf(file, l.No, "%v", err)
		}
		if err := checkDir(dir); err != nil {
			return nil, control.Errorf(file, l.No, "%v", err)
		}
		if seen[name] {
			return nil, control.Errorf(file, l.No, "user %s listed twice", name)
		}
		seen[name] = true
		out = append(out, Mailbox{Name: name, Dir: dir})
	}
	return out, nil
}

// FormatPasswd is the file content for mailboxes.
func FormatPasswd(mailboxes []Mailbox) []byte {
	var b bytes.Buffer
	for _, m := range mailboxes {
		fmt.Fprintf(&b, "%s:%s\n", m.Name, m.Dir)
	}
	return b.Bytes()
}

// ParseShadow parses a shadow file; file names it in errors.
func ParseShadow(file string, data []byte) ([]Credential, error) {
	var out []Credential
	seen := map[string]bool{}
	for _, l := range splitLines(data) {
		f := strings.Split(l.Text, ":")
		if len(f) != 3 {
			return nil, control.Errorf(file, l.No, "want NAME:HASH:SECRET")
		}
		if err := checkName(f[0]); err != nil {
			return nil, control.Errorf(file, l.No, "%v", err)
		}
		if !strings.HasPrefix(f[1], "$") {
			return nil, control.Errorf(file, l.No, "user %s: hash is not in crypt $id$ form", f[0])
		}
		c := Credential{Name: f[0], Hash: f[1]}
		if f[2] != "" {
			s, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil || len(s) == 0 {
				return nil, control.Errorf(file, l.No, "user %s: secret is not base64", f[0])
			}
			c.Secret = s
		}
		if seen[c.Name] {
			return nil, control.Errorf(file, l.No, "user %s listed twice", c.Name)
		}
		seen[c.Name] = true
		out = append(out, c)
	}
	return out, nil
}

// FormatShadow is the file content for credentials.
func FormatShadow(creds []Credential) []byte {
	var b bytes.Buffer
	for _, c := range creds {
		secret := ""
		if c.Secret != nil {
			secret = base64.StdEncoding.EncodeToString(c.Secret)
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", c.Name, c.Hash, secret)
	}
	return b.Bytes()
}

// splitLines gives the non-empty lines of a file that quail writes; '#'
// lines are comments, as in control files.
func splitLines(data []byte) []control.Line { return control.ParseList(data) }

func checkName(name string) error {
	n, err := NormalizeUser(name)
	if err != nil {
		return err
	}
	if n != name {
		return fmt.Errorf("user %q: must be lower case", name)
	}
	return nil
}

func checkDir(dir string) error {
	if dir == "" || filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "." ||
		dir == ".." || strings.HasPrefix(dir, "../") || strings.ContainsAny(dir, "\x00\n") {
		return fmt.Errorf("directory %q: want a clean path inside the domain's directory", dir)
	}
	return nil
}
