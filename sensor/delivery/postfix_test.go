package delivery

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/internal/postfix"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
)

// TestPostfixNextHop delivers to a real Postfix smtpd, the mail server a
// gateway sits in front of: recipients it refuses in either class next to
// one it takes, a message it refuses after DATA, and STARTTLS: used
// unverified by default, verified against the MX name for a RequireTLS
// domain, refused (never plaintext) when the MX name does not match the
// certificate, and refused when the next hop does not offer it.
//
// Postfix rather than go-smtp's server is the TLS peer because it is what
// gateways deliver to: its OpenSSL handshake, its reply codes and its
// access maps are the behaviour to meet.
func TestPostfixNextHop(t *testing.T) {
	if _, err := exec.LookPath("postfix"); err != nil {
		requirePeer(t, "postfix is not installed: %v", err)
	}
	if os.Geteuid() != 0 {
		requirePeer(t, "a private Postfix instance needs root")
	}
	dir := t.TempDir()
	ca, cert := serverCert(t, "mx.tls.test")
	keyPEM, err := pki.MarshalKeyPEM(cert.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cert.pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})),
		"key.pem":  string(keyPEM),
		"rcpt":     "soft@mixed.test 450 4.2.0 Mailbox busy\nhard@mixed.test 550 5.1.1 No such user here\n",
		"sender":   "refused@origin.test 554 5.7.1 Rejected after the message\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix listens on 127.0.0.1 (it listens only on addresses of an
	// interface), a sink without STARTTLS on 127.0.0.2.
	port, ln := freePort(t)
	ln.Close()
	plain := startSink(t, "127.0.0.2", port)
	pf, err := postfix.StartWith(filepath.Join(dir, "postfix"), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), map[string]string{
		"smtpd_tls_security_level":       "may",
		"smtpd_tls_cert_file":            filepath.Join(dir, "cert.pem"),
		"smtpd_tls_key_file":             filepath.Join(dir, "key.pem"),
		"smtpd_tls_received_header":      "yes",
		"smtpd_tls_loglevel":             "1",
		"smtpd_recipient_restrictions":   "check_recipient_access texthash:" + filepath.Join(dir, "rcpt") + ", permit_mynetworks, reject",
		"smtpd_end_of_data_restrictions": "check_sender_access texthash:" + filepath.Join(dir, "sender"),
		"default_transport":              "discard:delivered",
		"relay_transport":                "discard:delivered",
	}, postfix.TLSManager)
	if err != nil {
		t.Fatalf("postfix: %v", err)
	}
	t.Cleanup(pf.Stop)

	res := startDNS(t, nil,
		"mixed.test. 60 IN MX 10 mx.tls.test.",
		"secure.test. 60 IN MX 10 mx.tls.test.",
		"wrong.test. 60 IN MX 10 mx.wrong.test.",
		"plain.test. 60 IN MX 10 mx.plain.test.",
		"mx.tls.test. 60 IN A 127.0.0.1",
		"mx.wrong.test. 60 IN A 127.0.0.1",
		"mx.plain.test. 60 IN A 127.0.0.2",
	)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	c := runClient(t, Options{Resolver: res}, Config{
		HeloName:   "gw.osprey.test",
		Port:       uint16(port),
		RequireTLS: []string{"secure.test", "wrong.test", "plain.test"},
		RootCAs:    roots,
	})

	t.Run("mixed recipients, opportunistic TLS", func(t *testing.T) {
		r := c.Deliver(t.Context(), request("mixed", "ok@mixed.test", "soft@mixed.test", "hard@mixed.test"))
		want := []RcptResult{
			{Rcpt: "ok@mixed.test", Code: 250, Enhanced: "2.0.0"},
			{Rcpt: "soft@mixed.test", Code: 450, Enhanced: "4.2.0", Text: "<soft@mixed.test>: Recipient address rejected: Mailbox busy"},
			{Rcpt: "hard@mixed.test", Code: 550, Enhanced: "5.1.1", Text: "<hard@mixed.test>: Recipient address rejected: No such user here"},
		}
		want[0].Text = r.Rcpts[0].Text // "Ok: queued as <id>"
		if !strings.HasPrefix(want[0].Text, "Ok: queued as ") {
			t.Errorf("text %q, want Ok: queued as ...", want[0].Text)
		}
		for i := range want {
			if r.Rcpts[i] != want[i] {
				t.Errorf("got %v, want %v", r.Rcpts[i], want[i])
			}
		}
		if !strings.HasPrefix(r.TLS, "TLS 1.") || r.HostName() != "mx.tls.test" {
			t.Errorf("TLS %q from %q, want a TLS session with mx.tls.test", r.TLS, r.Host)
		}
		testwait.For(t, "Postfix to deliver ok@mixed.test", func() bool {
			return strings.Contains(pf.Log(), "to=<ok@mixed.test>, relay=none") && strings.Contains(pf.Log(), "status=sent (delivered)")
		})
	})

	t.Run("refused after the message", func(t *testing.T) {
		req := request("refused", "a@mixed.test", "b@mixed.test")
		req.From = "refused@origin.test"
		r := c.Deliver(t.Context(), req)
		for _, got := range r.Rcpts {
			if got.Code != 554 || got.Enhanced != "5.7.1" || !strings.Contains(got.Text, "Rejected after the message") {
				t.Errorf("got %v, want 554 5.7.1 Rejected after the message", got)
			}
		}
	})

	t.Run("required TLS, verified", func(t *testing.T) {
		before := strings.Count(pf.Log(), "TLS connection established from")
		for i := range 3 {
			r := c.Deliver(t.Context(), request("secure", "a@secure.test"))
			if !r.Rcpts[0].OK() || !strings.HasPrefix(r.TLS, "TLS 1.") {
				t.Fatalf("message %d: %v over %q, want delivered over TLS", i, r.Rcpts[0], r.TLS)
			}
		}
		testwait.For(t, "Postfix to deliver the three messages", func() bool {
			return strings.Count(pf.Log(), "to=<a@secure.test>, relay=none") == 3
		})
		// The three went over one verified session.
		if n := strings.Count(pf.Log(), "TLS connection established from") - before; n != 1 {
			t.Errorf("%d new TLS sessions for 3 messages, want 1", n)
		}
	})

	t.Run("required TLS, wrong name", func(t *testing.T) {
		r := c.Deliver(t.Context(), request("wrong", "a@wrong.test"))
		got := r.Rcpts[0]
		if got.Code != 451 || got.Enhanced != "4.7.5" || !strings.Contains(got.Text, `"mx.wrong.test"`) {
			t.Errorf("got %v, want 451 4.7.5 naming mx.wrong.test\n%s", got, pf.Log())
		}
		if strings.Contains(pf.Log(), "a@wrong.test") {
			t.Errorf("the message went to Postfix without verified TLS:\n%s", pf.Log())
		}
	})

	t.Run("required TLS, not offered", func(t *testing.T) {
		r := c.Deliver(t.Context(), request("plain", "a@plain.test"))
		if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.7.4" {
			t.Errorf("got %v, want 451 4.7.4", got)
		}
		if got := plain.commands("MAIL"); len(got) != 0 {
			t.Errorf("the sink without STARTTLS got %q", got)
		}
	})
}
