package smtpd

import (
	"context"
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
	if s.Addr() != nil {
		t.Errorf("Addr %v after disabling, want nil", s.Addr())
	}
	if nc, err := net.Dial("tcp", addr.String()); err == nil {
		nc.Close()
		t.Errorf("connected to %v after disabling", addr)
	}

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

func TestShutdownWaitsForSessions(t *testing.T) {
	s := New(Options{Spool: &fakeSpool{}, Now: func() time.Time { return testNow }})
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatal(err)
	}
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")

	// A Shutdown whose context ends first closes the open session.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Error("Shutdown with an open session and a done context: got nil")
	}
	c.expectClosed()
	if err := s.Apply(t.Context(), testConfig()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Apply after Shutdown: %v, want ErrServerClosed", err)
	}
}
