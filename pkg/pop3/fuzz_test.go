package pop3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pop3"
)

// replayConn is a connection whose peer sends fixed bytes and reads
// everything.
type replayConn struct {
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *replayConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

var fuzzOpts = pop3.Options{Addr: "pop.example.com:110", MaxLineLength: 256, MaxMessages: 50, MaxMessageSize: 4096}

// FuzzReplies runs a whole session against a server whose replies are the
// fuzzer's bytes: the client must never panic, and whatever it returns
// must keep within its bounds.
func FuzzReplies(f *testing.F) {
	for _, s := range []string{
		"+OK hi\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 2 20\r\n+OK\r\n1 10\r\n2 10\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\nab\r\n..c\r\n.\r\n+OK\r\n+OK\r\n",
		"+OK <1.2@x>\r\n+OK\r\nSASL PLAIN\r\nUSER\r\n.\r\n+OK\r\n+OK 1 1\r\n+OK\r\n1 1\r\n.\r\n+OK\r\n1 " + strings.Repeat("u", 70) + "\r\n.\r\n+OK\r\n.\n",
		"+OK\r\n+OK\r\n.\r\n+ \r\n-ERR [AUTH] no\r\n",
		"+OK\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 1000000000 1\r\n",
		"+OK\n-ERR\n+OK\n+OK\n+OK 1 5\n+OK\n1 5\n.\n+OK\n1 x\n.\n+OK\n.\r.\n.\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, replies []byte) {
		ctx := context.Background()
		c, err := pop3.NewClient(ctx, &replayConn{r: bytes.NewReader(replies)}, fuzzOpts)
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.Login(ctx, "alice", "secret"); err != nil {
			return
		}
		n, _, err := c.Stat(ctx)
		if err == nil && (n < 0 || n > fuzzOpts.MaxMessages) {
			t.Fatalf("Stat count %d outside 0..%d", n, fuzzOpts.MaxMessages)
		}
		if list, err := c.List(ctx); err == nil {
			checkListing(t, list)
		}
		if list, err := c.UIDL(ctx); err == nil {
			checkListing(t, list)
			for _, m := range list {
				if len(m.UID) < 1 || len(m.UID) > 70 || strings.ContainsFunc(m.UID, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
					t.Fatalf("UIDL returned unique id %q", m.UID)
				}
			}
		}
		if r, err := c.Retr(ctx, 1); err == nil {
			b, err := io.ReadAll(r)
			if int64(len(b)) > fuzzOpts.MaxMessageSize {
				t.Fatalf("RETR returned %d bytes, more than %d", len(b), fuzzOpts.MaxMessageSize)
			}
			if err == nil && int64(len(b)) > int64(len(replies)) {
				t.Fatalf("RETR returned %d bytes from %d of replies", len(b), len(replies))
			}
		}
		if err := c.Dele(ctx, 1); err != nil && !isProtocolError(err) {
			t.Fatalf("DELE: unexpected error %v", err)
		}
		c.Quit(ctx)
	})
}

func checkListing(t *testing.T, list []pop3.MessageInfo) {
	t.Helper()
	if len(list) > fuzzOpts.MaxMessages {
		t.Fatalf("listing of %d messages, more than %d", len(list), fuzzOpts.MaxMessages)
	}
	for i, m := range list {
		if m.Number < 1 || m.Number > fuzzOpts.MaxMessages || (i > 0 && m.Number <= list[i-1].Number) {
			t.Fatalf("listing %v: bad or unsorted message number %d", list, m.Number)
		}
		if m.Size < 0 {
			t.Fatalf("negative size %d", m.Size)
		}
	}
}

// isProtocolError reports whether err is one the client may return for a
// bad or closed exchange.
func isProtocolError(err error) bool {
	var perr *pop3.Error
	return errors.As(err, &perr) || errors.Is(err, pop3.ErrMalformed) || errors.Is(err, pop3.ErrLimit) ||
		errors.Is(err, pop3.ErrLineTooLong) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pop3.ErrClosed)
}

// FuzzRetr checks that RETR undoes exactly the byte-stuffing of RFC 1939:
// a message stuffed and terminated comes back as it was.
func FuzzRetr(f *testing.F) {
	for _, s := range []string{"", "a\nb\n", ".\n..\n...\n", ".", "x\r\n.\r\ny", "\n\n.\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		body := strings.ReplaceAll(strings.ReplaceAll(s, "\r", ""), "\n", "\r\n")
		if body != "" && !strings.HasSuffix(body, "\r\n") {
			body += "\r\n"
		}
		var stuffed strings.Builder
		for _, line := range strings.SplitAfter(body, "\r\n") {
			if strings.HasPrefix(line, ".") {
				stuffed.WriteString(".")
			}
			stuffed.WriteString(line)
		}
		stuffed.WriteString(".\r\n+OK\r\n")
		replies := "+OK\r\n-ERR\r\n+OK\r\n" + stuffed.String()
		opts := fuzzOpts
		opts.MaxMessageSize = 1 << 20
		ctx := context.Background()
		c, err := pop3.NewClient(ctx, &replayConn{r: strings.NewReader(replies)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Retr(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Fatalf("RETR = %q, want %q", got, body)
		}
		if err := c.Noop(ctx); err != nil {
			t.Fatalf("NOOP after the message: %v", err)
		}
	})
}
