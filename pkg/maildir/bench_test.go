package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDeliver delivers 4 KB messages, each durably: two fsyncs (the
// file and new/) per message, which dominate on a real disk.
func BenchmarkDeliver(b *testing.B) {
	dir := newMaildir(b)
	msg := bytes.Repeat([]byte("0123456789abcde\n"), 256)
	prefix := []byte("Return-Path: <sender@example.org>\nDelivered-To: joe@example.test\n")
	r := bytes.NewReader(msg)
	var w Writer
	b.ReportAllocs()
	b.SetBytes(int64(len(prefix) + len(msg)))
	for b.Loop() {
		r.Reset(msg)
		if _, err := w.Deliver(dir, r, prefix); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverParallel is BenchmarkDeliver from GOMAXPROCS goroutines
// into one Maildir.
func BenchmarkDeliverParallel(b *testing.B) {
	dir := newMaildir(b)
	msg := bytes.Repeat([]byte("0123456789abcde\n"), 256)
	var w Writer
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.RunParallel(func(pb *testing.PB) {
		r := bytes.NewReader(msg)
		for pb.Next() {
			r.Reset(msg)
			if _, err := w.Deliver(dir, r, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkScan lists a Maildir of 10,000 messages of 4 KB, half in new/
// and half in cur/, as a POP3 session starts.
func BenchmarkScan(b *testing.B) {
	dir := newMaildir(b)
	fillMaildir(b, dir, 10000)
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := Scan(dir)
		if err != nil || len(msgs) != 10000 {
			b.Fatal(len(msgs), err)
		}
	}
}

// BenchmarkMoveToCur moves messages from new/ to cur/, as QUIT does.
func BenchmarkMoveToCur(b *testing.B) {
	dir := newMaildir(b)
	m := Message{Name: "new/m", UIDL: "m"}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		os.WriteFile(filepath.Join(dir, m.Name), nil, 0o600)
		b.StartTimer()
		if _, err := MoveToCur(dir, m); err != nil {
			b.Fatal(err)
		}
	}
}
