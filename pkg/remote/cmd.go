package remote

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/quail-mta/quail/pkg/control"
)

// Main is the qmail-remote program: `qmail-remote HOST SENDER RECIPIENT...`
// with the message on stdin and the result protocol on stdout. Like
// qmail's it always exits 0: the result says what happened.
func Main(args []string, stdin *os.File, stdout io.Writer, root string) int {
	if len(args) < 3 {
		WriteResult(stdout, Result{Message: Report{PermFail, TextUsage}})
		return 0
	}
	host, sender, rcpts := args[0], args[1], args[2:]
	msg, size, err := seekable(stdin)
	if err != nil {
		WriteResult(stdout, Result{Message: Report{TempFail, TextReadMessage}})
		return 0
	}
	defer msg.Close()
	ctx := context.Background()
	ctl := control.New(root)
	cfg, err := LoadConfig(ctl, host)
	if err == nil {
		cfg.Targets, err = Route(ctx, ctl, host)
	}
	if err != nil {
		WriteResult(stdout, Failed(err))
		return 0
	}
	cfg.TCPTo = NewTCPTo(TCPToPath(root))
	WriteResult(stdout, Deliver(ctx, cfg, sender, rcpts, msg, size))
	return 0
}

// TCPToPath is where an instance keeps its timeout table.
func TCPToPath(root string) string {
	return filepath.Join(root, "queue", "lock", "tcpto")
}

// seekable returns the message as a file that can be read twice: stdin
// itself when it is a regular file (as qmail-rspawn gives it), else a copy
// in an unlinked temporary file.
func seekable(f *os.File) (*os.File, int64, error) {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return f, st.Size(), nil
	}
	tmp, err := os.CreateTemp("", "qmail-remote-")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(tmp.Name())
	n, err := io.Copy(tmp, f)
	if err != nil {
		tmp.Close()
		return nil, 0, err
	}
	return tmp, n, nil
}
