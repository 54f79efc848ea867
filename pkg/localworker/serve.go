package localworker

import (
	"context"
	"fmt"
	"sync"

	"github.com/quail-mta/quail/pkg/local"
	"github.com/quail-mta/quail/pkg/pollfd"
)

// ServeWorker is the long-lived qmail-local worker: it runs as one
// mailbox owner, reads delivery requests with their message files from
// the socket fd (3, from qmail-lspawn), runs each as qmail-local would
// (package local), concurrently, and answers each. It returns when
// qmail-lspawn closes the socket, after the deliveries in flight end.
func ServeWorker(fd int, root string, env []string) error {
	sock, err := pollfd.NewChannel(fd)
	if err != nil {
		return err
	}
	defer sock.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, maxPacket)
	for {
		data, msg, err := recvFD(sock, buf)
		if err == ErrClosed {
			return nil
		}
		if err != nil {
			return err
		}
		req, err := decodeRequest(data)
		if err != nil || msg == nil {
			if msg != nil {
				msg.Close()
			}
			return fmt.Errorf("qmail-local worker: %v", err)
		}
		wg.Go(func() {
			defer msg.Close()
			var out outputBuffer
			status := local.Deliver(context.Background(), local.Request{
				Root: root, User: req.user, Home: req.home, Local: req.local, Dash: req.dash,
				Ext: req.ext, Domain: req.domain, Sender: req.sender, DefaultDelivery: req.defaultDel, Env: env,
			}, msg, &out)
			// Sends may run at once: each is one whole packet. An error
			// means qmail-lspawn is gone; it reports the delivery as
			// crashed.
			_ = sock.Send(reply{req.id, status, out.b}.encode())
		})
	}
}

// outputBuffer keeps what a delivery prints, up to a bound: a program
// that prints megabytes must not cost megabytes.
type outputBuffer struct{ b []byte }

func (o *outputBuffer) Write(p []byte) (int, error) {
	if room := maxReport + 1 - len(o.b); room > 0 {
		o.b = append(o.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}
