package smtpd

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestReconfigure(t *testing.T) {
	s := startServer(t, testConfig())
	addr := s.Addr()

	// A session that starts under the first configuration...
	old := hello(t, addr)
	old.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	old.cmd("RCPT TO:<bob@example.com>", "250 ")

	next := testConfig()
	next.DestinationDomains = []string{"other.test"}
	next.MaxMessageSize = &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_KB}
	if err := s.Apply(t.Context(), next); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if s.Addr().String() != addr.String() {
		t.Errorf("address moved from %v to %v with the same listen setting", addr, s.Addr())
	}

	// ...keeps it,
	old.cmd("RCPT TO:<carol@example.com>", "250 ")
	old.cmd("DATA", "354 ")
	old.send("Subject: old\r\n\r\nbody\r\n.\r\n")
	old.expect("250 2.0.0 ")

	// while a new one gets the new configuration.
	fresh := dial(t, addr)
	fresh.expect("220 ")
	if caps := capabilities(fresh.cmd("EHLO client.test", "250")); caps[len(caps)-1] != "SIZE 1024" {
		t.Errorf("capabilities %q, want SIZE 1024", caps)
	}
	fresh.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	fresh.cmd("RCPT TO:<bob@example.com>", "550 5.7.1 ")
	fresh.cmd("RCPT TO:<bob@other.test>", "250 ")
	fresh.quit()

	// The old session may start another transaction under its policy.
	old.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	old.cmd("RCPT TO:<dave@example.com>", "250 ")
	old.quit()
	if n := len(s.spool.messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestDisable(t *testing.T) {
	s := startServer(t, testConfig())
	addr := s.Addr()
	open := hello(t, addr)
	open.cmd("MAIL FROM:<alice@sender.test>", "250 ")

	off := testConfig()
	off.Enabled = false
	if err := s.Apply(t.Context(), off); err != nil {
		t.Fatalf("Apply disabled: %v", err)
	}
	expectNotListening(t, s.Server, addr)

	// The open session finishes.
	open.cmd("RCPT TO:<bob@example.com>", "250 ")
	open.cmd("DATA", "354 ")
	open.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	open.expect("250 2.0.0 ")
	open.quit()

	// Enabling again listens again.
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatalf("Apply enabled: %v", err)
	}
	hello(t, s.Addr()).quit()
}

func TestMove(t *testing.T) {
	s := startServer(t, testConfig())
	addr := s.Addr()
	open := hello(t, addr)

	moved := testConfig()
	moved.Listen = "[::1]:0"
	if err := s.Apply(t.Context(), moved); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if ip := s.Addr().(*net.TCPAddr).IP; !ip.Equal(net.IPv6loopback) {
		t.Fatalf("listening on %v, want [::1]", s.Addr())
	}
	if nc, err := net.Dial("tcp", addr.String()); err == nil {
		nc.Close()
		t.Errorf("connected to the old address %v", addr)
	}
	hello(t, s.Addr()).quit()
	open.cmd("NOOP", "250 ")
	open.quit()
}

// TestApplyBindFailureKeepsRunning: an Apply whose address cannot be bound
// fails, and the server goes on as before.
func TestApplyBindFailureKeepsRunning(t *testing.T) {
	s := startServer(t, testConfig())
	addr := s.Addr()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	next := testConfig()
	next.Listen = busy.Addr().String()
	next.DestinationDomains = []string{"other.test"}
	err = s.Apply(t.Context(), next)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Apply on a busy address: %v, want EADDRINUSE", err)
	}
	if s.Addr().String() != addr.String() {
		t.Errorf("Addr %v after the failed Apply, want %v", s.Addr(), addr)
	}
	c := hello(t, addr)
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ") // the previous domains
	c.quit()
}

// TestApplyOverlappingAddress moves the listener to an address that the
// kernel sees as the one held (the IPv4-mapped form of the same address
// and port): the old one is released first.
func TestApplyOverlappingAddress(t *testing.T) {
	s := startServer(t, testConfig())
	port := s.Addr().(*net.TCPAddr).Port
	next := testConfig()
	next.Listen = net.JoinHostPort("::ffff:127.0.0.1", strconv.Itoa(port))
	if err := s.Apply(t.Context(), next); err != nil {
		t.Skipf("this kernel does not take the mapped address: %v", err)
	}
	hello(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}).quit()
}

// TestApplyBeforeRun: a configuration applied before Run binds the
// listener at once; the connections made meanwhile are served once Run
// starts.
func TestApplyBeforeRun(t *testing.T) {
	s := New(Options{Spool: &fakeSpool{}, Now: func() time.Time { return testNow }})
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	runServer(t, s)
	c.expect("220 ")
	c.cmd("EHLO client.test", "250")
	c.quit()
}

// TestStopWaitsForSessions: when Run's context ends, a session open then
// finishes its message before Run returns, and nothing new is accepted.
func TestStopWaitsForSessions(t *testing.T) {
	sp := &fakeSpool{}
	s := New(Options{Spool: sp, Now: func() time.Time { return testNow }})
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatal(err)
	}
	cancel, done := goRun(s)
	defer cancel()
	addr := s.Addr()
	c := hello(t, addr)
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")

	cancel()
	c.cmd("DATA", "354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("250 2.0.0 ")
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a session was open", err)
	default:
	}
	c.quit()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := s.closedAtStop(); n != 0 {
		t.Errorf("Run closed %d connections, want none", n)
	}
	if n := len(sp.messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	expectNotListening(t, s, addr)
}

// TestStopClosesSessionsAfterGrace: a session still open when the stop
// grace runs out is closed, and the server takes no more configurations.
func TestStopClosesSessionsAfterGrace(t *testing.T) {
	s := New(Options{Spool: &fakeSpool{}, Now: func() time.Time { return testNow }, StopGrace: time.Nanosecond})
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatal(err)
	}
	cancel, done := goRun(s)
	defer cancel()
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")

	// A Run whose grace ends first closes the open session.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := s.closedAtStop(); n != 1 {
		t.Errorf("Run closed %d connections at the end of its grace, want 1", n)
	}
	c.expectClosed()
	if err := s.Apply(t.Context(), testConfig()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Apply after Run: %v, want ErrServerClosed", err)
	}
	if err := s.Run(t.Context()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Run again: %v, want ErrServerClosed", err)
	}
}
