package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// refData is a plain reading of the DATA rules, line by line, for
// readData to agree with whatever its buffer size.
func refData(in []byte) (out []byte, longLine bool, err error) {
	for {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return out, longLine, errors.New("eof")
		}
		line := in[:i]
		in = in[i+1:]
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return out, longLine, errBareLF
		}
		line = line[:len(line)-1]
		if string(line) == "." {
			return out, longLine, nil
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		if len(line) > MaxLine {
			longLine = true
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
}

func FuzzReadData(f *testing.F) {
	for _, s := range []string{
		"a\r\n.\r\n", "..x\r\n.\r\n", "a\nb\r\n.\r\n", "a\r\r\n.\r\n", "\r.\r\n.\r\n",
		"Received: x\r\n\r\n.\r\n", "x" + strings.Repeat("y", 40) + "\r\n.\r\n", "a\r\n.\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufSize uint8) {
		var out bytes.Buffer
		r := bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufSize))
		res, err := readData(r, &out, 0)
		want, wantLong, wantErr := refData(in)
		switch {
		case wantErr == nil && err != nil, wantErr != nil && err == nil,
			errors.Is(wantErr, errBareLF) != errors.Is(err, errBareLF):
			t.Fatalf("%q: err %v, reference %v", in, err, wantErr)
		case err != nil:
			return
		case !bytes.Equal(out.Bytes(), want):
			t.Fatalf("%q: stored %q, reference %q", in, out.Bytes(), want)
		case res.size != int64(len(want)):
			t.Fatalf("%q: size %d, stored %d", in, res.size, len(want))
		case res.longLine != wantLong:
			t.Fatalf("%q: longLine %v, reference %v", in, res.longLine, wantLong)
		}
		// With a limit, nothing past it is stored.
		out.Reset()
		limit := int64(len(want) / 2)
		if limit == 0 {
			return // 0 means no limit
		}
		r = bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufSize))
		res, err = readData(r, &out, limit)
		if err != nil || int64(out.Len()) > limit || res.tooBig != (int64(len(want)) > limit) {
			t.Fatalf("%q limit %d: stored %d, tooBig %v, err %v", in, limit, out.Len(), res.tooBig, err)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"FROM:<a@b>", "TO:<@x,@y:u@v> SIZE=10", `FROM:<"a b"@c>`, "FROM: a@b", "TO:<a\\>@b>", "FROM:<>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		p, err := parsePath(arg)
		if err != nil {
			return
		}
		if len(p.addr) > maxAddr {
			t.Fatalf("%q: address of %d bytes accepted", arg, len(p.addr))
		}
		parseMailParams(p.params)
	})
}

// FuzzSession feeds whole sessions to the server: it must answer and end
// without panicking, and whatever it queued must have been acknowledged.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@example.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"AUTH PLAIN\r\n=\r\nAUTH LOGIN\r\n*\r\n",
		"MAIL FROM:<a@b> SIZE=99999999999\r\nRSET\r\nSTARTTLS\r\n",
		"DATA\r\n\x00\r\n.\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		q := &fakeQueue{}
		cfg := testConfig(q)
		cfg.Auth, cfg.AuthPlaintext = &fakeAuth{}, true
		cfg.Timeout = time.Second
		out, _ := converse(t, cfg, in+"\r\nQUIT\r\n")
		if !strings.HasPrefix(out, "220 ") {
			t.Fatalf("no greeting: %q", out)
		}
		if n := strings.Count(out, "\r\n250 ok 1700000000 qp 4242\r\n"); n != len(q.messages) {
			t.Fatalf("%d messages queued, %d acknowledged", len(q.messages), n)
		}
	})
}
