package convert

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The submission listener converts field by field, both ways; a read
// never carries the search password, only that one is set.
func TestSubmission(t *testing.T) {
	in := &api.SMTPIntegration{
		Enabled: true,
		Mode:    api.SMTPOutbound,
		Gateway: &api.SMTPGateway{
			Outbound: &api.GatewayListener{Listen: "10.0.0.2:25"},
			Submission: &api.SubmissionSettings{
				Enabled:             true,
				Listener:            &api.GatewayListener{Listen: "10.0.0.2:587", TLS: &api.SMTPTLS{Mode: api.TLSRequire}},
				AllowAuthWithoutTLS: true,
				Acceptance:          api.AcceptanceListed,
				Source:              api.AuthSourceLDAP,
				LDAP: &api.LDAPAuth{URL: "ldaps://ldap.example.com", CAPEM: "CA", BaseDN: "dc=example,dc=com", Filter: "(uid=%s)",
					SearchBindDN: "cn=gw,dc=example,dc=com", SearchBindPassword: "SEARCH-SECRET", TimeoutMs: 2000},
				SMTPForward:          &api.SMTPForwardAuth{Address: "mail.example.com:465", ImplicitTLS: true, ServerName: "mail.example.com", TimeoutMs: 3000},
				MaxFailuresPerClient: 20, MaxFailuresPerUser: 3, FailureWindowSeconds: 900, CacheSeconds: 60, DisableCache: true,
			},
		},
	}
	got, err := SMTPToProto(in)
	if err != nil {
		t.Fatalf("SMTPToProto: %v", err)
	}
	want := &ospreyv1.SubmissionSettings{
		Enabled:             true,
		Listener:            &ospreyv1.GatewayListener{Listen: "10.0.0.2:587", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}},
		AllowAuthWithoutTls: true,
		Acceptance:          ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED,
		Source:              ospreyv1.AuthSource_AUTH_SOURCE_LDAP,
		Ldap: &ospreyv1.LdapAuth{Url: "ldaps://ldap.example.com", CaPem: "CA", BaseDn: "dc=example,dc=com", Filter: "(uid=%s)",
			SearchBindDn: "cn=gw,dc=example,dc=com", SearchBindPassword: "SEARCH-SECRET", TimeoutMs: 2000},
		SmtpForward:          &ospreyv1.SmtpForwardAuth{Address: "mail.example.com:465", ImplicitTls: true, ServerName: "mail.example.com", TimeoutMs: 3000},
		MaxFailuresPerClient: 20, MaxFailuresPerUser: 3, FailureWindowSeconds: 900, CacheSeconds: 60, DisableCache: true,
	}
	if diff := cmp.Diff(want, got.GetGateway().GetSubmission(), protocmp.Transform()); diff != "" {
		t.Errorf("SMTPToProto (-want +got):\n%s", diff)
	}

	read := SMTPFromProto(got).Gateway.Submission
	wantRead := *in.Gateway.Submission
	ldap := *wantRead.LDAP
	ldap.SearchBindPassword, ldap.SearchBindPasswordSet = "", true
	wantRead.LDAP = &ldap
	if diff := cmp.Diff(&wantRead, read); diff != "" {
		t.Errorf("SMTPFromProto (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "SEARCH-SECRET") || strings.Contains(string(b), `"search_bind_password"`) ||
		!strings.Contains(string(b), `"search_bind_password_set":true`) {
		t.Errorf("JSON of a read: got %s, want search_bind_password_set and no password", b)
	}
}

func TestSubmissionEnums(t *testing.T) {
	_, err := SMTPToProto(&api.SMTPIntegration{Gateway: &api.SMTPGateway{Submission: &api.SubmissionSettings{
		Acceptance: "some", Source: "kerberos"}}})
	es, ok := validate.AsErrors(err)
	if !ok || len(es) != 2 || es[0].Field != "gateway.submission.acceptance" || es[1].Field != "gateway.submission.source" {
		t.Errorf("SMTPToProto() = %v, want errors of gateway.submission.acceptance and .source", err)
	}
}
