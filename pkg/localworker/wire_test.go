package localworker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRequestRoundTrip(t *testing.T) {
	r := request{42, "qmailv", "/q/domains/example.test/joe", "example.test-joe", "", "", "example.test", "a@b.example", "./Maildir/"}
	got, err := decodeRequest(r.encode())
	if err != nil || got != r {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "x\x00a\x00b\x00c\x00d\x00e\x00f\x00g\x00h", "1\x00a\x00b"} {
		if _, err := decodeRequest([]byte(bad)); err == nil {
			t.Errorf("decodeRequest(%q) accepted", bad)
		}
	}
}

func TestReplyTruncated(t *testing.T) {
	long := strings.Repeat("x", 10000)
	got, err := decodeReply(reply{7, 111, []byte(long)}.encode())
	if err != nil || got.id != 7 || got.status != 111 || len(got.output) != maxReport || !strings.HasSuffix(string(got.output), tooLong) {
		t.Errorf("reply = %d %d len %d, %v", got.id, got.status, len(got.output), err)
	}
}

// A message file travels with its request, close-on-exec on arrival.
func TestFDPassing(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	from, to := testChannel(t, fds[0]), testChannel(t, fds[1])
	p := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(p, []byte("Subject: x\n\nbody\n"), 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	if err := sendFD(from, []byte("hello"), f); err != nil {
		t.Fatal(err)
	}
	data, got, err := recvFD(to, make([]byte, maxPacket))
	if err != nil || string(data) != "hello" || got == nil {
		t.Fatalf("recvFD = %q, %v, %v", data, got, err)
	}
	defer got.Close()
	b := make([]byte, 64)
	n, _ := got.ReadAt(b, 0)
	if string(b[:n]) != "Subject: x\n\nbody\n" {
		t.Errorf("passed file reads %q", b[:n])
	}
	flags, _ := unix.FcntlInt(got.Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("a received message file is not close-on-exec: delivery programs would inherit it")
	}
	from.CloseWrite()
	if _, _, err := recvFD(to, make([]byte, 16)); err != ErrClosed {
		t.Errorf("after the peer closed: %v, want ErrClosed", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(request{1, "u", "/h", "l", "-", "e", "d", "s", "./Maildir/"}.encode())
	f.Add(reply{1, 0, []byte("did 1+0+0\n")}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRequest(b); err == nil {
			if again, err := decodeRequest(r.encode()); err != nil || again != r {
				t.Fatalf("request round trip: %+v %v", again, err)
			}
		}
		decodeReply(b)
	})
}

// A request too large for one packet is refused before it is sent: the
// worker would take the cut packet for a malformed one and end.
func TestDeliverRefusesOversizedRequest(t *testing.T) {
	var w Worker // not started: the refusal comes first
	_, _, err := w.Deliver(1, Request{Sender: strings.Repeat("s", maxPacket) + "@example.org"}, nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Deliver with a %d-byte sender: %v, want ErrTooLarge", maxPacket, err)
	}
}
