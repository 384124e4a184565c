package smtpd

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/sensor/spool"
)

// The sensor's spool plugs in as it is.
var _ Spool = (*spool.Spool)(nil)

// TestSpoolUnhealthy: while Spool.Check fails the server greets with 421
// (a sending MTA then tries the next address of the cluster's name), and
// answers MAIL with 452 or 451 if the spool fails during a session.
func TestSpoolUnhealthy(t *testing.T) {
	s := startServer(t, testConfig())
	open := hello(t, s.Addr())

	s.spool.setCheck(fmt.Errorf("spool holds 10 of 10 messages: %w", spool.ErrFull))
	c := dial(t, s.Addr())
	c.expect("421 4.3.2 ")
	c.expectClosed()
	if got := s.Stats().Rejected["spool_unavailable"]; got != 1 {
		t.Errorf("spool_unavailable counter %d, want 1", got)
	}
	open.cmd("MAIL FROM:<alice@sender.test>", "452 4.3.1 ")
	s.spool.setCheck(errors.New("write: input/output error"))
	open.cmd("MAIL FROM:<alice@sender.test>", "451 4.3.0 ")

	s.spool.setCheck(nil)
	open.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	hello(t, s.Addr()).quit()
}

// TestSpoolPutFails: 250 only when Put returned nil.
func TestSpoolPutFails(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("spool holds 10 of 10 bytes: %w", spool.ErrFull), "452 4.3.1 "},
		{fmt.Errorf("3 bytes free: %w", spool.ErrLowDisk), "452 4.3.1 "},
		{errors.New("fsync: input/output error"), "451 4.3.0 "},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			s := startServer(t, testConfig())
			s.spool.setPut(tt.err)
			c := hello(t, s.Addr())
			c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
			c.cmd("RCPT TO:<bob@example.com>", "250 ")
			c.cmd("DATA", "354 ")
			c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			c.expect(tt.want)
			// BDAT too.
			c.send("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.com>\r\nBDAT 6 LAST\r\nbody\r\n")
			c.expect("250 ")
			c.expect("250 ")
			c.expect(tt.want)
			c.quit()
			if st := s.Stats(); st.Accepted != 0 {
				t.Errorf("%d messages counted as accepted, want 0", st.Accepted)
			}
		})
	}
}

// TestSpoolPutPanics: a panic while a DATA body is spooled, which conn
// runs outside go-smtp's recovery, gets go-smtp's answer to a panic, 421
// and the end of the session, and the server goes on.
func TestSpoolPutPanics(t *testing.T) {
	s := startServer(t, testConfig())
	s.spool.setPut(errPanic)
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("421 4.0.0 ")
	c.expectClosed()
	s.spool.setPut(nil)
	c = hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("250 ")
	c.quit()
}

// TestRealSpool delivers through the sensor's spool: the reply carries
// the spool's id, and the message is there with its envelope.
func TestRealSpool(t *testing.T) {
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	s := startServer(t, testConfig(), func(s *Server) { s.opts.Spool = sp })
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: real\r\n\r\nbody\r\n.\r\n")
	reply := c.expect("250 2.0.0 OK: queued as ")
	c.quit()
	id := strings.TrimPrefix(reply, "250 2.0.0 OK: queued as ")
	m, err := sp.Get(id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	if got := m.Meta.Envelope.GetRcptTo(); len(got) != 1 || got[0] != "bob@example.com" {
		t.Errorf("rcpt_to %q", got)
	}
	r, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "Received: from client.test ([127.0.0.1])\r\n") || !strings.HasSuffix(string(b), "\r\nSubject: real\r\n\r\nbody\r\n") {
		t.Errorf("spooled message %q", b)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Spool: &fakeSpool{}, Registerer: reg})
	runServer(t, s)
	if err := s.Apply(t.Context(), testConfig()); err != nil {
		t.Fatal(err)
	}
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	c.cmd("RCPT TO:<eve@other.test>", "550 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("250 ")
	c.quit()

	got := gather(t, reg, "monitor")
	want := map[string]float64{
		"osprey_smtp_connections_total":                                1,
		"osprey_smtp_sessions_active":                                  0,
		"osprey_smtp_messages_accepted_total":                          1,
		"osprey_smtp_rejections_total{recipient_refused}":              1,
		"osprey_smtp_rejections_total{bare_newline}":                   0,
		"osprey_smtp_rejections_total{tls_invalid_client_certificate}": 0,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["osprey_smtp_accepted_bytes_total"] == 0 {
		t.Error("osprey_smtp_accepted_bytes_total = 0")
	}
}
