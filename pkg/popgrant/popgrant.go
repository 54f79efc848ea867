// Package popgrant records POP-before-SMTP grants: qmail-popup notes the
// address of every client that logs in, and qmail-smtpd lets an address
// that logged in within the last Window relay mail.
//
// A grant is a file ROOT/run/popgrant/ADDRESS, empty, whose modification
// time is the login time. The address is written in its canonical form
// (an IPv4-mapped IPv6 address as dotted quad, IPv6 compressed and lower
// case, no zone), so "::ffff:192.0.2.1" from one listener and
// "192.0.2.1" from another name the same grant.
//
// Record replaces the file atomically (a temporary file given the time,
// then renamed over the grant), so a reader sees the old grant or the
// new, and any number of logins may record at once. Grants are not
// fsynced: after a crash a client at worst logs in again.
//
// The directory is mode 0711: qmail-smtpd, running as qmaild, can stat a
// grant by name but cannot list who logged in. Only the recorder, running
// as root in qmail-popup, writes it. Grants expire by their time alone;
// Record also removes stale files now and then (at most once a minute,
// at most MaxSweep files per sweep), so the directory stays small
// without a cron job.
package popgrant

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/quail-mta/quail/pkg/control"
)

// DefaultWindow is how long a login grants relaying when
// control/popbeforesmtp does not say: 20 minutes, as the POP-before-SMTP
// tools for qmail used.
const DefaultWindow = 1200 * time.Second

// ControlFile is the control file holding the window in seconds.
const ControlFile = "popbeforesmtp"

// Dir is where the grants live, relative to the instance root.
const Dir = "run/popgrant"

// sweepMarker's modification time is when stale grants were last swept.
const sweepMarker = ".swept"

// SweepEvery is how often Record looks for stale grants to remove.
const SweepEvery = time.Minute

// MaxSweep bounds the files one sweep looks at, so that no login waits
// long for housekeeping; a larger backlog is worked off over later sweeps.
const MaxSweep = 4096

// maxWindow keeps seconds*time.Second inside an int64.
const maxWindow = 1 << 32

// Window reads control/popbeforesmtp (seconds; default 1200; 0 disables).
func Window(ctl control.Dir) (time.Duration, error) {
	n, err := ctl.IntOr(ControlFile, int64(DefaultWindow/time.Second))
	if err != nil {
		return 0, err
	}
	if n > maxWindow {
		return 0, control.Errorf("control/"+ControlFile, 1, "%d seconds is more than %d", n, int64(maxWindow))
	}
	return time.Duration(n) * time.Second, nil
}

// Record notes that ip logged in at now.
func Record(root, ip string, now time.Time) error {
	name, err := canonical(ip)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, Dir)
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("popgrant: %w (is %s writable by qmail-popup?)", err, filepath.Join(root, "run"))
	}
	tmp, err := tempFile(dir)
	if err != nil {
		return fmt.Errorf("popgrant: %w", err)
	}
	path := tmp.Name()
	tmp.Close()
	if err := os.Chtimes(path, now, now); err != nil {
		os.Remove(path)
		return fmt.Errorf("popgrant: %w", err)
	}
	if err := os.Rename(path, filepath.Join(dir, name)); err != nil {
		os.Remove(path)
		return fmt.Errorf("popgrant: %w", err)
	}
	maybeSweep(root, dir, now)
	return nil
}

// Allowed reports whether ip logged in within window before now.
func Allowed(root, ip string, window time.Duration, now time.Time) (bool, error) {
	if window <= 0 {
		return false, nil
	}
	name, err := canonical(ip)
	if err != nil {
		return false, err
	}
	st, err := os.Stat(filepath.Join(root, Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("popgrant: %w", err)
	}
	return fresh(st.ModTime(), window, now), nil
}

// fresh: a grant counts for window after its time. One dated after now
// (the clock was set back) counts too, for at most window, so a clock
// change neither strands nor immortalizes grants.
func fresh(granted time.Time, window time.Duration, now time.Time) bool {
	age := now.Sub(granted)
	return age <= window && age > -window
}

// canonical checks ip and returns its file name.
func canonical(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("popgrant: %q is not an IP address", ip)
	}
	return a.Unmap().WithZone("").String(), nil
}

var tempCounter atomic.Uint64

// tempFile creates a new empty file in dir under a name starting with a
// dot, which is never an address and which sweeps skip unless it is old.
func tempFile(dir string) (*os.File, error) {
	prefix := ".tmp." + strconv.Itoa(os.Getpid()) + "."
	for try := 0; ; try++ {
		p := filepath.Join(dir, prefix+strconv.FormatUint(tempCounter.Add(1), 10))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, fs.ErrExist) || try == 9 {
			return f, err
		}
	}
}

// maybeSweep removes grants older than the window (temporary files older
// than an hour: left by a crash), at most once per SweepEvery across all
// processes and at most MaxSweep entries per call. Errors are ignored:
// housekeeping must not fail a login. A grant renewed between the sweep's
// look at it and its removal is lost (there is no unlink-if-unchanged);
// that needs a client silent for the whole window to log in within those
// microseconds, and costs it one more login.
func maybeSweep(root, dir string, now time.Time) {
	marker := filepath.Join(dir, sweepMarker)
	if st, err := os.Stat(marker); err == nil {
		if age := now.Sub(st.ModTime()); age < SweepEvery && age > -SweepEvery {
			return
		}
	} else if f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	// Claim this sweep; a concurrent one does no harm, a missing file
	// is simply skipped.
	if err := os.Chtimes(marker, now, now); err != nil {
		return
	}
	window, err := Window(control.New(root))
	if err != nil || window <= 0 {
		window = DefaultWindow
	}
	sweep(dir, window, now, MaxSweep)
}

func sweep(dir string, window time.Duration, now time.Time, limit int) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	seen := 0
	for seen < limit {
		ents, err := d.ReadDir(min(256, limit-seen))
		for _, e := range ents {
			seen++
			name := e.Name()
			if name == sweepMarker {
				continue
			}
			info, ierr := e.Info()
			if ierr != nil {
				continue
			}
			maxAge := window
			if name[0] == '.' {
				maxAge = time.Hour
			}
			if !fresh(info.ModTime(), maxAge, now) {
				os.Remove(filepath.Join(dir, name))
			}
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}
