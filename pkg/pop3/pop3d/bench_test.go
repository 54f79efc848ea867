package pop3d

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quail-mta/quail/pkg/maildir"
)

// BenchmarkSession is a full session in process (LIST, UIDL, RETR of
// every message, QUIT) over 1000 messages of 4 KB, the client on a
// socket pair: the session's own cost, without process start-up. The
// messages are moved back to new/ between sessions, outside the timer.
func BenchmarkSession(b *testing.B) {
	for _, named := range []bool{false, true} {
		b.Run(fmt.Sprintf("named=%v", named), func(b *testing.B) {
			const n = 1000
			dir := filepath.Join(b.TempDir(), "Maildir")
			if err := maildir.Make(dir, 0o700); err != nil {
				b.Fatal(err)
			}
			msg := strings.Repeat(strings.Repeat("x", 75)+"\n", 54)[:4095] + "\n"
			past := time.Now().Add(-time.Hour)
			var names []string
			for i := range n {
				name := fmt.Sprintf("1700000000.M%dP1.bench", i)
				if named {
					name += fmt.Sprintf(",S=%d,W=%d", len(msg), len(msg)+strings.Count(msg, "\n"))
				}
				p := filepath.Join(dir, "new", name)
				os.WriteFile(p, []byte(msg), 0o600)
				os.Chtimes(p, past, past)
				names = append(names, name)
			}
			b.SetBytes(int64(n * (len(msg) + strings.Count(msg, "\n"))))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for _, name := range names {
					os.Rename(filepath.Join(dir, "cur", name+":2,"), filepath.Join(dir, "new", name))
				}
				server, client := net.Pipe()
				done := make(chan error, 1)
				b.StartTimer()
				go func() { done <- Serve(server, Config{Maildir: dir}); server.Close() }()
				benchClient(b, client, n)
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchClient(b *testing.B, conn net.Conn, n int) {
	r := bufio.NewReaderSize(conn, 64<<10)
	line := func() []byte {
		l, err := r.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	body := func() int {
		k := 0
		for l := line(); !bytes.Equal(l, []byte(".\r\n")); l = line() {
			k++
		}
		return k
	}
	line()
	for _, c := range []string{"LIST\r\n", "UIDL\r\n"} {
		conn.Write([]byte(c))
		line()
		if k := body(); k != n {
			b.Fatalf("%s: %d", c, k)
		}
	}
	for i := 1; i <= n; i++ {
		conn.Write([]byte("RETR " + strconv.Itoa(i) + "\r\n"))
		line()
		body()
	}
	conn.Write([]byte("QUIT\r\n"))
	line()
}
