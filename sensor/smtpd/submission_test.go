package smtpd

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/internal/slapdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpauth"
)

var submissionRole = Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND, Submission: true}

// submissionUsers are the directory's users.
var submissionUsers = map[string]string{"alice": "alice-pw", "bob": "bob pw é"}

// submissionConfig is gatewayConfig with the submission listener on
// loopback, TLS accepted (not required, so that what happens before
// STARTTLS shows), checked against the directory d by binding as the user.
func submissionConfig(d *slapdtest.Server) *ospreyv1.SmtpIntegration {
	cfg := gatewayConfig()
	cfg.Gateway.Submission = &ospreyv1.SubmissionSettings{
		Enabled:  true,
		Listener: &ospreyv1.GatewayListener{Listen: "127.0.0.1:0", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT}},
		Source:   ospreyv1.AuthSource_AUTH_SOURCE_LDAP,
		Ldap:     &ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 10000},
	}
	return cfg
}

// reasons counts the refusals by reason.
func (l *refusalLog) reasons() map[string]int {
	out := map[string]int{}
	for _, r := range l.all() {
		out[r.Reason]++
	}
	return out
}

type submissionSetup struct {
	*testServer
	dir      *slapdtest.Server
	auth     *smtpauth.Authenticator
	refusals *refusalLog
	reg      *prometheus.Registry
}

// startSubmission starts a directory, an Authenticator on it and a
// submission listener; edit changes the configuration first.
func startSubmission(t *testing.T, edit func(*ospreyv1.SmtpIntegration)) *submissionSetup {
	t.Helper()
	d := slapdtest.Start(t, slapdtest.Options{Users: submissionUsers})
	cfg := submissionConfig(d)
	if edit != nil {
		edit(cfg)
	}
	a := smtpauth.New(smtpauth.Options{Logger: testLogger(t)})
	if err := a.Apply(cfg.GetGateway().GetSubmission()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Apply(nil) })
	log, reg := &refusalLog{}, prometheus.NewRegistry()
	s := startServer(t, cfg, withRole(submissionRole), func(s *Server) {
		s.opts.Authenticator, s.opts.Refusals = a, log
		if err := reg.Register(newCollector(&s.stats, submissionRole)); err != nil {
			t.Fatal(err)
		}
	})
	return &submissionSetup{testServer: s, dir: d, auth: a, refusals: log, reg: reg}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// plain is the initial response of AUTH PLAIN.
func plain(user, password string) string { return b64("\x00" + user + "\x00" + password) }

// TestSubmission plays a whole submission session: nothing before TLS,
// AUTH only over TLS, MAIL only after AUTH, then relaying to any domain
// with the user recorded.
func TestSubmission(t *testing.T) {
	s := startSubmission(t, nil)
	c := dial(t, s.Addr())
	c.expect("220 ")
	if ehlo := c.cmd("EHLO client.test", "250"); strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "250-STARTTLS") {
		t.Errorf("EHLO before TLS = %q, want STARTTLS and no AUTH", ehlo)
	}
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "538 5.7.11 ")
	c.cmd("MAIL FROM:<alice@example.com>", "530 5.7.0 Authentication required")
	c = c.startTLS(insecure)
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "503 5.5.1 Send EHLO first")
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "250-AUTH PLAIN LOGIN\n") {
		t.Errorf("EHLO over TLS = %q, want AUTH PLAIN LOGIN", ehlo)
	}
	c.cmd("MAIL FROM:<alice@example.com>", "530 5.7.0 Authentication required")
	c.cmd("AUTH PLAIN "+plain("alice", "wrong-pw"), "535 5.7.8 ")
	c.cmd("AUTH CRAM-MD5", "504 5.5.4 ")
	c.cmd("AUTH LOGIN", "334 "+b64("Username:"))
	c.cmd(b64("alice"), "334 "+b64("Password:"))
	c.cmd(b64("alice-pw"), "235 2.7.0 ")
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "503 5.5.1 Already authenticated")
	c.cmd("MAIL FROM:<alice@example.com>", "250 ")
	c.cmd("RCPT TO:<partner@elsewhere.test>", "250 ")
	c.cmd("RCPT TO:<someone@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: sent\r\n\r\nhello\r\n.\r\n")
	c.expect("250 2.0.0 ")
	c.cmd("QUIT", "221 ")

	msgs := s.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages spooled, want 1", len(msgs))
	}
	env := msgs[0].meta.Envelope
	if env.GetAuthUser() != "alice" || env.GetDirection() != ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND || !env.GetTls() {
		t.Errorf("envelope %v, want auth_user alice, OUTBOUND, over TLS", env)
	}
	if !strings.Contains(msgs[0].body, " with ESMTPSA id ") {
		t.Errorf("Received header %q, want ESMTPSA", msgs[0].body)
	}
	if got := s.refusals.reasons(); got["auth_failed"] != 1 || got["auth_required"] != 2 {
		t.Errorf("refusals %v, want 1 auth_failed and 2 auth_required", got)
	}
	for _, r := range s.refusals.all() {
		if strings.Contains(r.Detail+r.MailFrom+r.Rcpt, "wrong-pw") {
			t.Errorf("refusal %+v holds the password", r)
		}
		if r.Reason == "auth_failed" && r.Detail != "user=alice mechanism=PLAIN" {
			t.Errorf("auth_failed detail %q, want the user and the mechanism", r.Detail)
		}
	}
	if st := s.Stats(); st.Authenticated != 1 {
		t.Errorf("Stats().Authenticated = %d, want 1", st.Authenticated)
	}
	metrics := gather(t, s.reg, "submission")
	for name, want := range map[string]float64{
		"osprey_smtp_auth_total{success}":     1,
		"osprey_smtp_auth_total{failed}":      1,
		"osprey_smtp_auth_total{throttled}":   0,
		"osprey_smtp_auth_total{unavailable}": 0,
	} {
		if metrics[name] != want {
			t.Errorf("%s = %v, want %v", name, metrics[name], want)
		}
	}
}

// TestSubmissionExchanges: the forms of PLAIN and LOGIN clients use, and
// the malformed ones.
func TestSubmissionExchanges(t *testing.T) {
	s := startSubmission(t, nil)
	session := func(t *testing.T) *client {
		c := hello(t, s.Addr()).startTLS(insecure)
		c.cmd("EHLO client.test", "250")
		return c
	}
	for _, tt := range []struct {
		name  string
		lines []string // command lines; the last one's reply is checked
		want  string
	}{
		{"PLAIN with the initial response", []string{"AUTH PLAIN " + plain("bob", "bob pw é")}, "235 "},
		{"PLAIN in two steps", []string{"AUTH PLAIN", b64("\x00alice\x00alice-pw")}, "235 "},
		{"PLAIN, authorization identity the user", []string{"AUTH PLAIN " + b64("alice\x00alice\x00alice-pw")}, "235 "},
		{"PLAIN, another authorization identity", []string{"AUTH PLAIN " + b64("bob\x00alice\x00alice-pw")}, "535 5.7.8 "},
		{"plain in lower case", []string{"auth plain " + plain("alice", "alice-pw")}, "235 "},
		{"LOGIN with the user name first", []string{"AUTH LOGIN " + b64("alice"), b64("alice-pw")}, "235 "},
		{"LOGIN, wrong password", []string{"AUTH LOGIN", b64("alice"), b64("nope")}, "535 5.7.8 "},
		{"empty password", []string{"AUTH PLAIN " + plain("alice", "")}, "535 5.7.8 "},
		{"PLAIN, = is empty", []string{"AUTH PLAIN", "="}, "501 5.5.2 "},
		{"PLAIN, two fields", []string{"AUTH PLAIN " + b64("alice\x00alice-pw")}, "501 5.5.2 "},
		{"cancelled", []string{"AUTH LOGIN", "*"}, "501 5.7.0 "},
		{"bad base64 initial response", []string{"AUTH PLAIN %%%"}, "501 5.5.2 "},
		{"bad base64 response", []string{"AUTH LOGIN", "not base64!"}, "501 5.5.2 "},
		{"no mechanism", []string{"AUTH"}, "501 5.5.4 "},
		{"too many arguments", []string{"AUTH PLAIN a b"}, "501 5.5.4 "},
		{"control characters in the name", []string{"AUTH PLAIN " + plain("ali\rce", "alice-pw")}, "535 5.7.8 "},
		{"a name too long", []string{"AUTH PLAIN " + plain(strings.Repeat("a", 300), "alice-pw")}, "535 5.7.8 "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := session(t)
			last := len(tt.lines) - 1
			for _, l := range tt.lines[:last] {
				c.cmd(l, "334 ")
			}
			c.cmd(tt.lines[last], tt.want)
			c.cmd("NOOP", "250 ")
		})
	}
	t.Run("a response line too long", func(t *testing.T) {
		c := session(t)
		c.cmd("AUTH LOGIN", "334 ")
		c.cmd(strings.Repeat("A", 5000), "500 5.5.6 ")
		c.expectClosed()
	})
	if got := s.refusals.reasons()["auth_failed"]; got != 5 {
		t.Errorf("auth_failed refusals = %d, want 5", got)
	}
}

// TestSubmissionWithoutTLS: allow_auth_without_tls offers AUTH in clear,
// and STARTTLS afterwards forgets it (RFC 3207 §4.2).
func TestSubmissionWithoutTLS(t *testing.T) {
	s := startSubmission(t, func(cfg *ospreyv1.SmtpIntegration) { cfg.Gateway.Submission.AllowAuthWithoutTls = true })
	c := dial(t, s.Addr())
	c.expect("220 ")
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "250-AUTH PLAIN LOGIN\n") {
		t.Errorf("EHLO = %q, want AUTH offered", ehlo)
	}
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "235 ")
	c = c.startTLS(insecure)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<alice@example.com>", "530 5.7.0 ")
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "235 ")
	c.cmd("MAIL FROM:<alice@example.com>", "250 ")
}

// TestSubmissionTLSRequired: with TLS required, MAIL before STARTTLS gets
// the TLS reply first.
func TestSubmissionTLSRequired(t *testing.T) {
	s := startSubmission(t, func(cfg *ospreyv1.SmtpIntegration) {
		cfg.Gateway.Submission.Listener.Tls.Mode = ospreyv1.TlsMode_TLS_MODE_REQUIRE
	})
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@example.com>", "530 5.7.0 Must issue a STARTTLS command first")
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "538 5.7.11 ")
}

// TestSubmissionThrottle: past max_failures_per_user AUTH is refused with
// 454 without asking the directory, even with the right password; a
// session that goes on failing reaches max_errors.
func TestSubmissionThrottle(t *testing.T) {
	s := startSubmission(t, func(cfg *ospreyv1.SmtpIntegration) {
		cfg.Gateway.Submission.MaxFailuresPerUser = 3
		cfg.Limits = &ospreyv1.SmtpLimits{MaxErrors: 6}
	})
	c := hello(t, s.Addr()).startTLS(insecure)
	c.cmd("EHLO client.test", "250")
	for range 3 {
		c.cmd("AUTH PLAIN "+plain("alice", "guess"), "535 5.7.8 ")
	}
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "454 4.7.0 Temporary authentication failure: too many failed attempts")
	c.cmd("AUTH PLAIN "+plain("bob", "bob pw é"), "235 ")
	if st := s.auth.Stats(); st.SourceInvalid != 3 || st.SourceOK != 1 {
		t.Errorf("directory asked %+v, want 3 refusals and 1 success", st)
	}
	c2 := hello(t, s.Addr()).startTLS(insecure)
	c2.cmd("EHLO client.test", "250")
	c2.cmd("AUTH PLAIN "+plain("alice", "guess"), "454 4.7.0 ")
	c2.cmd("AUTH PLAIN "+plain("alice", "guess"), "454 4.7.0 ")
	for range 3 {
		c2.cmd("AUTH PLAIN "+plain("carol", "guess"), "535 ")
	}
	c2.cmd("AUTH PLAIN "+plain("dave", "guess"), "535 ")
	c2.expect("421 4.7.0 Too many errors")
	if got := s.refusals.reasons(); got["auth_throttled"] != 3 || got["auth_failed"] != 7 {
		t.Errorf("refusals %v, want 3 auth_throttled and 7 auth_failed", got)
	}
}

// TestSubmissionDirectoryDown: a directory that does not answer is a
// temporary failure, never a refused password.
func TestSubmissionDirectoryDown(t *testing.T) {
	s := startSubmission(t, nil)
	s.dir.Stop()
	c := hello(t, s.Addr()).startTLS(insecure)
	c.cmd("EHLO client.test", "250")
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "454 4.7.0 Temporary authentication failure, try again later")
	if p := s.auth.Problem(); !strings.Contains(p, s.dir.URL) {
		t.Errorf("Problem() = %q, want the directory named", p)
	}
	rs := s.refusals.all()
	if len(rs) != 1 || rs[0].Reason != "auth_unavailable" || !strings.Contains(rs[0].Detail, s.dir.URL) {
		t.Errorf("refusals %+v, want one auth_unavailable naming the directory", rs)
	}
	s.dir.Start()
	c.cmd("AUTH PLAIN "+plain("alice", "alice-pw"), "235 ")
}

// TestSubmissionNeedsAnAuthenticator: a sensor that cannot check
// credentials refuses the configuration.
func TestSubmissionNeedsAnAuthenticator(t *testing.T) {
	d := slapdtest.Start(t, slapdtest.Options{})
	s := New(Options{Spool: &fakeSpool{}, Role: submissionRole})
	if err := s.Apply(context.Background(), submissionConfig(d)); err == nil || !strings.Contains(err.Error(), "authenticator") {
		t.Errorf("Apply() = %v, want an error about the authenticator", err)
	}
	// The other listeners do not need one.
	other := New(Options{Spool: &fakeSpool{}, Role: Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND}})
	runServer(t, other)
	if err := other.Apply(t.Context(), submissionConfig(d)); err != nil {
		t.Errorf("Apply() on the outbound listener = %v", err)
	}
}

// TestSubmissionSwaks: swaks, a real client, authenticates with PLAIN and
// LOGIN over STARTTLS and sends; without AUTH it is refused; without TLS
// AUTH is not offered.
func TestSubmissionSwaks(t *testing.T) {
	requireSwaksTLS(t)
	s := startSubmission(t, nil)
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		out, err := swaks(t, s.Addr(), "--tls", "--auth", mech, "--auth-user", "bob", "--auth-password", "bob pw é",
			"--from", "bob@example.com", "--to", "partner@elsewhere.test", "--body", "via "+mech)
		if err != nil || !strings.Contains(out, "<~  235 2.7.0 ") || !strings.Contains(out, "<~  250 2.0.0 OK: queued as ") {
			t.Errorf("swaks --auth %s: %v\n%s", mech, err, out)
		}
	}
	out, err := swaks(t, s.Addr(), "--tls", "--from", "bob@example.com", "--to", "partner@elsewhere.test")
	if err == nil || !strings.Contains(out, "<~* 530 5.7.0 Authentication required") {
		t.Errorf("swaks without AUTH: %v, want 530 in:\n%s", err, out)
	}
	out, err = swaks(t, s.Addr(), "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bob pw é",
		"--from", "bob@example.com", "--to", "partner@elsewhere.test")
	if err == nil || !strings.Contains(out, "Host did not advertise authentication") {
		t.Errorf("swaks --auth without TLS: %v, want AUTH not offered in:\n%s", err, out)
	}
	msgs := s.spool.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages spooled, want 2", len(msgs))
	}
	for _, m := range msgs {
		if m.meta.Envelope.GetAuthUser() != "bob" {
			t.Errorf("auth_user %q, want bob", m.meta.Envelope.GetAuthUser())
		}
	}
}

// gather reads the registry's counters and gauges by name, with their
// labels other than the listener's in braces; it fails t for a listener
// other than listener.
func gather(t *testing.T, reg *prometheus.Registry, listener string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() != "listener" {
					name += "{" + l.GetValue() + "}"
				} else if l.GetValue() != listener {
					t.Errorf("%s: listener %q, want %s", f.GetName(), l.GetValue(), listener)
				}
			}
			switch {
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			}
		}
	}
	return got
}

// TestSubmissionAcceptanceListed: with acceptance LISTED the submission
// listener takes only the clients of the AUTH acceptance list; the other
// lists have no say in it.
func TestSubmissionAcceptanceListed(t *testing.T) {
	d := slapdtest.Start(t, slapdtest.Options{Users: submissionUsers})
	cfg := submissionConfig(d)
	cfg.Gateway.Submission.Acceptance = ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
	a := smtpauth.New(smtpauth.Options{Logger: testLogger(t)})
	if err := a.Apply(cfg.GetGateway().GetSubmission()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Apply(nil) })
	for _, tc := range []struct {
		name     string
		lists    []*ospreyv1.AcceptanceList
		greeting string
	}{
		{"not listed", []*ospreyv1.AcceptanceList{
			{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH, Entries: []string{"192.0.2.0/24"}},
			{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, Entries: []string{"127.0.0.1"}},
		}, "554 5.7.1 "},
		{"listed", []*ospreyv1.AcceptanceList{
			{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH, Entries: []string{"127.0.0.0/8"}},
		}, "220 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &refusalLog{}
			s := startServerLists(t, cfg, tc.lists, withRole(submissionRole), func(s *Server) {
				s.opts.Authenticator, s.opts.Refusals = a, log
			})
			dial(t, s.Addr()).expect(tc.greeting)
			if got := log.reasons()["not_in_acceptance_list"]; (got == 1) != (tc.greeting != "220 ") {
				t.Errorf("%d refusals not_in_acceptance_list", got)
			}
		})
	}
}
