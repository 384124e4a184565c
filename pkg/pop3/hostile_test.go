package pop3_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pop3"
)

// script is the server side of a scripted connection.
type script struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// send writes lines, each ended by CRLF.
func (s *script) send(lines ...string) {
	for _, l := range lines {
		if _, err := io.WriteString(s.conn, l+"\r\n"); err != nil {
			return // the client hung up, as it may
		}
	}
}

// expect reads a command line and checks that it starts with prefix.
func (s *script) expect(prefix string) string {
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: reading %q: %v", prefix, err)
		return ""
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, prefix) {
		s.t.Errorf("server: got command %q, want %q", line, prefix)
	}
	return line
}

// scripted serves one connection with handler, on a loopback listener,
// and returns the listener's address.
func scripted(t *testing.T, handler func(s *script)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		handler(&script{t: t, conn: conn, r: bufio.NewReader(conn)})
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

// loggedIn is the start of a session up to a successful USER/PASS.
func loggedIn(s *script) {
	s.send("+OK ready")
	s.expect("CAPA")
	s.send("+OK", "USER", "UIDL", ".")
	s.expect("USER alice")
	s.send("+OK")
	s.expect("PASS secret")
	s.send("+OK logged in")
}

func dialLoggedIn(t *testing.T, addr string, opts pop3.Options) *pop3.Client {
	t.Helper()
	opts.Addr = addr
	c, err := pop3.Dial(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(t.Context(), "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostileReplies checks that replies which break the protocol or its
// bounds end in an error, quickly, and leave the client unusable.
func TestHostileReplies(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name    string
		opts    pop3.Options
		server  func(s *script)
		client  func(ctx context.Context, c *pop3.Client) error
		wantErr error
	}{
		{
			name: "overlong status line",
			server: func(s *script) {
				loggedIn(s)
				s.expect("STAT")
				s.send("+OK " + long)
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, _, err := c.Stat(ctx)
				return err
			},
			wantErr: pop3.ErrLineTooLong,
		},
		{
			name: "endless line",
			server: func(s *script) {
				loggedIn(s)
				s.expect("NOOP")
				chunk := strings.Repeat("+", 4096)
				for range 1000 {
					if _, err := io.WriteString(s.conn, chunk); err != nil {
						return
					}
				}
			},
			client:  func(ctx context.Context, c *pop3.Client) error { return c.Noop(ctx) },
			wantErr: pop3.ErrLineTooLong,
		},
		{
			name: "billion-message STAT",
			server: func(s *script) {
				loggedIn(s)
				s.expect("STAT")
				s.send("+OK 1000000000 99999999999")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, _, err := c.Stat(ctx)
				return err
			},
			wantErr: pop3.ErrLimit,
		},
		{
			name: "STAT overflowing int64",
			server: func(s *script) {
				loggedIn(s)
				s.expect("STAT")
				s.send("+OK 1 99999999999999999999999999")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, _, err := c.Stat(ctx)
				return err
			},
			wantErr: pop3.ErrMalformed,
		},
		{
			name: "overlong UID",
			server: func(s *script) {
				loggedIn(s)
				s.expect("UIDL")
				s.send("+OK", "1 abc", "2 "+strings.Repeat("u", 71), ".")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, err := c.UIDL(ctx)
				return err
			},
			wantErr: pop3.ErrMalformed,
		},
		{
			name: "UID with a control character",
			server: func(s *script) {
				loggedIn(s)
				s.expect("UIDL")
				s.send("+OK", "1 a\x01b", ".")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, err := c.UIDL(ctx)
				return err
			},
			wantErr: pop3.ErrMalformed,
		},
		{
			name: "endless listing",
			opts: pop3.Options{MaxMessages: 1000},
			server: func(s *script) {
				loggedIn(s)
				s.expect("UIDL")
				s.send("+OK")
				for i := 1; ; i++ {
					if _, err := fmt.Fprintf(s.conn, "%d x\r\n", i); err != nil {
						return
					}
				}
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, err := c.UIDL(ctx)
				return err
			},
			wantErr: pop3.ErrLimit,
		},
		{
			name: "message number past the limit",
			opts: pop3.Options{MaxMessages: 1000},
			server: func(s *script) {
				loggedIn(s)
				s.expect("LIST")
				s.send("+OK", "1001 20", ".")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				_, err := c.List(ctx)
				return err
			},
			wantErr: pop3.ErrLimit,
		},
		{
			name: "endless message",
			opts: pop3.Options{MaxMessageSize: 1 << 20},
			server: func(s *script) {
				loggedIn(s)
				s.expect("RETR 1")
				s.send("+OK")
				line := strings.Repeat("y", 1000) + "\r\n"
				for {
					if _, err := io.WriteString(s.conn, line); err != nil {
						return
					}
				}
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				r, err := c.Retr(ctx, 1)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, r)
				return err
			},
			wantErr: pop3.ErrLimit,
		},
		{
			name: "missing terminator",
			opts: pop3.Options{Timeout: 200 * time.Millisecond},
			server: func(s *script) {
				loggedIn(s)
				s.expect("RETR 1")
				s.send("+OK", "Subject: x", "", "body")
				s.r.ReadString('\n') // hold the connection until the client gives up
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				r, err := c.Retr(ctx, 1)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, r)
				return err
			},
			wantErr: errTimeout,
		},
		{
			name: "connection closed in a message",
			server: func(s *script) {
				loggedIn(s)
				s.expect("RETR 1")
				s.send("+OK", "Subject: x", "", "body")
			},
			client: func(ctx context.Context, c *pop3.Client) error {
				r, err := c.Retr(ctx, 1)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, r)
				return err
			},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "not a status line",
			server: func(s *script) {
				loggedIn(s)
				s.expect("DELE 1")
				s.send("+OKAY")
			},
			client:  func(ctx context.Context, c *pop3.Client) error { return c.Dele(ctx, 1) },
			wantErr: pop3.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scripted(t, tt.server)
			c := dialLoggedIn(t, addr, tt.opts)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := tt.client(ctx, c)
			if !matches(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if ctx.Err() != nil {
				t.Fatalf("the client gave up only at the test's deadline")
			}
			if err := c.Noop(ctx); !matches(err, tt.wantErr) {
				t.Errorf("command after the failure: error %v, want the failure again", err)
			}
		})
	}
}

// errTimeout stands for a read deadline that passed.
var errTimeout = errors.New("timeout")

func matches(err, want error) bool {
	if want == errTimeout {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	return errors.Is(err, want)
}

// TestSTLSDowngrade checks that a client configured for STLS never goes on
// in plaintext.
func TestSTLSDowngrade(t *testing.T) {
	tests := []struct {
		name   string
		server func(s *script)
		want   string
	}{
		{
			name: "not offered",
			server: func(s *script) {
				s.send("+OK ready")
				s.expect("CAPA")
				s.send("+OK", "USER", "UIDL", ".")
			},
			want: "does not offer STLS",
		},
		{
			name: "refused",
			server: func(s *script) {
				s.send("+OK ready")
				s.expect("CAPA")
				s.send("+OK", "STLS", "USER", ".")
				s.expect("STLS")
				s.send("-ERR not today")
			},
			want: "refused STLS",
		},
		{
			name: "refused without CAPA",
			server: func(s *script) {
				s.send("+OK ready")
				s.expect("CAPA")
				s.send("-ERR what")
				s.expect("STLS")
				s.send("-ERR what")
			},
			want: "refused STLS",
		},
		{
			name: "plaintext after STLS",
			server: func(s *script) {
				s.send("+OK ready")
				s.expect("CAPA")
				s.send("+OK", "STLS", ".")
				s.expect("STLS")
				// What a man in the middle would slip in for the client
				// to read once TLS is up.
				io.WriteString(s.conn, "+OK begin TLS\r\n+OK\r\nSASL PLAIN\r\n.\r\n")
			},
			want: "before the TLS handshake",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scripted(t, tt.server)
			c, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr, TLS: pop3.StartTLS, TLSPolicy: pop3.TLSPolicy{Certificate: anyCert}})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, pop3.ErrSTLS) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %v with %q", err, pop3.ErrSTLS, tt.want)
			}
		})
	}
}

// TestHandshakeTimeout checks that a server that never answers the TLS
// handshake is given up on.
func TestHandshakeTimeout(t *testing.T) {
	addr := scripted(t, func(s *script) {
		s.r.ReadByte() // the ClientHello; no answer
		io.Copy(io.Discard, s.r)
	})
	start := time.Now()
	_, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr, TLS: pop3.ImplicitTLS, Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Fatalf("error %v, want a handshake failure", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// TestCancel checks that cancelling the context ends a command at once,
// whatever the timeout.
func TestCancel(t *testing.T) {
	addr := scripted(t, func(s *script) {
		loggedIn(s)
		s.expect("STAT")
		s.r.ReadString('\n')
	})
	c := dialLoggedIn(t, addr, pop3.Options{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, err := c.Stat(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want %v", err, context.Canceled)
	}
}

// TestDotUnstuffing checks RETR's unstuffing, the bare-LF terminator, and
// that an unread message is skipped by the next command.
func TestDotUnstuffing(t *testing.T) {
	addr := scripted(t, func(s *script) {
		loggedIn(s)
		s.expect("RETR 1")
		io.WriteString(s.conn, "+OK 40 octets\r\n..\r\n...x\r\n.\rnot the end\r\nlast\r\n.\r\n")
		s.expect("RETR 2")
		io.WriteString(s.conn, "+OK\r\n.\r\n")
		s.expect("RETR 3")
		io.WriteString(s.conn, "+OK\r\nunix\nlines\n.\n")
		s.expect("RETR 4")
		io.WriteString(s.conn, "+OK\r\nnot read\r\n..\r\n.\r\n")
		s.expect("NOOP")
		s.send("+OK")
	})
	c := dialLoggedIn(t, addr, pop3.Options{})
	ctx := t.Context()
	for _, tt := range []struct {
		n    int
		want string
	}{
		{1, ".\r\n..x\r\n\rnot the end\r\nlast\r\n"},
		{2, ""},
		{3, "unix\nlines\n"},
	} {
		r, err := c.Retr(ctx, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != tt.want {
			t.Errorf("RETR %d = %q, %v, want %q", tt.n, got, err, tt.want)
		}
	}
	if _, err := c.Retr(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatalf("NOOP after an unread message: %v", err)
	}
}

// TestAPOP checks the digest of RFC 1939's example and that Login prefers
// APOP without TLS.
func TestAPOP(t *testing.T) {
	addr := scripted(t, func(s *script) {
		s.send("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>")
		s.expect("CAPA")
		s.send("+OK", "USER", "SASL PLAIN", ".")
		s.expect("APOP mrose c4c9334bac560ecc979e58001b3e22fb")
		s.send("+OK maildrop has 1 message (369 octets)")
	})
	c, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), "mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
}

// TestAuthPlainLong checks that AUTH PLAIN sends a long response after the
// server's continuation rather than on an over-long command line.
func TestAuthPlainLong(t *testing.T) {
	pass := strings.Repeat("p", 300)
	addr := scripted(t, func(s *script) {
		s.send("+OK ready")
		s.expect("CAPA")
		s.send("+OK", "SASL PLAIN", ".")
		if line := s.expect("AUTH PLAIN"); line != "AUTH PLAIN" {
			t.Errorf("got %q, want the command without initial response", line)
		}
		s.send("+ ")
		s.expect("AGFsaWNl")
		s.send("-ERR [AUTH] no")
	})
	c, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(t.Context(), "alice", pass)
	if !errors.Is(err, pop3.ErrAuthFailed) {
		t.Fatalf("error %v, want %v", err, pop3.ErrAuthFailed)
	}
	if strings.Contains(err.Error(), pass) {
		t.Errorf("error %q shows the password", err)
	}
}

// TestInUseIsNotAuthFailure checks that a locked mailbox is not reported
// as a wrong password.
func TestInUseIsNotAuthFailure(t *testing.T) {
	addr := scripted(t, func(s *script) {
		s.send("+OK ready")
		s.expect("CAPA")
		s.send("-ERR")
		s.expect("USER")
		s.send("+OK")
		s.expect("PASS")
		s.send("-ERR [IN-USE] mailbox locked")
	})
	c, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(t.Context(), "alice", "secret")
	var perr *pop3.Error
	if !errors.As(err, &perr) || perr.Code != "IN-USE" || !perr.Temporary() || errors.Is(err, pop3.ErrAuthFailed) {
		t.Fatalf("error %#v, want a temporary IN-USE error that is not %v", err, pop3.ErrAuthFailed)
	}
}

// TestOptionsValidate checks that bad options are refused together.
func TestOptionsValidate(t *testing.T) {
	err := pop3.Options{Addr: "nohost", TLS: pop3.StartTLS, Timeout: -1,
		TLSPolicy: pop3.TLSPolicy{CAPEM: []byte("junk"), CipherSuite: "HIHG"}}.Validate()
	for _, want := range []string{"addr", "ca_pem", "cipher suite", "timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
}
