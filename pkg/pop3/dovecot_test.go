package pop3_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	anyCert        = ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY
	selfSignedCert = ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED
	trustedCert    = ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY
)

// certs are a self-signed serving certificate and a test CA with a
// certificate it signed, made once for the package's tests.
type certs struct {
	selfCert, selfKey []byte
	caPEM             []byte
	caCert, caKey     []byte // leaf + CA chain, for "localhost" and 127.0.0.1
}

var (
	certsOnce sync.Once
	testCerts certs
)

func getCerts(t *testing.T) certs {
	t.Helper()
	certsOnce.Do(func() {
		var err error
		testCerts.selfCert, testCerts.selfKey, err = pki.SelfSigned("mail.self.test", []string{"localhost", "127.0.0.1"}, 24*time.Hour)
		if err != nil {
			panic(err)
		}
		ca, err := pki.NewCA("Osprey test mail CA", 24*time.Hour)
		if err != nil {
			panic(err)
		}
		key, err := pki.GenerateKey()
		if err != nil {
			panic(err)
		}
		leaf, err := ca.SignServer(key.Public(), []string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
		if err != nil {
			panic(err)
		}
		kp, err := pki.MarshalKeyPEM(key)
		if err != nil {
			panic(err)
		}
		testCerts.caPEM = ca.CertPEM()
		testCerts.caCert = append(pemCert(leaf), testCerts.caPEM...)
		testCerts.caKey = kp
	})
	return testCerts
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// startDovecot starts a Dovecot with user alice (password "secret") and a
// certificate: self-signed, or signed by the test CA.
func startDovecot(t *testing.T, caSigned bool) *pop3test.Dovecot {
	t.Helper()
	pop3test.Require(t)
	c := getCerts(t)
	opts := pop3test.DovecotOptions{Users: map[string]string{"alice": "secret"}, CertPEM: c.selfCert, KeyPEM: c.selfKey}
	if caSigned {
		opts.CertPEM, opts.KeyPEM = c.caCert, c.caKey
	}
	return pop3test.StartDovecot(t, opts)
}

func message(i int) []byte {
	return fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: alice@example.com\r\nSubject: test %d\r\n\r\nHello %d.\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n", i, i, i)
}

// TestDovecotSession runs a whole session over each way to connect:
// capabilities, login, STAT, LIST, UIDL, RETR with dot-unstuffing, DELE,
// and QUIT committing the deletion.
func TestDovecotSession(t *testing.T) {
	d := startDovecot(t, false)
	tests := []struct {
		name string
		opts pop3.Options
	}{
		{"plain", pop3.Options{Addr: d.PlainAddr}},
		{"stls", pop3.Options{Addr: d.PlainAddr, TLS: pop3.StartTLS, TLSPolicy: pop3.TLSPolicy{Certificate: selfSignedCert}}},
		{"implicit", pop3.Options{Addr: d.TLSAddr, TLS: pop3.ImplicitTLS, TLSPolicy: pop3.TLSPolicy{Certificate: selfSignedCert}}},
		{"implicit cipher suite", pop3.Options{Addr: d.TLSAddr, TLS: pop3.ImplicitTLS, TLSPolicy: pop3.TLSPolicy{Certificate: anyCert, CipherSuite: "ECDHE+AESGCM"}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := message(i)
			d.AddMessage("alice", want)
			ctx := t.Context()
			c, err := pop3.Dial(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.TLS() != nil; got != (tt.opts.TLS != pop3.NoTLS) {
				t.Errorf("TLS() != nil is %t, want %t", got, !got)
			}
			if !c.Capabilities().Has("UIDL") {
				t.Errorf("capabilities %v lack UIDL", c.Capabilities())
			}
			if c.Capabilities().Has("STLS") && tt.opts.TLS != pop3.NoTLS {
				t.Errorf("STLS offered over TLS: %v", c.Capabilities())
			}
			if err := c.Login(ctx, "alice", "secret"); err != nil {
				t.Fatal(err)
			}
			n, size, err := c.Stat(ctx)
			if err != nil || n != 1 || size != int64(len(want)) {
				t.Fatalf("Stat = %d, %d, %v, want 1, %d", n, size, err, len(want))
			}
			list, err := c.List(ctx)
			if err != nil || len(list) != 1 || list[0].Size != int64(len(want)) {
				t.Fatalf("List = %v, %v", list, err)
			}
			uidl, err := c.UIDL(ctx)
			if err != nil || len(uidl) != 1 || uidl[0].UID == "" {
				t.Fatalf("UIDL = %v, %v", uidl, err)
			}
			r, err := c.Retr(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("RETR got %q, want %q", got, want)
			}
			if err := c.Dele(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(ctx); err != nil {
				t.Fatal(err)
			}
			if n := d.Messages("alice"); n != 0 {
				t.Errorf("%d messages left after DELE and QUIT, want 0", n)
			}
		})
	}
}

// TestDovecotCertificatePolicy connects with implicit TLS and STLS to a
// server with a self-signed certificate and to one with a certificate of a
// CA the client trusts through ca_pem.
func TestDovecotCertificatePolicy(t *testing.T) {
	self := startDovecot(t, false)
	signed := startDovecot(t, true)
	c := getCerts(t)
	tests := []struct {
		name      string
		d         *pop3test.Dovecot
		policy    pop3.TLSPolicy
		wantTrust pop3.Trust
		wantErr   string // in the error; "" for success
	}{
		{"self-signed accept_any", self, pop3.TLSPolicy{Certificate: anyCert}, pop3.TrustNone, ""},
		{"self-signed accept_self_signed", self, pop3.TLSPolicy{Certificate: selfSignedCert}, pop3.TrustSelfSigned, ""},
		{"self-signed trusted_only", self, pop3.TLSPolicy{Certificate: trustedCert}, 0, "certificate signed by unknown authority"},
		{"self-signed unspecified is trusted_only", self, pop3.TLSPolicy{}, 0, "certificate signed by unknown authority"},
		{"CA trusted_only with ca_pem", signed, pop3.TLSPolicy{Certificate: trustedCert, CAPEM: c.caPEM}, pop3.TrustVerified, ""},
		{"CA trusted_only by name", signed, pop3.TLSPolicy{Certificate: trustedCert, CAPEM: c.caPEM, ServerName: "localhost"}, pop3.TrustVerified, ""},
		{"CA trusted_only without ca_pem", signed, pop3.TLSPolicy{Certificate: trustedCert}, 0, "certificate signed by unknown authority"},
		{"CA trusted_only wrong host name", signed, pop3.TLSPolicy{Certificate: trustedCert, CAPEM: c.caPEM, ServerName: "mail.example.com"}, 0, "not mail.example.com"},
		{"CA accept_self_signed with ca_pem", signed, pop3.TLSPolicy{Certificate: selfSignedCert, CAPEM: c.caPEM}, pop3.TrustVerified, ""},
		{"CA accept_self_signed without ca_pem", signed, pop3.TLSPolicy{Certificate: selfSignedCert}, 0, "neither trusted"},
		{"CA accept_any", signed, pop3.TLSPolicy{Certificate: anyCert}, pop3.TrustNone, ""},
	}
	for _, tt := range tests {
		for _, mode := range []pop3.TLSMode{pop3.ImplicitTLS, pop3.StartTLS} {
			t.Run(tt.name+" "+mode.String(), func(t *testing.T) {
				addr := tt.d.TLSAddr
				if mode == pop3.StartTLS {
					addr = tt.d.PlainAddr
				}
				cl, err := pop3.Dial(t.Context(), pop3.Options{Addr: addr, TLS: mode, TLSPolicy: tt.policy})
				if tt.wantErr != "" {
					if err == nil {
						cl.Close()
						t.Fatalf("Dial succeeded, want an error with %q", tt.wantErr)
					}
					if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "tls") {
						t.Fatalf("Dial error %q, want one about TLS with %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				st := cl.TLS()
				if st == nil || st.Trust != tt.wantTrust {
					t.Fatalf("TLS() = %+v, want trust %v", st, tt.wantTrust)
				}
				if err := cl.Login(t.Context(), "alice", "secret"); err != nil {
					t.Fatal(err)
				}
				if err := cl.Quit(t.Context()); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestDovecotAuth checks each way to log in, and a wrong password.
func TestDovecotAuth(t *testing.T) {
	d := startDovecot(t, false)
	ctx := t.Context()
	dial := func(t *testing.T) *pop3.Client {
		c, err := pop3.Dial(ctx, pop3.Options{Addr: d.PlainAddr, TLS: pop3.StartTLS, TLSPolicy: pop3.TLSPolicy{Certificate: selfSignedCert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("user pass", func(t *testing.T) {
		if err := dial(t).UserPass(ctx, "alice", "secret"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("auth plain", func(t *testing.T) {
		if err := dial(t).AuthPlain(ctx, "alice", "secret"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("apop not offered", func(t *testing.T) {
		if err := dial(t).APOP(ctx, "alice", "secret"); !errors.Is(err, pop3.ErrNotOffered) {
			t.Fatalf("APOP error %v, want %v", err, pop3.ErrNotOffered)
		}
	})
	for _, method := range []string{"login", "user pass", "auth plain"} {
		t.Run("wrong password "+method, func(t *testing.T) {
			c := dial(t)
			var err error
			switch method {
			case "login":
				err = c.Login(ctx, "alice", "hunter2-wrong")
			case "user pass":
				err = c.UserPass(ctx, "alice", "hunter2-wrong")
			case "auth plain":
				err = c.AuthPlain(ctx, "alice", "hunter2-wrong")
			}
			if !errors.Is(err, pop3.ErrAuthFailed) {
				t.Fatalf("error %v, want %v", err, pop3.ErrAuthFailed)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
			// A refused login leaves the connection usable.
			if err := c.Login(ctx, "alice", "secret"); err != nil {
				t.Fatalf("login after a refusal: %v", err)
			}
		})
	}
}
