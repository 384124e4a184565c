package smtpd

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// requirePeer fails the test when a peer is missing and OSPREY_REQUIRE_PEERS
// is 1 (as in CI, where scripts/install-peers.sh installs them), and skips
// it otherwise.
func requirePeer(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// swaks runs swaks (the apt package swaks) against addr.
func swaks(t *testing.T, addr net.Addr, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("swaks")
	if err != nil {
		requirePeer(t, "swaks is not installed (apt package swaks): %v", err)
	}
	ta := addr.(*net.TCPAddr)
	args = append([]string{
		"--server", ta.IP.String(), "--port", strconv.Itoa(ta.Port),
		"--ehlo", "swaks.client.test", "--timeout", "20",
	}, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	return string(out), err
}

// requireSwaksTLS checks that swaks can do STARTTLS, which needs the Perl
// module Net::SSLeay (apt package libnet-ssleay-perl, a recommendation of
// swaks that --no-install-recommends leaves out).
func requireSwaksTLS(t *testing.T) {
	t.Helper()
	path, err := exec.LookPath("swaks")
	if err != nil {
		requirePeer(t, "swaks is not installed (apt package swaks): %v", err)
	}
	out, _ := exec.CommandContext(t.Context(), path, "--support").CombinedOutput()
	if !strings.Contains(string(out), "=== TLS supported") {
		requirePeer(t, "swaks cannot do TLS here (apt package libnet-ssleay-perl):\n%s", out)
	}
}

func TestSwaks(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		s := startServer(t, testConfig())
		out, err := swaks(t, s.Addr(), "--from", "alice@sender.test", "--to", "bob@example.com",
			"--header", "Subject: from swaks", "--body", "hello from swaks")
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		for _, want := range []string{"<-  250-sensor.test\n", "<-  250 2.1.0 Sender OK\n", "<-  250 2.1.5 Recipient OK\n", "<-  250 2.0.0 OK: queued as msg1\n", "<-  221 2.0.0 Bye\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		msgs := s.spool.messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		body := bodyOf(t, msgs[0])
		if !strings.Contains(body, "Subject: from swaks\r\n") || !strings.Contains(body, "\r\n\r\nhello from swaks\r\n") {
			t.Errorf("stored body %q", body)
		}
		if got := msgs[0].meta.Envelope.GetHelo(); got != "swaks.client.test" {
			t.Errorf("helo %q", got)
		}
	})

	t.Run("STARTTLS", func(t *testing.T) {
		requireSwaksTLS(t)
		cfg := testConfig()
		cfg.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}
		s := startServer(t, cfg)
		out, err := swaks(t, s.Addr(), "--tls", "--from", "alice@sender.test", "--to", "bob@example.com", "--body", "over TLS")
		if err != nil {
			t.Fatalf("swaks --tls: %v\n%s", err, out)
		}
		msgs := s.spool.messages()
		if len(msgs) != 1 || !msgs[0].meta.Envelope.GetTls() {
			t.Fatalf("stored %d messages (want 1, over TLS):\n%s", len(msgs), out)
		}
		if !strings.Contains(msgs[0].body, " with ESMTPS id ") {
			t.Errorf("Received header without ESMTPS: %q", msgs[0].body)
		}
	})

	t.Run("TLS required, not started", func(t *testing.T) {
		cfg := testConfig()
		cfg.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}
		s := startServer(t, cfg)
		out, err := swaks(t, s.Addr(), "--from", "alice@sender.test", "--to", "bob@example.com")
		if err == nil || !strings.Contains(out, "<** 530 5.7.0 ") {
			t.Errorf("swaks without STARTTLS: %v, want 530 in:\n%s", err, out)
		}
	})

	t.Run("size limit", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxMessageSize = &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_KB}
		s := startServer(t, cfg)
		out, err := swaks(t, s.Addr(), "--from", "alice@sender.test", "--to", "bob@example.com",
			"--body", strings.Repeat("0123456789 123456789 123456789 123456789 123456789 123456789\n", 20))
		if err == nil || !strings.Contains(out, "<** 552 5.3.4 ") {
			t.Errorf("swaks with 1.2 KB: %v, want 552 in:\n%s", err, out)
		}
		if n := len(s.spool.messages()); n != 0 {
			t.Errorf("%d messages stored, want none", n)
		}
	})

	t.Run("refused recipient", func(t *testing.T) {
		s := startServer(t, testConfig())
		out, err := swaks(t, s.Addr(), "--from", "alice@sender.test", "--to", "eve@other.test")
		if err == nil || !strings.Contains(out, "<** 550 5.7.1 ") {
			t.Errorf("swaks to another domain: %v, want 550 in:\n%s", err, out)
		}
	})

	t.Run("open relay attempt", func(t *testing.T) {
		s := startServer(t, testConfig())
		out, err := swaks(t, s.Addr(), "--from", "alice@sender.test", "--to", "eve%other.test@example.com")
		if err == nil || !strings.Contains(out, "<** 550 5.7.1 ") {
			t.Errorf("swaks with the percent hack: %v, want 550 in:\n%s", err, out)
		}
	})
}
