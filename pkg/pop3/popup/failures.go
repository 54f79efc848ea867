package popup

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Failures slows down password guessing per client address, across
// connections: qmail-popup ends a connection after one failed login, so
// a delay within one connection would cost a guesser nothing but a
// reconnect.
//
// Each address that failed has a file DIR/ADDRESS; each failure appends
// one byte (O_APPEND, so concurrent failures all count), and the file's
// modification time is the last failure. An attempt from an address with
// n recent failures waits 2^(n-1) seconds, at most MaxDelay, before the
// checker runs; the wait comes before the check, so a guesser cannot
// skip it by hanging up early. Failures older than Forget are forgotten;
// a successful login forgets them at once. Files are small and old ones
// are removed by Fail, at most once a minute, a bounded number each
// time. Nothing here is fsynced: it is a brake, not a record.
type Failures struct {
	Dir string // $QMAILHOME/run/popfail
	Now func() time.Time
}

// Forget is how long after the last failure an address starts clean.
const Forget = 15 * time.Minute

// MaxDelay bounds the wait before a login attempt.
const MaxDelay = 16 * time.Second

// maxCount bounds a file's size.
const maxCount = 64

func (f *Failures) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// path is the file for ip, or "" when ip is not an address.
func (f *Failures) path(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	return filepath.Join(f.Dir, a.Unmap().WithZone("").String())
}

// Count is the number of recent failures from ip.
func (f *Failures) Count(ip string) int {
	p := f.path(ip)
	if p == "" {
		return 0
	}
	st, err := os.Stat(p)
	if err != nil || f.now().Sub(st.ModTime()) > Forget {
		return 0
	}
	return int(min(st.Size(), maxCount))
}

// Delay is how long an attempt from ip waits: 0 without recent failures,
// then 1 s, 2 s, 4 s, ... up to MaxDelay.
func (f *Failures) Delay(ip string) time.Duration {
	n := f.Count(ip)
	if n == 0 {
		return 0
	}
	if n > 5 {
		return MaxDelay
	}
	return min(time.Second<<(n-1), MaxDelay)
}

// Fail notes a failed login from ip.
func (f *Failures) Fail(ip string) {
	p := f.path(ip)
	if p == "" {
		return
	}
	if err := os.Mkdir(f.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if f.Count(ip) == 0 {
		flags |= os.O_TRUNC // stale: start again
	}
	file, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return
	}
	if st, err := file.Stat(); err == nil && st.Size() < maxCount {
		file.Write([]byte{'x'})
	}
	file.Close()
	now := f.now()
	os.Chtimes(p, now, now)
	f.sweep()
}

// Clear forgets the failures of ip, after a successful login.
func (f *Failures) Clear(ip string) {
	if p := f.path(ip); p != "" {
		os.Remove(p)
	}
}

// sweep removes files of addresses whose failures are forgotten, at
// most once a minute and at most 1024 files per call.
func (f *Failures) sweep() {
	now := f.now()
	marker := filepath.Join(f.Dir, ".swept")
	if st, err := os.Stat(marker); err == nil && now.Sub(st.ModTime()) < time.Minute && now.Sub(st.ModTime()) > -time.Minute {
		return
	}
	if file, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		file.Close()
	}
	if os.Chtimes(marker, now, now) != nil {
		return
	}
	d, err := os.Open(f.Dir)
	if err != nil {
		return
	}
	defer d.Close()
	ents, _ := d.ReadDir(1024)
	for _, e := range ents {
		if e.Name()[0] == '.' {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > Forget {
			os.Remove(filepath.Join(f.Dir, e.Name()))
		}
	}
}
