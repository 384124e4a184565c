package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// withSubmission returns validGateway with an enabled submission listener
// that checks credentials by binding to LDAP as the user.
func withSubmission() *ospreyv1.SmtpIntegration {
	s := validGateway()
	s.Gateway.Submission = &ospreyv1.SubmissionSettings{
		Enabled:  true,
		Listener: &ospreyv1.GatewayListener{Listen: "10.0.0.2:587", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}},
		Source:   ospreyv1.AuthSource_AUTH_SOURCE_LDAP,
		Ldap:     &ospreyv1.LdapAuth{Url: "ldap://ldap.example.com", StartTls: true, BindDnTemplate: "uid=%s,ou=people,dc=example,dc=com"},
	}
	return s
}

func TestSubmission(t *testing.T) {
	certPEM, _ := keyPairPEM(t)
	sub := func(s *ospreyv1.SmtpIntegration) *ospreyv1.SubmissionSettings { return s.Gateway.Submission }
	const f = "gateway.submission."
	tests := []integrationCase{
		{name: "ldap bind as the user", edit: func(s *ospreyv1.SmtpIntegration) {}},
		{name: "ldap search then bind", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap = &ospreyv1.LdapAuth{Url: "ldaps://10.0.0.5:636/", CaPem: certPEM, BaseDn: "ou=people,dc=example,dc=com",
				Filter: "(&(objectClass=inetOrgPerson)(|(uid=%s)(mail=%s)))", SearchBindDn: "cn=gw,dc=example,dc=com", SearchBindPassword: "s3cret", TimeoutMs: 2000}
		}},
		{name: "ldap anonymous search", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap = &ospreyv1.LdapAuth{Url: "ldap://[2001:db8::5]:389", BaseDn: "dc=example,dc=com", Filter: "(uid=%s)"}
		}},
		{name: "smtp forwarding", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Source, sub(s).Ldap = ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD, nil
			sub(s).SmtpForward = &ospreyv1.SmtpForwardAuth{Address: "mail.example.com:587", CaPem: certPEM, ServerName: "mail.example.com"}
		}},
		{name: "default listen address", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Listener = nil }},
		{name: "default listen address taken", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Listener, s.Gateway.Outbound.Listen = nil, ":587"
		}, wantFields: []string{f + "listener.listen"}, wantText: "gateway.outbound.listen"},
		{name: "same address as inbound", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Listener.Listen, sub(s).Listener.ListenV6 = "10.0.0.2:26", "[::]:25"
		}, wantFields: []string{f + "listener.listen_v6"}, wantText: "gateway.inbound.listen_v6"},
		{name: "same address as outbound", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Listener.Listen = "10.0.0.2:25" },
			wantFields: []string{f + "listener.listen"}, wantText: "gateway.outbound.listen"},
		{name: "not in inbound mode", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Gateway.Outbound = ospreyv1.SmtpMode_SMTP_MODE_INBOUND, nil
		}, wantFields: []string{f + "enabled"}, wantText: "outbound"},
		{name: "outbound mode", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Gateway.Inbound = ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, nil
		}},
		{name: "monitor keeps it unused", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Listen = ospreyv1.SmtpMode_SMTP_MODE_MONITOR, "0.0.0.0:2525"
		}},
		{name: "disabled needs no source", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Enabled, sub(s).Source, sub(s).Ldap = false, 0, nil
		}},
		{name: "source required", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Source = 0 },
			wantFields: []string{f + "source"}},
		{name: "unknown source and acceptance", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Source, sub(s).Acceptance = 7, 9 },
			wantFields: []string{f + "acceptance", f + "source"}},
		{name: "ldap settings required", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap = nil },
			wantFields: []string{f + "ldap.url"}},
		{name: "smtp forwarding settings required", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Source = ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD
		}, wantFields: []string{f + "smtp_forward.address"}},
		{name: "empty ldap settings", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap = &ospreyv1.LdapAuth{TimeoutMs: 5} },
			wantFields: []string{f + "ldap.url", f + "ldap.bind_dn_template", f + "ldap.timeout_ms"}},
		{name: "ldap url", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.Url = "http://ldap.example.com" },
			wantFields: []string{f + "ldap.url"}, wantText: "scheme"},
		{name: "ldap url with a dn", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.Url = "ldap://ldap.example.com/dc=example??sub" },
			wantFields: []string{f + "ldap.url"}},
		{name: "ldap url port", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.Url = "ldap://ldap.example.com:0" },
			wantFields: []string{f + "ldap.url"}, wantText: "port"},
		{name: "start_tls with ldaps", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.Url = "LDAPS://ldap.example.com" },
			wantFields: []string{f + "ldap.start_tls"}},
		{name: "template without %s", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.BindDnTemplate = "uid=alice,dc=example,dc=com" },
			wantFields: []string{f + "ldap.bind_dn_template"}, wantText: "0 times"},
		{name: "template with two %s", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.BindDnTemplate = "uid=%s,ou=%s,dc=example" },
			wantFields: []string{f + "ldap.bind_dn_template"}, wantText: "2 times"},
		{name: "template not a dn", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.BindDnTemplate = "%s@example.com" },
			wantFields: []string{f + "ldap.bind_dn_template"}},
		{name: "template and search", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap.BaseDn, sub(s).Ldap.SearchBindDn, sub(s).Ldap.SearchBindPassword = "dc=example", "cn=gw,dc=example", "pw"
		}, wantFields: []string{f + "ldap.bind_dn_template", f + "ldap.search_bind_dn"}},
		{name: "search without filter", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap.BindDnTemplate, sub(s).Ldap.BaseDn = "", "dc=example,dc=com"
		}, wantFields: []string{f + "ldap.filter"}},
		{name: "filter without %s", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap.BindDnTemplate, sub(s).Ldap.BaseDn, sub(s).Ldap.Filter = "", "dc=example,dc=com", "(uid=alice)"
		}, wantFields: []string{f + "ldap.filter"}, wantText: "%s"},
		{name: "bad filter and base", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap.BindDnTemplate, sub(s).Ldap.BaseDn, sub(s).Ldap.Filter = "", "example.com", "(&(uid=%s)"
		}, wantFields: []string{f + "ldap.base_dn", f + "ldap.filter"}},
		{name: "search bind dn without password", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap = &ospreyv1.LdapAuth{Url: "ldap://ldap", BaseDn: "dc=example", Filter: "(uid=%s)", SearchBindDn: "cn=gw,dc=example"}
		}, wantFields: []string{f + "ldap.search_bind_password"}},
		{name: "search bind password without dn", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Ldap = &ospreyv1.LdapAuth{Url: "ldap://ldap", BaseDn: "dc=example", Filter: "(uid=%s)", SearchBindPassword: "pw\n"}
		}, wantFields: []string{f + "ldap.search_bind_dn", f + "ldap.search_bind_password"}},
		{name: "bad ca", edit: func(s *ospreyv1.SmtpIntegration) { sub(s).Ldap.CaPem = "junk" },
			wantFields: []string{f + "ldap.ca_pem"}},
		{name: "forwarding address", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Source = ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD
			sub(s).SmtpForward = &ospreyv1.SmtpForwardAuth{Address: "mail.example.com", ServerName: "a b", TimeoutMs: 70000}
		}, wantFields: []string{f + "smtp_forward.address", f + "smtp_forward.server_name", f + "smtp_forward.timeout_ms"}},
		{name: "forwarding port", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).SmtpForward = &ospreyv1.SmtpForwardAuth{Address: "mail.example.com:smtp"}
		}, wantFields: []string{f + "smtp_forward.address"}, wantText: "port"},
		{name: "throttle and cache", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).MaxFailuresPerClient, sub(s).MaxFailuresPerUser, sub(s).FailureWindowSeconds, sub(s).CacheSeconds = 20000, 3, 5, 90000
		}, wantFields: []string{f + "max_failures_per_client", f + "failure_window_seconds", f + "cache_seconds"}},
		{name: "listener tls", edit: func(s *ospreyv1.SmtpIntegration) {
			sub(s).Listener.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, CertPem: certPEM}
		}, wantFields: []string{f + "listener.tls.key_pem"}},
	}
	checkCases(t, withSubmission, tests)
}

// TestSubmissionNeverQuotesThePassword: a refused password is named, not
// shown.
func TestSubmissionNeverQuotesThePassword(t *testing.T) {
	s := withSubmission()
	s.Gateway.Submission.Ldap = &ospreyv1.LdapAuth{Url: "ldap://ldap", BaseDn: "dc=example", Filter: "(uid=%s)",
		SearchBindDn: "cn=gw,dc=example", SearchBindPassword: "hunter2\x00" + strings.Repeat("x", 2000)}
	err := SMTPIntegration(s)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("SMTPIntegration() = %v, want an error that does not quote the password", err)
	}
}

func TestSubmissionDefaults(t *testing.T) {
	got := Submission(&ospreyv1.SubmissionSettings{Enabled: true, MaxFailuresPerUser: 3,
		Ldap: &ospreyv1.LdapAuth{Url: "ldap://x"}, SmtpForward: &ospreyv1.SmtpForwardAuth{TimeoutMs: 500}})
	want := &ospreyv1.SubmissionSettings{Enabled: true, Listener: &ospreyv1.GatewayListener{Listen: ":587"},
		Acceptance: ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_ALL, MaxFailuresPerClient: 10, MaxFailuresPerUser: 3,
		FailureWindowSeconds: 600, CacheSeconds: 300,
		Ldap: &ospreyv1.LdapAuth{Url: "ldap://x", TimeoutMs: 5000}, SmtpForward: &ospreyv1.SmtpForwardAuth{TimeoutMs: 500}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Submission() (-want +got):\n%s", diff)
	}
	if got := Submission(nil); got.GetListener().GetListen() != ":587" || got.GetCacheSeconds() != 300 {
		t.Errorf("Submission(nil) = %v, want the defaults", got)
	}
}
