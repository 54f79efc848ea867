package pwhash

// Cross-checks against independent SHA-512-crypt implementations installed
// on the machine: OpenSSL ("openssl passwd -6", always required), libc's
// crypt(3) through mkpasswd (Debian package "whois") and through Python's
// crypt module (Python 3.12 or older).

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

// needTool returns the path of an optional cross-check tool. When it is
// missing the test is skipped, or fails when CI=true, so that CI cannot
// pass without the cross-check silently.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, fmt.Sprintf("%s not found in PATH; install it to run this cross-check: %s", name, install))
	}
	return path
}

func missingTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: cross-checks are mandatory)")
	}
	t.Skip(msg)
}

type crossCase struct {
	password []byte
	salt     string // from the crypt alphabet
	rounds   int    // for the tools that take rounds
}

// crossCases returns fixed pseudo-random cases: passwords of lengths
// around the 64- and 128-byte block boundaries of the algorithm up to
// MaxPasswordLen (plus the empty one), in three kinds (printable ASCII,
// arbitrary non-NUL bytes, UTF-8 with non-ASCII letters), with salts of 1
// to 20 characters and various rounds.
func crossCases() []crossCase {
	r := rand.New(rand.NewPCG(0x717561696c, 6)) // fixed: failures reproduce
	lengths := []int{0, 1, 7, 12, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 191, 192, 193, 255, 256, 257, 384, MaxPasswordLen}
	saltLens := []int{16, 8, 12, 20, 1, 9, 15, 3, 16, 10, 14, 13, 11}
	roundsList := []int{1000, 5000, 5001, 7777, 12345, 2020, DefaultRounds}
	runes := []rune("äöüßéñжЖ中文€😀✓")

	var cases []crossCase
	for i, n := range lengths {
		pw := make([]byte, 0, n)
		switch i % 3 {
		case 0: // printable ASCII and space
			for len(pw) < n {
				pw = append(pw, byte(0x20+r.IntN(0x7f-0x20)))
			}
		case 1: // any byte but NUL, which cannot pass through argv or C
			for len(pw) < n {
				pw = append(pw, byte(1+r.IntN(255)))
			}
		case 2: // UTF-8, mostly non-ASCII, padded with ASCII to n bytes
			for len(pw) < n {
				c := runes[r.IntN(len(runes))]
				if len(pw)+utf8.RuneLen(c) > n || r.IntN(4) == 0 {
					c = rune('a' + r.IntN(26))
				}
				pw = utf8.AppendRune(pw, c)
			}
		}
		salt := make([]byte, saltLens[i%len(saltLens)])
		for j := range salt {
			salt[j] = cryptAlphabet[r.IntN(len(cryptAlphabet))]
		}
		cases = append(cases, crossCase{pw, string(salt), roundsList[i%len(roundsList)]})
	}
	return cases
}

func TestCrossCases(t *testing.T) {
	// The generator must produce what the cross-checks claim to cover.
	var sawHigh, sawUTF8, sawLong, sawTruncSalt bool
	for _, c := range crossCases() {
		if bytes.IndexByte(c.password, 0) >= 0 {
			t.Fatalf("NUL in %q", c.password)
		}
		sawHigh = sawHigh || !utf8.Valid(c.password)
		sawUTF8 = sawUTF8 || utf8.Valid(c.password) && utf8.RuneCount(c.password) < len(c.password)
		sawLong = sawLong || len(c.password) > 128
		sawTruncSalt = sawTruncSalt || len(c.salt) > maxSaltLen
	}
	if !sawHigh || !sawUTF8 || !sawLong || !sawTruncSalt {
		t.Fatalf("cases miss a kind: non-UTF-8 %v, UTF-8 %v, >128 bytes %v, long salt %v",
			sawHigh, sawUTF8, sawLong, sawTruncSalt)
	}
}

// checkCross compares one tool result with ours and with Verify.
func checkCross(t *testing.T, tool string, c crossCase, setting, got string) {
	t.Helper()
	want := cryptSpec(t, c.password, setting)
	if got != want {
		t.Errorf("%s, %d-byte password %q, setting %q:\n tool %s\n ours %s", tool, len(c.password), c.password, setting, got, want)
		return
	}
	if ok, err := Verify(got, c.password); !ok || err != nil {
		t.Errorf("Verify(%s output %s) = %v, %v; want true, nil", tool, got, ok, err)
	}
	if ok, err := Verify(got, append(bytes.Clone(c.password), 'x')); ok || err != nil {
		t.Errorf("Verify(%s output %s, wrong password) = %v, %v; want false, nil", tool, got, ok, err)
	}
}

func TestCrossCheckOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found in PATH; install it (Debian: apt-get install openssl): this cross-check is never skipped")
	}
	n := 0
	for _, c := range crossCases() {
		// "openssl passwd" reads an empty argument as no password and
		// truncates passwords to 256 bytes; it has no rounds option, so
		// this checks the implied 5000 rounds and salt truncation.
		if len(c.password) == 0 || len(c.password) > 256 {
			continue
		}
		out, err := exec.Command(openssl, "passwd", "-6", "-salt", c.salt, "--", string(c.password)).Output()
		if err != nil {
			t.Fatalf("openssl passwd -6 -salt %s: %v", c.salt, err)
		}
		checkCross(t, "openssl", c, "$6$"+c.salt, strings.TrimSuffix(string(out), "\n"))
		n++
	}
	if n < 15 {
		t.Fatalf("only %d openssl cases", n)
	}
	t.Logf("%d cases agree with %s", n, openssl)
}

func TestCrossCheckMkpasswd(t *testing.T) {
	mkpasswd := needTool(t, "mkpasswd", "Debian/Ubuntu: apt-get install whois")
	n := 0
	for _, c := range crossCases() {
		// mkpasswd insists on 8 to 16 salt characters and a non-empty
		// argument (it prompts otherwise).
		if len(c.salt) < 8 || len(c.salt) > 16 || len(c.password) == 0 {
			continue
		}
		out, err := exec.Command(mkpasswd, "-m", "sha-512", "-R", fmt.Sprint(c.rounds), "-S", c.salt, "--", string(c.password)).Output()
		if err != nil {
			t.Fatalf("mkpasswd -m sha-512 -R %d -S %s: %v", c.rounds, c.salt, err)
		}
		setting := fmt.Sprintf("$6$rounds=%d$%s", c.rounds, c.salt)
		checkCross(t, "mkpasswd", c, setting, strings.TrimSuffix(string(out), "\n"))
		n++
	}
	if n < 12 {
		t.Fatalf("only %d mkpasswd cases", n)
	}
	t.Logf("%d cases agree with %s", n, mkpasswd)
}

// pythonCrypt runs every setting through Python's crypt module in one
// process. The passwords travel hex-encoded; crypt.crypt takes str, so
// only UTF-8 passwords can be checked this way.
const pythonCrypt = `
import sys, warnings
warnings.simplefilter("ignore")
import crypt
for line in sys.stdin:
    pw, setting = line.rstrip("\n").split("\t")
    print(crypt.crypt(bytes.fromhex(pw).decode("utf-8"), setting))
`

func TestCrossCheckPythonCrypt(t *testing.T) {
	python := needTool(t, "python3", "Python 3.12 or older with its crypt module")
	if out, err := exec.Command(python, "-W", "ignore", "-c", "import crypt").CombinedOutput(); err != nil {
		missingTool(t, fmt.Sprintf("%s cannot import crypt (removed in Python 3.13; use 3.12 or older): %v: %s", python, err, out))
	}
	var cases []crossCase
	var settings []string
	var in strings.Builder
	for i, c := range crossCases() {
		if !utf8.Valid(c.password) {
			continue
		}
		setting := fmt.Sprintf("$6$rounds=%d$%s", c.rounds, c.salt)
		if i%2 == 0 {
			setting = "$6$" + c.salt // implied 5000 rounds
		}
		cases = append(cases, c)
		settings = append(settings, setting)
		fmt.Fprintf(&in, "%s\t%s\n", hex.EncodeToString(c.password), setting)
	}
	cmd := exec.Command(python, "-c", pythonCrypt)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 crypt: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cases) || len(cases) < 12 {
		t.Fatalf("python3 crypt: %d results for %d cases", len(lines), len(cases))
	}
	for i, c := range cases {
		checkCross(t, "python3 crypt", c, settings[i], lines[i])
	}
	t.Logf("%d cases agree with %s's crypt module", len(cases), python)
}
