package smtpd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func tlsConfig(mode ospreyv1.TlsMode, clientCert ospreyv1.ClientCertMode, caPEM string) *ospreyv1.SmtpIntegration {
	cfg := testConfig()
	cfg.Tls = &ospreyv1.SmtpTls{Mode: mode, ClientCert: clientCert, ClientCaPem: caPEM}
	return cfg
}

var insecure = &tls.Config{InsecureSkipVerify: true}

func TestSTARTTLS(t *testing.T) {
	s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
	c := hello(t, s.Addr())
	tc := c.startTLS(insecure)
	caps := capabilities(tc.cmd("EHLO client.test", "250"))
	for _, cp := range caps {
		if cp == "STARTTLS" {
			t.Errorf("STARTTLS offered again over TLS: %q", caps)
		}
	}
	tc.cmd("STARTTLS", "503 5.5.1 ")
	tc.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	tc.cmd("RCPT TO:<bob@example.com>", "250 ")
	tc.cmd("DATA", "354 ")
	tc.send("Subject: tls\r\n\r\nhi\r\n.\r\n")
	tc.expect("250 2.0.0 ")
	tc.cmd("QUIT", "221 ")

	msgs := s.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if env := msgs[0].meta.Envelope; !env.GetTls() || env.GetTlsVersion() != "TLS 1.3" || !strings.HasPrefix(env.GetTlsCipher(), "TLS_") {
		t.Errorf("envelope tls %v, version %q, cipher %q; want TLS 1.3 and its cipher", env.GetTls(), env.GetTlsVersion(), env.GetTlsCipher())
	}
	if !strings.Contains(msgs[0].body, " with ESMTPS id ") || !strings.Contains(msgs[0].body, "\r\n\t(using TLS1.3 with cipher TLS_") {
		t.Errorf("Received header without TLS: %q", msgs[0].body)
	}
}

func TestSTARTTLSConfiguredCertificate(t *testing.T) {
	certPEM, keyPEM, err := pki.SelfSigned("mx.example.com", []string{"mx.example.com"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, "")
	cfg.Tls.CertPem, cfg.Tls.KeyPem = string(certPEM), string(keyPEM)
	s := startServer(t, cfg)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	c := hello(t, s.Addr())
	tc := c.startTLS(&tls.Config{RootCAs: roots, ServerName: "mx.example.com"})
	tc.cmd("EHLO client.test", "250")
}

func TestSTARTTLSRules(t *testing.T) {
	t.Run("required before mail commands", func(t *testing.T) {
		s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_REQUIRE, 0, ""))
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<alice@sender.test>", "530 5.7.0 ")
		c.cmd("RCPT TO:<bob@example.com>", "530 5.7.0 ")
		c.cmd("DATA", "530 5.7.0 ")
		c.cmd("VRFY bob", "530 5.7.0 ")
		c.send("BDAT 4 LAST\r\nNOOPNOOP\r\n") // the chunk is consumed
		c.expect("530 5.7.0 ")
		c.expect("250 ")
		c.cmd("NOOP", "250 ")
		tc := c.startTLS(insecure)
		tc.cmd("EHLO client.test", "250")
		tc.cmd("MAIL FROM:<alice@sender.test>", "250 ")
		if got := s.Stats().Rejected["tls_required"]; got != 5 {
			t.Errorf("tls_required counter %d, want 5", got)
		}
	})
	t.Run("greeting again after STARTTLS", func(t *testing.T) {
		s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
		c := hello(t, s.Addr())
		tc := c.startTLS(insecure)
		tc.cmd("MAIL FROM:<alice@sender.test>", "503 5.5.1 ")
		tc.cmd("HELO client.test", "250 ")
		tc.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	})
	t.Run("not inside a transaction", func(t *testing.T) {
		s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
		c := hello(t, s.Addr())
		c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
		c.cmd("STARTTLS", "503 5.5.1 ")
		c.cmd("RSET", "250 ")
		c.startTLS(insecure).cmd("EHLO client.test", "250")
	})
	t.Run("argument", func(t *testing.T) {
		s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
		c := hello(t, s.Addr())
		c.cmd("STARTTLS now", "501 5.5.4 ")
	})
}

// TestSTARTTLSInjection is the CVE-2011-0411 test: commands pipelined
// behind STARTTLS, in the same packet, are discarded rather than run
// inside the TLS session.
func TestSTARTTLSInjection(t *testing.T) {
	s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
	c := hello(t, s.Addr())
	c.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<bob@example.com>\r\n")
	tc := c.startTLSAfterReply(insecure)
	tc.cmd("EHLO client.test", "250")
	// Had the injected commands run, this would be a second MAIL (503),
	// and DATA would be accepted.
	tc.cmd("DATA", "503 5.5.1 ")
	tc.cmd("MAIL FROM:<alice@sender.test>", "250 ")
	if got := s.Stats().Rejected["starttls_pipelining"]; got != 1 {
		t.Errorf("starttls_pipelining counter %d, want 1", got)
	}
}

func TestTLSVersionsAndSuites(t *testing.T) {
	s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, 0, ""))
	tests := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"TLS 1.3", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, true},
		{"TLS 1.2 AEAD", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true},
		{"TLS 1.2 CBC", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
		{"TLS 1.1", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hello(t, s.Addr())
			c.send("STARTTLS\r\n")
			c.expect("220 ")
			tc, err := c.handshake(tt.cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("handshake: %v, want success %v", err, tt.ok)
			}
			if tc != nil {
				tc.cmd("EHLO client.test", "250")
			}
		})
	}
}

// testPKI is a client CA and certificates it issued.
type testPKI struct {
	caPEM             string
	valid, expired    tls.Certificate
	selfSigned, other tls.Certificate // other: from another CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	now := testNow // the server's clock in these tests
	ca, caKey := makeCert(t, nil, nil, "client CA", now.Add(-time.Hour), now.Add(time.Hour), true)
	otherCA, otherKey := makeCert(t, nil, nil, "other CA", now.Add(-time.Hour), now.Add(time.Hour), true)
	leaf := func(issuer *x509.Certificate, key *ecdsa.PrivateKey, from, to time.Time) tls.Certificate {
		c, k := makeCert(t, issuer, key, "mta.client.test", from, to, false)
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
	}
	self, selfKey := makeCert(t, nil, nil, "mta.client.test", now.Add(-time.Hour), now.Add(time.Hour), false)
	return &testPKI{
		caPEM:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})),
		valid:      leaf(ca, caKey, now.Add(-time.Hour), now.Add(time.Hour)),
		expired:    leaf(ca, caKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
		selfSigned: tls.Certificate{Certificate: [][]byte{self.Raw}, PrivateKey: selfKey},
		other:      leaf(otherCA, otherKey, now.Add(-time.Hour), now.Add(time.Hour)),
	}
}

func makeCert(t *testing.T, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey, cn string, from, to time.Time, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from,
		NotAfter:              to,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if issuer == nil {
		issuer, issuerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// syncBuffer is a log sink that tests read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestClientCertificates(t *testing.T) {
	p := newTestPKI(t)
	const (
		request = ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST
		require = ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE
	)
	tests := []struct {
		name    string
		mode    ospreyv1.ClientCertMode
		cert    *tls.Certificate
		ok      bool
		counter string // the counter that the refusal increments
	}{
		{"request, none", request, nil, true, ""},
		{"request, valid", request, &p.valid, true, ""},
		{"request, expired", request, &p.expired, false, "tls_invalid_client_certificate"},
		{"request, self-signed", request, &p.selfSigned, false, "tls_invalid_client_certificate"},
		{"request, other CA", request, &p.other, false, "tls_invalid_client_certificate"},
		{"require, none", require, nil, false, "tls_handshake_failed"},
		{"require, valid", require, &p.valid, true, ""},
		{"require, expired", require, &p.expired, false, "tls_invalid_client_certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			s := startServer(t, tlsConfig(ospreyv1.TlsMode_TLS_MODE_ACCEPT, tt.mode, p.caPEM), func(s *Server) {
				s.log = slog.New(slog.NewTextHandler(logs, nil)).With("component", "smtpd")
			})
			c := hello(t, s.Addr())
			c.send("STARTTLS\r\n")
			c.expect("220 ")
			cfg := &tls.Config{InsecureSkipVerify: true}
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{*tt.cert}
			}
			tc, err := c.handshake(cfg)
			if err == nil {
				// In TLS 1.3 the server judges the client's certificate
				// after the client's side of the handshake is done: the
				// refusal shows at the first read.
				tc.send("EHLO client.test\r\n")
				_, err = tc.readReply()
			}
			if tt.ok != (err == nil) {
				t.Fatalf("session over TLS: %v, want success %v", err, tt.ok)
			}
			if tt.counter == "" {
				return
			}
			// The server counts the refusal before it closes the
			// connection: wait for that.
			_, _ = io.Copy(io.Discard, c.conn)
			if got := s.Stats().Rejected[tt.counter]; got != 1 {
				t.Errorf("%s counter %d, want 1", tt.counter, got)
			}
			if tt.counter == "tls_invalid_client_certificate" && !strings.Contains(logs.String(), "reason=tls_invalid_client_certificate") {
				t.Errorf("no tls_invalid_client_certificate in the log:\n%s", logs)
			}
		})
	}
}
