package rspawn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/remote"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

func TestReport(t *testing.T) {
	acc := func(t string) remote.Report { return remote.Report{Status: remote.Accepted, Text: t} }
	tmp := func(t string) remote.Report { return remote.Report{Status: remote.TempFail, Text: t} }
	prm := func(t string) remote.Report { return remote.Report{Status: remote.PermFail, Text: t} }
	for _, tc := range []struct {
		name string
		r    remote.Result
		want string
	}{
		{"delivered", remote.Result{Recipients: []remote.Report{acc("")}, Message: acc("192.0.2.7 accepted message.\nRemote host said: 250 ok\n")},
			"K192.0.2.7 accepted message.\nRemote host said: 250 ok\n"},
		{"recipient refused", remote.Result{Recipients: []remote.Report{prm("192.0.2.7 does not like recipient.\nRemote host said: 550 no\nGiving up on 192.0.2.7.\n")}, Message: prm("")},
			"D192.0.2.7 does not like recipient.\nRemote host said: 550 no\nGiving up on 192.0.2.7.\n"},
		{"recipient deferred", remote.Result{Recipients: []remote.Report{tmp("192.0.2.7 does not like recipient.\nRemote host said: 450 later\n")}, Message: prm("")},
			"Z192.0.2.7 does not like recipient.\nRemote host said: 450 later\n"},
		{"accepted, message failed after the dot", remote.Result{Recipients: []remote.Report{acc("")}, Message: tmp("192.0.2.7 failed after I sent the message.\nRemote host said: 451 disk\n")},
			"Z192.0.2.7 failed after I sent the message.\nRemote host said: 451 disk\n"},
		{"no connection", remote.Result{Message: tmp("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")},
			"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"},
		{"sender refused", remote.Result{Message: prm("Connected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n")},
			"DConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n"},
	} {
		if got := Report(tc.r); got != tc.want {
			t.Errorf("%s: Report = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// smtpPeer is a minimal SMTP server: the reply to RCPT TO:<x@...> is
// rcpt[x] (default 250); it counts connections and RCPT commands.
type smtpPeer struct {
	mu    sync.Mutex
	conns int
	rcpts []int // RCPTs per connection
	data  int
}

func startSMTPPeer(t *testing.T, rcpt map[string]string) (*smtpPeer, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &smtpPeer{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			n := p.conns
			p.conns++
			p.rcpts = append(p.rcpts, 0)
			p.mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				c.Write([]byte("220 peer\r\n"))
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
					switch strings.ToUpper(verb) {
					case "RCPT":
						p.mu.Lock()
						p.rcpts[n]++
						p.mu.Unlock()
						local := strings.TrimPrefix(arg, "TO:<")
						local, _, _ = strings.Cut(local, "@")
						reply, ok := rcpt[local]
						if !ok {
							reply = "250 ok"
						}
						c.Write([]byte(reply + "\r\n"))
					case "DATA":
						c.Write([]byte("354 go\r\n"))
						for {
							l, err := br.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						p.mu.Lock()
						p.data++
						p.mu.Unlock()
						c.Write([]byte("250 queued\r\n"))
					case "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					default:
						c.Write([]byte("250 ok\r\n"))
					}
				}
			}()
		}
	}()
	return p, netip.MustParseAddrPort(ln.Addr().String())
}

// queued makes an instance with one message in its queue.
func queued(t *testing.T) (root, mess string) {
	t.Helper()
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("mx.test\n"), 0o644)
	q := queue.New(root)
	if err := q.MakeLayout(nil); err != nil {
		t.Fatal(err)
	}
	w, err := q.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: batch\n\nbody\n"))
	if err := w.Commit(queue.Todo(0, 1, queue.Envelope{Sender: "s@mx.test", Recipients: []string{"x@y"}})); err != nil {
		t.Fatal(err)
	}
	return root, fmt.Sprintf("%d/%d", w.ID()%queue.Split, w.ID())
}

func TestDeliverBatch(t *testing.T) {
	root, mess := queued(t)
	peer, addr := startSMTPPeer(t, map[string]string{"b": "550 5.1.1 no such user", "c": "451 4.7.1 greylisted"})
	other, otherAddr := startSMTPPeer(t, nil)
	s := &Spawner{Root: root, Route: func(_ context.Context, _ control.Dir, domain string) ([]remote.Target, error) {
		if domain == "other.test" {
			return []remote.Target{{Addr: otherAddr}}, nil
		}
		return []remote.Target{{Addr: addr}}, nil
	}}
	reps := s.DeliverBatch(spawn.Batch{Mess: mess, Sender: "s@mx.test",
		Recipients: []string{"a@Far.test", "b@far.test", "c@FAR.test", "nohost", "d@other.test"}})
	want := []string{
		"K127.0.0.1 accepted message.\nRemote host said: 250 queued\n",
		"D127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n",
		"Z127.0.0.1 does not like recipient.\nRemote host said: 451 4.7.1 greylisted\n",
		"DSorry, address must include host name. (#5.1.3)\n",
		"K127.0.0.1 accepted message.\nRemote host said: 250 queued\n",
	}
	if !reflect.DeepEqual(reps, want) {
		t.Errorf("reports\n%q\nwant\n%q", reps, want)
	}
	peer.mu.Lock()
	if peer.conns != 1 || len(peer.rcpts) != 1 || peer.rcpts[0] != 3 || peer.data != 1 {
		t.Errorf("far.test: %d connections, RCPTs %v, %d messages; want 1 connection, 3 RCPTs, 1 message", peer.conns, peer.rcpts, peer.data)
	}
	peer.mu.Unlock()
	other.mu.Lock()
	if other.conns != 1 || other.data != 1 {
		t.Errorf("other.test: %d connections, %d messages", other.conns, other.data)
	}
	other.mu.Unlock()

	// Trouble with the message file is one report for all.
	if reps := s.DeliverBatch(spawn.Batch{Mess: "0/999999", Recipients: []string{"a@far.test", "b@far.test"}}); !reflect.DeepEqual(reps, []string{"Zqmail-spawn unable to open message. (#4.3.0)\n"}) {
		t.Errorf("missing message: %q", reps)
	}
	if reps := s.DeliverBatch(spawn.Batch{Mess: "0/x", Recipients: []string{"a@far.test"}}); reps[0] != "DInternal error: messid has nonnumerics. (#5.3.5)\n" {
		t.Errorf("bad messid: %q", reps)
	}
}

// Run speaks the batch extension, and qmail's protocol too, over pipes,
// and empties lock/tcpto first.
func TestRunBatches(t *testing.T) {
	root, mess := queued(t)
	_, addr := startSMTPPeer(t, map[string]string{"b": "550 no"})
	os.WriteFile(filepath.Join(root, "control", "smtproutes"), []byte("far.test:"+addr.String()+"\n"), 0o644)
	tcpto := remote.TCPToPath(root)
	os.WriteFile(tcpto, bytes.Repeat([]byte{1}, 1024), 0o644)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(root, inR, outW); outW.Close() }()
	inW.Write(spawn.Probe(0).Encode())
	inW.Write(spawn.Batch{Slot: 1, Mess: mess, Sender: "s@mx.test", Recipients: []string{"a@far.test", "b@far.test"}}.Encode())
	inW.Write(spawn.Command{Slot: 2, Mess: mess, Sender: "s@mx.test", Recipient: "c@far.test"}.Encode())
	inW.Close()
	br := bufio.NewReader(outR)
	if b, _ := br.ReadByte(); b != spawn.Limit {
		t.Errorf("limit byte %d", b)
	}
	got := map[byte]spawn.Result{}
	for {
		r, err := spawn.ReadBatchResult(br, MaxBatch)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.Slot] = r
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if spawn.BatchSize(got[0].Report) != MaxBatch {
		t.Errorf("probe answer %q", got[0].Report)
	}
	if len(got[1].Reports) != 2 || !strings.HasPrefix(got[1].Reports[0], "K") || !strings.HasPrefix(got[1].Reports[1], "D127.0.0.1 does not like recipient.") {
		t.Errorf("batch answer %+v", got[1])
	}
	if !strings.HasPrefix(got[2].Report, "K127.0.0.1 accepted message.") || got[2].Reports != nil {
		t.Errorf("single answer %+v", got[2])
	}
	if data, _ := os.ReadFile(tcpto); !bytes.Equal(data, make([]byte, 1024)) {
		t.Error("lock/tcpto not emptied at start")
	}
}

func TestReportFor(t *testing.T) {
	r := remote.Result{
		Recipients: []remote.Report{
			{Status: remote.Accepted},
			{Status: remote.PermFail, Text: "192.0.2.7 does not like recipient.\nRemote host said: 550 no\n"},
			{Status: remote.TempFail, Text: "192.0.2.7 does not like recipient.\nRemote host said: 451 later\n"},
		},
		Message: remote.Report{Status: remote.Accepted, Text: "192.0.2.7 accepted message.\nRemote host said: 250 ok\n"},
	}
	for i, want := range []string{
		"K192.0.2.7 accepted message.\nRemote host said: 250 ok\n",
		"D192.0.2.7 does not like recipient.\nRemote host said: 550 no\n",
		"Z192.0.2.7 does not like recipient.\nRemote host said: 451 later\n",
	} {
		if got := ReportFor(r, i); got != want {
			t.Errorf("recipient %d: %q, want %q", i, got, want)
		}
	}
	// A recipient the result has no report for shares the message's.
	died := remote.Result{Recipients: r.Recipients[1:2], Message: remote.Report{Status: remote.TempFail, Text: "Connected to 192.0.2.7 but connection died. (#4.4.2)\n"}}
	if got := ReportFor(died, 1); got != "ZConnected to 192.0.2.7 but connection died. (#4.4.2)\n" {
		t.Errorf("no report: %q", got)
	}
	// ... also when it is an "s" or "h" without text (remote.Deliver's
	// stand-in for a recipient before one that has an answer).
	gap := remote.Result{Recipients: []remote.Report{{Status: remote.PermFail}}, Message: remote.Report{Status: remote.PermFail, Text: "Connected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n"}}
	if got := ReportFor(gap, 0); got != "DConnected to 192.0.2.7 but sender was rejected.\nRemote host said: 553 no\n" {
		t.Errorf("stand-in: %q", got)
	}
}
