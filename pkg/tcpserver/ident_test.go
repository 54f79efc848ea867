package tcpserver

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseIdent(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  string
		ok    bool
	}{
		{"6193, 23 : USERID : UNIX : stjohns\r\n", "stjohns", true},
		{"6193,23:USERID:UNIX:st johns\n", "stjohns", true}, // blanks go, as in tcpserver
		{"6193, 23 : USERID : OTHER : a:b:c\r\n", "a:b:c", true},
		{"6195, 23 : ERROR : NO-USER\r\n", "", true},
		{"6193, 23 : USERID : UNIX : joe", "", false}, // no end of line
		{"", "", false},
		{"1,2:USERID:UNIX:" + strings.Repeat("x", 300) + "\n", strings.Repeat("x", 257), true},
		{"1,2:USERID:UNIX:jo\x00e\n", "jo", true},
	} {
		got, ok := parseIdent(bufio.NewReader(strings.NewReader(tc.reply)))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseIdent(%q) = %q, %v; want %q, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeIdentd answers one query with reply and sends the query it got.
func fakeIdentd(t *testing.T, reply string) (uint16, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	queries := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		q, _ := bufio.NewReader(c).ReadString('\n')
		queries <- q
		c.Write([]byte(reply))
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port), queries
}

func TestIdent(t *testing.T) {
	port, queries := fakeIdentd(t, "40000 , 25 : USERID : UNIX : joe\r\n")
	local := netip.MustParseAddrPort("127.0.0.1:25")
	remote := netip.MustParseAddrPort("127.0.0.1:40000")
	info, ok := ident(context.Background(), local, remote, port, 5*time.Second)
	if !ok || info != "joe" {
		t.Errorf("got %q, %v; want joe", info, ok)
	}
	if q := <-queries; q != "40000 , 25\r\n" {
		t.Errorf("query %q, want the client's port first", q)
	}
}

func TestIdentTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // accepts (in the backlog) and never answers
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ap := netip.MustParseAddrPort("127.0.0.1:1")
	start := time.Now()
	if _, ok := ident(context.Background(), ap, ap, port, 300*time.Millisecond); ok {
		t.Error("an identd that never answers gave an answer")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with a 300ms timeout", d)
	}
}

func TestIdentRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	ap := netip.MustParseAddrPort("127.0.0.1:1")
	if _, ok := ident(context.Background(), ap, ap, port, time.Second); ok {
		t.Error("no identd, yet an answer")
	}
}
