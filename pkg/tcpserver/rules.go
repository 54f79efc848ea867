package tcpserver

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"

	"github.com/quail-mta/quail/pkg/cdb"
)

// Client is what the rules are matched against: the connection's remote
// address as it appears in TCPREMOTEIP, and TCPREMOTEHOST and
// TCPREMOTEINFO when they are set.
type Client struct {
	IP      string
	Host    string
	HasHost bool
	Info    string
	HasInfo bool
}

// RuleKeys lists the cdb keys tried for c, in tcpserver's order; the first
// key present decides. For an IPv4 address 1.2.3.4 with host h.example.com
// and info joe:
//
//	joe@1.2.3.4, joe@=h.example.com, 1.2.3.4, =h.example.com,
//	1.2.3., 1.2., 1., =.example.com, =.com, =, (empty)
//
// An IPv6 address is cut at its colons the same way (2001:db8::1 gives
// 2001:db8::, 2001:db8:, 2001:): tcprules cannot write such keys (it ends
// the address at the first colon), but a cdb made otherwise can hold them.
func RuleKeys(c Client) []string {
	sep := byte('.')
	if strings.IndexByte(c.IP, ':') >= 0 {
		sep = ':'
	}
	keys := make([]string, 0, 12)
	if c.HasInfo {
		keys = append(keys, c.Info+"@"+c.IP)
		if c.HasHost {
			keys = append(keys, c.Info+"@="+c.Host)
		}
	}
	keys = append(keys, c.IP)
	if c.HasHost {
		keys = append(keys, "="+c.Host)
	}
	for i := len(c.IP); i > 0; i-- {
		if c.IP[i-1] == sep {
			keys = append(keys, c.IP[:i])
		}
	}
	if c.HasHost {
		for i := 0; i < len(c.Host); i++ {
			if c.Host[i] == '.' {
				keys = append(keys, "="+c.Host[i:])
			}
		}
		keys = append(keys, "=")
	}
	return append(keys, "")
}

// Rule is the decoded value of a tcprules entry.
type Rule struct {
	Deny bool
	Env  []Var // in the order the rule lists them
}

// Var is one environment variable a rule sets.
type Var struct {
	Name, Value string
}

// ParseRule decodes a value written by tcprules: a sequence of
// NUL-terminated instructions, "D" for deny and "+NAME=value" for a
// variable. Like tcpserver it ignores instructions of any other kind, a
// "+" without "=", and bytes after the last NUL; it also ignores a
// variable with an empty name, which no program could read.
func ParseRule(data []byte) Rule {
	var r Rule
	for {
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			return r
		}
		ins := data[:end]
		data = data[end+1:]
		if len(ins) == 0 {
			continue
		}
		switch ins[0] {
		case 'D':
			r.Deny = true
		case '+':
			name, value, ok := bytes.Cut(ins[1:], []byte("="))
			if ok && len(name) > 0 {
				r.Env = append(r.Env, Var{string(name), string(value)})
			}
		}
	}
}

// getter is the part of a cdb reader the lookup needs.
type getter interface {
	Get(key []byte) ([]byte, bool, error)
}

// lookup finds the rule for c and the key it is stored under. found is
// false when no key matched: the connection is then allowed with no
// variables.
func lookup(db getter, c Client) (r Rule, key string, found bool, err error) {
	for _, k := range RuleKeys(c) {
		data, ok, err := db.Get([]byte(k))
		if err != nil {
			return Rule{}, "", false, err
		}
		if ok {
			return ParseRule(data), k, true, nil
		}
	}
	return Rule{}, "", false, nil
}

// LookupFile opens the rules database at path, as tcprules last wrote it,
// and finds the rule for c. It opens the file anew on every call, so a
// database replaced by tcprules applies to the next connection. A missing
// file is an error unless allowMissing; then it allows with no variables.
func LookupFile(path string, allowMissing bool, c Client) (Rule, error) {
	db, err := cdb.Open(path)
	if err != nil {
		if allowMissing && errors.Is(err, fs.ErrNotExist) {
			return Rule{}, nil
		}
		return Rule{}, err
	}
	defer db.Close()
	r, _, _, err := lookup(db, c)
	return r, err
}
