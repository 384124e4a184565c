package smtpauth

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/postfix"
	"github.com/ospreysec/osprey/internal/slapdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// submissionServer is a real Postfix that takes AUTH as a submission
// server does, checked by Dovecot's SASL: on STARTTLS (Addr), implicit TLS
// (TLSAddr), and without any TLS (PlainAddr, where AUTH is never offered).
type submissionServer struct {
	Addr, TLSAddr, PlainAddr string
	CAPEM                    string
	pf                       *postfix.Instance
	dir                      string
	settings                 map[string]string
	services                 []string
}

func startSubmissionServer(t *testing.T) *submissionServer {
	t.Helper()
	if _, err := exec.LookPath("postfix"); err != nil {
		requirePeer(t, "postfix is not installed: %v", err)
	}
	if os.Geteuid() != 0 {
		requirePeer(t, "a private Postfix instance needs root")
	}
	caPEM, certPEM, keyPEM := slapdtest.Certificate(t, "127.0.0.1", "mail.test")
	d := pop3test.StartDovecot(t, pop3test.DovecotOptions{Users: users, CertPEM: certPEM, KeyPEM: keyPEM, SASL: true})
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &submissionServer{Addr: freeAddr(t), TLSAddr: freeAddr(t), PlainAddr: freeAddr(t), CAPEM: string(caPEM), dir: filepath.Join(dir, "postfix")}
	s.settings = postfix.SASLSettings(d.AuthSocket, cert, key)
	s.services = []string{
		postfix.TLSManager,
		postfix.Service(s.TLSAddr, "smtpd_tls_wrappermode=yes"),
		postfix.Service(s.PlainAddr, "smtpd_tls_security_level=none"),
	}
	s.Start(t)
	return s
}

// Start starts Postfix (again, after Stop).
func (s *submissionServer) Start(t *testing.T) {
	t.Helper()
	pf, err := postfix.StartWith(s.dir, s.Addr, s.settings, s.services...)
	if err != nil {
		t.Fatalf("postfix: %v", err)
	}
	s.pf = pf
	t.Cleanup(s.Stop)
}

func (s *submissionServer) Stop() {
	if s.pf != nil {
		s.pf.Stop()
		s.pf = nil
	}
}

func forwarding(a *ospreyv1.SmtpForwardAuth) *ospreyv1.SubmissionSettings {
	return &ospreyv1.SubmissionSettings{Enabled: true, Source: ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD, SmtpForward: a, DisableCache: true}
}

// TestSMTPForward checks credentials against a real Postfix with Dovecot's
// SASL: good and bad ones over STARTTLS and implicit TLS; and refuses to
// send any where TLS cannot be had or verified.
func TestSMTPForward(t *testing.T) {
	srv := startSubmissionServer(t)
	for _, tt := range []struct {
		name string
		fwd  *ospreyv1.SmtpForwardAuth
	}{
		{"STARTTLS", &ospreyv1.SmtpForwardAuth{Address: srv.Addr, CaPem: srv.CAPEM}},
		{"implicit TLS", &ospreyv1.SmtpForwardAuth{Address: srv.TLSAddr, ImplicitTls: true, CaPem: srv.CAPEM}},
		{"server name", &ospreyv1.SmtpForwardAuth{Address: srv.Addr, CaPem: srv.CAPEM, ServerName: "mail.test"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.fwd.TimeoutMs = 20000
			a := newAuth(t, forwarding(tt.fwd), Options{Hostname: "gw.test"})
			check(t, a, client, basicAttempts)
			if p := a.Problem(); p != "" {
				t.Errorf("Problem() = %q, want none", p)
			}
			if t.Failed() {
				t.Logf("postfix:\n%s", srv.pf.Log())
			}
		})
	}

	otherCA, _, _ := slapdtest.Certificate(t, "127.0.0.1")
	for _, tt := range []struct {
		name string
		fwd  *ospreyv1.SmtpForwardAuth
		want string
	}{
		{"no STARTTLS offered", &ospreyv1.SmtpForwardAuth{Address: srv.PlainAddr, CaPem: srv.CAPEM}, "STARTTLS"},
		{"another CA", &ospreyv1.SmtpForwardAuth{Address: srv.Addr, CaPem: string(otherCA)}, "trusted CA"},
		{"another name", &ospreyv1.SmtpForwardAuth{Address: srv.Addr, CaPem: srv.CAPEM, ServerName: "other.test"}, "server_name"},
		{"implicit TLS, another CA", &ospreyv1.SmtpForwardAuth{Address: srv.TLSAddr, ImplicitTls: true, CaPem: string(otherCA)}, "trusted CA"},
		{"STARTTLS on the implicit TLS port", &ospreyv1.SmtpForwardAuth{Address: srv.TLSAddr, CaPem: srv.CAPEM, TimeoutMs: 500}, "deadline"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fwd.TimeoutMs == 0 {
				tt.fwd.TimeoutMs = 20000
			}
			a := newAuth(t, forwarding(tt.fwd), Options{})
			err := a.Authenticate(t.Context(), client, "alice", "alice-pw")
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Authenticate() = %v, want ErrUnavailable naming %q", err, tt.want)
			}
			if p := a.Problem(); !strings.Contains(p, "SMTP server "+tt.fwd.Address) {
				t.Errorf("Problem() = %q, want a warning naming the server", p)
			}
		})
	}
	if log := srv.pf.Log(); strings.Contains(log, "alice-pw") {
		t.Errorf("Postfix logged a password:\n%s", log)
	}
}

// TestSMTPForwardDown: a server that stops answering makes checks a
// temporary failure and a status problem, until it is back.
func TestSMTPForwardDown(t *testing.T) {
	srv := startSubmissionServer(t)
	a := newAuth(t, forwarding(&ospreyv1.SmtpForwardAuth{Address: srv.Addr, CaPem: srv.CAPEM, TimeoutMs: 20000}), Options{ProbeInterval: 50 * time.Millisecond})
	ctx := t.Context()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	t.Cleanup(func() { <-ran })
	check(t, a, client, []attempt{{"up", "alice", "alice-pw", "ok"}})
	srv.Stop()
	check(t, a, client, []attempt{{"down", "alice", "alice-pw", "unavailable"}})
	if p := a.Problem(); !strings.Contains(p, "SMTP server "+srv.Addr) {
		t.Errorf("Problem() = %q, want a warning naming the server", p)
	}
	srv.Start(t)
	testwait.For(t, "the probes to find the server back", func() bool { return a.Problem() == "" })
	check(t, a, client, []attempt{{"back", "alice", "alice-pw", "ok"}})
}

func requirePeer(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(slapdtest.RequirePeersEnv) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
