package ui_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSMTPGatewaySubmissionForm: the Authentication part of the SMTP page
// (the submission listener) is stored, shown again without its search
// password, keeps the password when applied again with the field blank,
// and shows its errors beside their fields.
func TestSMTPGatewaySubmissionForm(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	doc := b.get("/sensors/s1/smtp").doc(t)
	if _, hidden := attrOK(byID(doc, "smtp-gw-sub"), "hidden"); !hidden {
		t.Error("the Authentication part is shown in monitor mode")
	}

	form := gatewayForm()
	form.Set("gw_sub_enabled", "on")
	form.Set("gw_submission_listen", "192.0.2.1:2587")
	form.Set("gw_submission_tls_mode", "require")
	form.Set("gw_submission_tls_client_cert", "off")
	form.Set("gw_sub_acceptance", "all")
	form.Set("gw_sub_source", "ldap")
	form.Set("gw_sub_ldap_url", "ldap://ldap.example.com")
	form.Set("gw_sub_ldap_start_tls", "on")
	form.Set("gw_sub_ldap_base_dn", "ou=people,dc=example,dc=com")
	form.Set("gw_sub_ldap_filter", "(uid=%s)")
	form.Set("gw_sub_ldap_search_bind_dn", "cn=gateway,dc=example,dc=com")
	form.Set("gw_sub_ldap_search_bind_password", " search secret ")
	form.Set("max_failures_per_user", "3")
	form.Set("cache_seconds", "60")
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	var version int64
	stored := func() *ospreyv1.SubmissionSettings {
		t.Helper()
		cfg, v, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
		if err != nil {
			t.Fatal(err)
		}
		version = v
		return cfg.GetGateway().GetSubmission()
	}
	want := &ospreyv1.SubmissionSettings{
		Enabled:  true,
		Listener: &ospreyv1.GatewayListener{Listen: "192.0.2.1:2587", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_OFF}},
		Source:   ospreyv1.AuthSource_AUTH_SOURCE_LDAP,
		Ldap: &ospreyv1.LdapAuth{Url: "ldap://ldap.example.com", StartTls: true, BaseDn: "ou=people,dc=example,dc=com", Filter: "(uid=%s)",
			SearchBindDn: "cn=gateway,dc=example,dc=com", SearchBindPassword: " search secret "},
		MaxFailuresPerUser: 3, CacheSeconds: 60,
	}
	if diff := cmp.Diff(want, stored(), protocmp.Transform()); diff != "" {
		t.Errorf("stored submission (-want +got):\n%s", diff)
	}

	page := b.get("/sensors/s1/smtp")
	if strings.Contains(page.body, "search secret") {
		t.Error("the page shows the search password")
	}
	doc = page.doc(t)
	if _, hidden := attrOK(byID(doc, "smtp-gw-sub"), "hidden"); hidden {
		t.Error("the Authentication part is hidden in inbound_outbound mode")
	}
	for id, want := range map[string]string{
		"smtp-gw-submission-listen": "192.0.2.1:2587", "smtp-gw-sub-ldap-url": "ldap://ldap.example.com",
		"smtp-gw-sub-ldap-filter": "(uid=%s)", "smtp-gw-sub-ldap-search-pw": "",
		"smtp-gateway-submission-max-failures-per-user": "3", "smtp-gateway-submission-cache-seconds": "60",
	} {
		if got := attr(byID(doc, id), "value"); got != want {
			t.Errorf("#%s: got %q, want %q", id, got, want)
		}
	}
	for _, id := range []string{"smtp-gw-sub-enabled", "smtp-gw-sub-ldap-starttls", "smtp-gw-sub-source-ldap", "smtp-gw-sub-acceptance-all"} {
		if _, on := attrOK(byID(doc, id), "checked"); !on {
			t.Errorf("#%s is not checked", id)
		}
	}
	if got := attr(byID(doc, "smtp-gw-sub-ldap-search-pw"), "placeholder"); !strings.Contains(got, "stored") {
		t.Errorf("the search password's placeholder %q does not say one is stored", got)
	}

	// Applied again with the password blank: kept.
	form.Set("gw_sub_ldap_search_bind_password", "")
	form.Set("version", strconv.FormatInt(version, 10))
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("applied again: got %d\n%s", p.status, p.body)
	}
	if got := stored().GetLdap().GetSearchBindPassword(); got != " search secret " {
		t.Errorf("search password after a blank write: %q, want the stored one", got)
	}

	// Errors beside their fields.
	form.Set("gw_sub_ldap_url", "http://ldap.example.com")
	form.Set("gw_sub_ldap_bind_dn_template", "uid=%s,dc=example,dc=com")
	form.Set("gw_submission_listen", "192.0.2.1:587")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad submission: got %d, want 422", p.status)
	}
	expectFieldErrors(t, p, map[string]string{
		"smtp-gw-sub-ldap-url":      "scheme",
		"smtp-gw-sub-ldap-template": "not both",
		"smtp-gw-submission-listen": "gateway.outbound.listen",
	})
	if strings.Contains(p.body, "search secret") {
		t.Error("the refused page shows the search password")
	}
}
