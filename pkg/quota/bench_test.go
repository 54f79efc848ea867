package quota

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fill puts n messages of 2000 bytes in joe's new/, named as Deliver
// names them (with ,S=), without writing their bodies: the count reads
// names only.
func fill(b *testing.B, n int) string {
	b.Helper()
	root := newDomain(b, "example.test:1099511627776\n", "joe")
	dir := filepath.Join(maildirOf(root, "joe"), "new")
	for i := range n {
		name := "1700000000.M" + strconv.Itoa(i) + "P1Q1.bench,S=2000,W=2040"
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	u, err := Current(root, domain)
	if err != nil || u != (Usage{int64(n) * 2000, int64(n)}) {
		b.Fatalf("Current = %+v, %v", u, err)
	}
	return root
}

var sizes = []int{10, 100000}

// BenchmarkOver is the check qmail-smtpd makes at RCPT and qmail-local
// before each delivery: its cost must not depend on the number of
// messages (SPEC §8). Both domains are made before either is timed, so
// that neither run pays for the other's file creation.
func BenchmarkOver(b *testing.B) {
	roots := make([]string, len(sizes))
	for i, n := range sizes {
		roots[i] = fill(b, n)
	}
	syscall.Sync()
	for i, n := range sizes {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if over, err := Over(roots[i], domain, 4096); over || err != nil {
					b.Fatal(over, err)
				}
			}
		})
	}
}

// BenchmarkAdd records a delivery, as qmail-local does after each one.
// The record grows, so the file is reset now and then, untimed.
func BenchmarkAdd(b *testing.B) {
	root := fill(b, 10)
	file := filepath.Join(root, "domains", domain, Dir, File)
	fresh, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; i%400 == 0 {
			b.StopTimer()
			if err := os.WriteFile(file, fresh, 0o644); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if err := Add(root, domain, 2000, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecount is the occasional full count (every MaxRecordSize
// bytes of record or MaxAge): linear in the messages, by design.
func BenchmarkRecount(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			root := fill(b, n)
			bk, err := newBook(root, domain)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if u, err := bk.scan(); err != nil || u.Messages != int64(n) {
					b.Fatal(u, err)
				}
			}
		})
	}
}

// BenchmarkParseRecord reads a record as qmail-smtpd and qmail-local find
// it between recounts: a line for every delivery since, here 320.
func BenchmarkParseRecord(b *testing.B) {
	data := formatRecord(time.Unix(1700000000, 0), "1.2", Usage{4046390, 1679})
	for range 320 {
		data = formatLine(data, Usage{2410, 1})
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := parseRecord(data); r.bad {
			b.Fatal("bad record")
		}
	}
}
