package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestCopyKeepsTheSubmissionListener: the submission listener's addresses,
// certificate and key belong to each host; its source is the tenant's.
func TestCopyKeepsTheSubmissionListener(t *testing.T) {
	src := &ospreyv1.SmtpIntegration{Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, Gateway: &ospreyv1.SmtpGateway{
		Submission: &ospreyv1.SubmissionSettings{Enabled: true, Source: ospreyv1.AuthSource_AUTH_SOURCE_LDAP,
			Listener: &ospreyv1.GatewayListener{Listen: "10.0.0.1:587", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, CertPem: "SRC-CERT", KeyPem: "SRC-KEY"}},
			Ldap:     &ospreyv1.LdapAuth{Url: "ldaps://ldap.example.com", BindDnTemplate: "uid=%s,dc=example"}},
	}}
	own := &ospreyv1.SmtpIntegration{Gateway: &ospreyv1.SmtpGateway{Submission: &ospreyv1.SubmissionSettings{
		Listener: &ospreyv1.GatewayListener{Listen: "10.0.0.2:587", ListenV6: "[2001:db8::2]:587", Tls: &ospreyv1.SmtpTls{CertPem: "OWN-CERT", KeyPem: "OWN-KEY"}},
	}}}
	want := proto.Clone(src).(*ospreyv1.SmtpIntegration)
	want.Gateway.Submission.Listener = &ospreyv1.GatewayListener{Listen: "10.0.0.2:587", ListenV6: "[2001:db8::2]:587",
		Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, CertPem: "OWN-CERT", KeyPem: "OWN-KEY"}}
	if diff := cmp.Diff(want, withHostSMTPSettings(src, own), protocmp.Transform()); diff != "" {
		t.Errorf("withHostSMTPSettings (-want +got):\n%s", diff)
	}
	// A target with a submission listener of its own, from a source without one.
	got := withHostSMTPSettings(&ospreyv1.SmtpIntegration{}, own)
	if l := got.GetGateway().GetSubmission().GetListener(); l.GetListen() != "10.0.0.2:587" || l.GetTls().GetKeyPem() != "OWN-KEY" {
		t.Errorf("withHostSMTPSettings from an empty source = %v, want the target's listener kept", got)
	}
}
