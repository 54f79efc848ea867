package remote

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/testutil"
)

// TestSMTPSink delivers to Postfix's smtp-sink, a real SMTP server that
// offers PIPELINING and 8BITMIME, and checks the message it stored.
func TestSMTPSink(t *testing.T) {
	t.Parallel()
	sink := testutil.NeedTool(t, "smtp-sink", "postfix")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	// smtp-sink writes as nobody when run as root.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-d", dir + "/%M.", "-h", "sink.test"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // smtp-sink refuses to run as root without it
	}
	cmd := exec.Command(sink, append(args, addr, "10")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("smtp-sink did not start: %v; %s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg := "Subject: sink caf\xc3\xa9\n\n.dot\nbare\rcr\n"
	cfg := Config{Domain: "example.org", HeloHost: "helo.test", ConnectTimeout: 5 * time.Second, Timeout: 5 * time.Second,
		Targets: []Target{{Addr: netip.MustParseAddrPort(addr)}}}
	res := Deliver(context.Background(), cfg, "a@example.net", []string{"b@example.org", "c@example.org"}, strings.NewReader(msg), int64(len(msg)))
	if len(res.Recipients) != 2 || res.Recipients[0].Status != Accepted || res.Recipients[1].Status != Accepted ||
		res.Message.Status != Accepted || !strings.HasPrefix(res.Message.Text, "127.0.0.1 accepted message.\nRemote host said: 250") {
		t.Fatalf("result %+v; smtp-sink: %s", res, stderr.String())
	}
	var files []string
	for i := 0; i < 100 && len(files) == 0; i++ {
		files, _ = filepath.Glob(filepath.Join(dir, "*"))
		time.Sleep(20 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("smtp-sink stored %d files", len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// smtp-sink stores the envelope as headers, then the message as it
	// came off the wire, dots removed again, with LF line ends.
	got := string(data)
	for _, want := range []string{"X-Mail-Args: <a@example.net> BODY=8BITMIME\n", "X-Rcpt-Args: <b@example.org>\n", "X-Rcpt-Args: <c@example.org>\n", "Subject: sink caf\xc3\xa9\n\n.dot\nbare\ncr\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored message lacks %q:\n%q", want, got)
		}
	}
}
