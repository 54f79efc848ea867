package cdb

// Byte-compatibility tests against the real cdb tools from Debian:
// tcprules (ucspi-tcp), cdbmake (freecdb) and cdb -c (tinycdb).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quail-mta/quail/pkg/testutil"
)

// run runs a tool in dir with stdin, failing the test on error.
func run(t *testing.T, dir string, stdin []byte, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// assertReencodes reads every record of db and checks that writing them
// again in the same order gives exactly the same bytes, then returns them.
func assertReencodes(t *testing.T, tool string, db []byte) []Record {
	t.Helper()
	recs := records(t, mustNew(t, db))
	ours := encode(t, recs)
	if !bytes.Equal(ours, db) {
		i := 0
		for i < min(len(ours), len(db)) && ours[i] == db[i] {
			i++
		}
		t.Fatalf("re-encoding %d records from %s: output differs at byte %d (sizes: ours %d, %s %d)",
			len(recs), tool, i, len(ours), tool, len(db))
	}
	return recs
}

func TestTcprules(t *testing.T) {
	tcprules := testutil.NeedTool(t, "tcprules", "ucspi-tcp")
	rules := `# qmail-smtpd style rules
127.:allow,RELAYCLIENT=""
10.0.0.1:deny
10.0.0.2:deny,X="1"
10.0.0.:allow,RELAYCLIENT="",RBLSMTPD=""
10.1.:allow,TCPREMOTEINFO="relay",DATABYTES="1000000"
=host.example:allow,X="y"
=mail.example.org:allow,RELAYCLIENT=""
=.example.net:allow,DOMAIN="net"
=:deny
@remote.example:allow,IDENT="yes"
joe@1.2.3.4:allow,USER="joe"
192.168.1.10-20:allow,A="1",B="two"
192.168.2.:allow
172.16.0.1-3:deny
1.2.3.4:allow,Y="a b",Z=""
5.6.7.8:allow,Q="quoted:colon",R=",comma"
203.0.113.7:allow,SMTPGREETING="hi there"
198.51.100.:deny
198.51.100.5:allow,RELAYCLIENT=""
198.51.100.5:deny
192.0.2.1:allow,MULTI="a",MULTI2="b",MULTI3="c"
=*.wild.example:deny
8.8.8.8:allow,A="1",A="2"
9.:allow,RBLSMTPD="-blocked"
11.22.33.44:allow,LONG="` + strings.Repeat("x", 300) + `"

# blank lines and comments are ignored
0.0.0.0:deny
255.255.255.255:allow,E=""
100.64.0.1-2:allow,CGNAT="yes"
:allow
`
	dir := t.TempDir()
	run(t, dir, []byte(rules), tcprules, "rules.cdb", "rules.tmp")
	db, err := os.ReadFile(filepath.Join(dir, "rules.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	recs := assertReencodes(t, "tcprules", db)
	if len(recs) < 40 {
		t.Fatalf("tcprules wrote only %d records; ranges should have expanded", len(recs))
	}

	// What tcprules stores (seen in cdbdump output): "D\0" for deny,
	// then "+VAR=value\0" for each variable; allow adds nothing.
	r, err := Open(filepath.Join(dir, "rules.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"127.", []string{"+RELAYCLIENT=\x00"}},
		{"10.0.0.1", []string{"D\x00"}},
		{"10.0.0.2", []string{"D\x00+X=1\x00"}},
		{"=host.example", []string{"+X=y\x00"}},
		{"192.168.1.10", []string{"+A=1\x00+B=two\x00"}},
		{"192.168.1.15", []string{"+A=1\x00+B=two\x00"}},
		{"192.168.1.20", []string{"+A=1\x00+B=two\x00"}},
		{"192.168.1.21", nil},
		{"172.16.0.3", []string{"D\x00"}},
		{"1.2.3.4", []string{"+Y=a b\x00+Z=\x00"}},
		{"198.51.100.5", []string{"+RELAYCLIENT=\x00", "D\x00"}},
		{"192.168.2.", []string{""}},
		{"", []string{""}},
		{"10.0.0.3", nil},
	} {
		var got []string
		for _, d := range all(t, r, []byte(tc.key)) {
			got = append(got, string(d))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("All(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// cdbmakeInput renders records in cdbmake's input format.
func cdbmakeInput(recs []Record) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "+%d,%d:%s->%s\n", len(r.Key), len(r.Data), r.Key, r.Data)
	}
	b.WriteString("\n")
	return b.Bytes()
}

func TestCdbmake(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := randRecords(rng, 5000)
	recs = append(recs, rec("", ""), rec("", ""), rec("dup", "1"), rec("dup", ""))
	input := cdbmakeInput(recs)
	ours := encode(t, recs)

	for _, tool := range []struct {
		name, pkg string
		args      []string
	}{
		{"cdbmake", "freecdb", []string{"out.cdb", "out.tmp"}},
		{"cdb", "tinycdb", []string{"-c", "-t", "out.tmp", "out.cdb"}},
	} {
		t.Run(tool.name, func(t *testing.T) {
			path := testutil.NeedTool(t, tool.name, tool.pkg)
			dir := t.TempDir()
			run(t, dir, input, path, tool.args...)
			db, err := os.ReadFile(filepath.Join(dir, "out.cdb"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, db) {
				t.Fatalf("our database (%d bytes) differs from %s's (%d bytes)", len(ours), tool.name, len(db))
			}
			if got := assertReencodes(t, tool.name, db); !recsEqual(got, recs) {
				t.Fatalf("records read back from %s's database differ from its input", tool.name)
			}
		})
	}
}
