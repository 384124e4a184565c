package smtpd

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// dialFrom connects from a given loopback address (127.0.0.0/8 is all
// loopback on Linux).
func dialFrom(t *testing.T, from string, addr net.Addr) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: nc, r: bufio.NewReader(nc)}
}

// quit ends a session and waits until the server has closed it (and so
// freed its slot).
func (c *client) quit() {
	c.t.Helper()
	c.cmd("QUIT", "221 ")
	c.expectClosed()
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		cfg := testConfig()
		cfg.Limits = &ospreyv1.SmtpLimits{MaxConnections: 3, MaxConnectionsPerClient: 1}
		s := startServer(t, cfg)
		a := dialFrom(t, "127.0.0.1", s.Addr())
		a.expect("220 ")
		second := dialFrom(t, "127.0.0.1", s.Addr())
		second.expect("421 4.7.0 ")
		second.expectClosed()
		b := dialFrom(t, "127.0.0.2", s.Addr())
		b.expect("220 ")
		a.quit()
		again := dialFrom(t, "127.0.0.1", s.Addr())
		again.expect("220 ")
		if got := s.Stats().Rejected["client_connection_limit"]; got != 1 {
			t.Errorf("client_connection_limit counter %d, want 1", got)
		}
	})
	t.Run("total", func(t *testing.T) {
		cfg := testConfig()
		cfg.Limits = &ospreyv1.SmtpLimits{MaxConnections: 2, MaxConnectionsPerClient: 2}
		s := startServer(t, cfg)
		a := dialFrom(t, "127.0.0.1", s.Addr())
		a.expect("220 ")
		dialFrom(t, "127.0.0.2", s.Addr()).expect("220 ")
		third := dialFrom(t, "127.0.0.3", s.Addr())
		third.expect("421 4.4.5 ")
		third.expectClosed()
		a.quit()
		dialFrom(t, "127.0.0.3", s.Addr()).expect("220 ")
		if st := s.Stats(); st.Rejected["connection_limit"] != 1 || st.Active != 2 {
			t.Errorf("connection_limit counter %d and %d active, want 1 and 2", st.Rejected["connection_limit"], st.Active)
		}
	})
}

// TestSlowClients checks that a client that stops or dribbles is cut off
// within the limit, in each phase. The timeouts are shortened (the
// configuration allows 10 s at least); the test waits only for them.
func TestSlowClients(t *testing.T) {
	const limit = 300 * time.Millisecond
	// within fails unless the server cut the client off after about d:
	// not much earlier (the server's clock starts a moment before the
	// client's) and within a margin for a loaded machine.
	within := func(t *testing.T, start time.Time, d time.Duration) {
		t.Helper()
		if el := time.Since(start); el < d*3/4 || el > d+3*time.Second {
			t.Errorf("cut off after %v, want about %v", el, d)
		}
	}
	dribble := func(c *client, s string, stop <-chan struct{}) {
		for i := range len(s) {
			select {
			case <-stop:
				return
			case <-time.After(limit / 4):
			}
			if _, err := c.conn.Write([]byte{s[i]}); err != nil {
				return
			}
		}
	}

	t.Run("silent before a command", func(t *testing.T) {
		s := startServer(t, testConfig(), withTune(shortLimits(limit, limit, time.Minute)))
		c := dial(t, s.Addr())
		c.expect("220 ")
		start := time.Now()
		c.expect("421 4.4.2 Command timeout")
		within(t, start, limit)
		c.expectClosed()
	})
	t.Run("dribbling a command", func(t *testing.T) {
		s := startServer(t, testConfig(), withTune(shortLimits(limit, limit, time.Minute)))
		c := dial(t, s.Addr())
		c.expect("220 ")
		start := time.Now()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			dribble(c, "EHLO a-rather-long-name.client.test\r\n", stop)
		}()
		c.expect("421 4.4.2 Command timeout")
		within(t, start, limit)
		close(stop)
		<-done
	})
	t.Run("silent in DATA", func(t *testing.T) {
		s := startServer(t, testConfig(), withTune(shortLimits(time.Minute, limit, time.Minute)))
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: half\r\n")
		start := time.Now()
		c.expect("421 4.4.2 Data timeout")
		within(t, start, limit)
		c.expectClosed()
		if n := len(s.spool.messages()); n != 0 {
			t.Errorf("%d messages stored, want none", n)
		}
	})
	t.Run("dribbling DATA past the session limit", func(t *testing.T) {
		const session = 4 * limit
		s := startServer(t, testConfig(), withTune(shortLimits(time.Minute, limit, session)))
		start := time.Now()
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			dribble(c, strings.Repeat("x", 1000), stop)
		}()
		c.expect("421 4.4.2 Session time limit")
		within(t, start, session)
		close(stop)
		<-done
		if got := s.Stats().Rejected["timeout"]; got != 1 {
			t.Errorf("timeout counter %d, want 1", got)
		}
	})
}

func TestErrorLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = &ospreyv1.SmtpLimits{MaxErrors: 3, MaxRecipients: 1}
	t.Run("unknown commands", func(t *testing.T) {
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("FOO", "500 ")
		c.cmd("BAR", "500 ")
		c.send("BAZ\r\n")
		c.expect("500 ")
		c.expect("421 4.7.0 ")
		c.expectClosed()
	})
	t.Run("refused recipients", func(t *testing.T) {
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<a@other.test>", "550 5.7.1 ")
		c.cmd("RCPT TO:<b@other.test>", "550 5.7.1 ")
		c.send("RCPT TO:<c@other.test>\r\n")
		c.expect("550 5.7.1 ")
		c.expect("421 4.7.0 ")
		c.expectClosed()
		if got := s.Stats().Rejected["too_many_errors"]; got != 1 {
			t.Errorf("too_many_errors counter %d, want 1", got)
		}
	})
	t.Run("too many recipients is not an error", func(t *testing.T) {
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<a@example.com>", "250 ")
		for range 5 {
			c.cmd("RCPT TO:<b@example.com>", "452 4.5.3 ")
		}
		c.cmd("NOOP", "250 ")
	})
	t.Run("an accepted message resets the count", func(t *testing.T) {
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("FOO", "500 ")
		c.cmd("FOO", "500 ")
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<a@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: x\r\n\r\n.\r\n")
		c.expect("250 ")
		c.cmd("FOO", "500 ")
		c.cmd("FOO", "500 ")
		c.cmd("NOOP", "250 ")
	})
}

func TestLineLength(t *testing.T) {
	t.Run("longest command", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.cmd("NOOP "+strings.Repeat("x", MaxCommandLine-len("NOOP \r\n")), "250 ")
	})
	t.Run("command too long", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("NOOP " + strings.Repeat("x", MaxCommandLine-len("NOOP \r\n")+1) + "\r\n")
		c.expect("500 5.5.2 Line too long")
		c.expectClosed()
	})
	t.Run("command without end", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("NOOP " + strings.Repeat("x", 2*readBufferSize))
		c.expect("500 5.5.2 Line too long")
		c.expectClosed()
	})
	t.Run("text line too long", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxMessageSize = &ospreyv1.SizeLimit{Unlimited: true}
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: x\r\n\r\n" + strings.Repeat("y", MaxTextLine-2) + "\r\n" + strings.Repeat("z", MaxTextLine-1) + "\r\n.\r\n")
		c.expect("500 5.5.2 Line too long")
		c.expectClosed()
		if n := len(s.spool.messages()); n != 0 {
			t.Errorf("%d messages stored, want none", n)
		}
	})
}

func TestMessageSize(t *testing.T) {
	t.Run("DATA past the limit", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxMessageSize = &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_KB}
		s := startServer(t, cfg)
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send(strings.Repeat("0123456789abcd\r\n", 64) + "x\r\n.\r\n") // 1024 bytes, then 3 more
		c.expect("552 5.3.4 ")
		// The body was read to its end: the session goes on.
		c.cmd("MAIL FROM:<a@b.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send(strings.Repeat("0123456789abcd\r\n", 64) + ".\r\n")
		c.expect("250 ")
		msgs := s.spool.messages()
		if len(msgs) != 1 || len(bodyOf(t, msgs[0])) != 1024 {
			t.Errorf("stored %d messages, want one of 1024 bytes", len(msgs))
		}
	})
}
