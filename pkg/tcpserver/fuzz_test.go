package tcpserver

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRule: a rules database is outside input (anyone who can write
// it, or a corrupt file). Whatever the bytes, the result must be usable
// as environment entries, and encoding it again must give it back.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"", "D\x00", "+RELAYCLIENT=\x00", "D\x00+A=1\x00+B=x=y\x00", "+=x\x00+A\x00", "+A=1", "\x00\x00Z\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := ParseRule(data)
		var again []byte
		if r.Deny {
			again = append(again, "D\x00"...)
		}
		for _, v := range r.Env {
			if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") || strings.IndexByte(v.Value, 0) >= 0 {
				t.Fatalf("bad variable %q=%q from %q", v.Name, v.Value, data)
			}
			again = append(again, "+"+v.Name+"="+v.Value+"\x00"...)
		}
		if r2 := ParseRule(again); !reflect.DeepEqual(r, r2) {
			t.Fatalf("%q gives %+v, re-encoded %q gives %+v", data, r, again, r2)
		}
	})
}

// FuzzParseIdent: the ident reply comes from the client's host.
func FuzzParseIdent(f *testing.F) {
	for _, s := range []string{"1, 2 : USERID : UNIX : joe\r\n", "1,2:ERROR:NO-USER\n", "::::\n", "a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, ok := parseIdent(bufio.NewReader(bytes.NewReader(data)))
		if !ok && info != "" {
			t.Fatalf("no answer but info %q", info)
		}
		if len(info) > maxInfo+1 || strings.ContainsAny(info, " \t\r\n\x00") {
			t.Fatalf("info %q from %q", info, data)
		}
	})
}
