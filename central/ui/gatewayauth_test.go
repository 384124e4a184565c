package ui_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSMTPGatewaySenderAuthForm: the sender authentication of a gateway is
// stored from the SMTP page, shown again, and its errors are shown beside
// their fields.
func TestSMTPGatewaySenderAuthForm(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	form := gatewayForm()
	form.Set("gw_sa_enabled", "on")
	form.Set("gw_sa_authserv_id", "gw.example.com")
	form.Set("gw_sa_temperror", "fail")
	form.Set("gw_sa_permerror", "as_is")
	form.Set("check_timeout_ms", "3000")
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	cfg, _, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := &ospreyv1.SenderAuthSettings{Enabled: true, AuthservId: "gw.example.com",
		DmarcTemperror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL, CheckTimeoutMs: 3000}
	if diff := cmp.Diff(want, cfg.GetGateway().GetSenderAuth(), protocmp.Transform()); diff != "" {
		t.Errorf("stored sender_auth (-want +got):\n%s", diff)
	}

	page := b.get("/sensors/s1/smtp")
	doc := page.doc(t)
	if _, on := attrOK(byID(doc, "smtp-gw-sa-enabled"), "checked"); !on {
		t.Error("the sender authentication box is not checked")
	}
	if _, open := attrOK(byID(doc, "smtp-gw-sa"), "open"); !open {
		t.Error("the sender authentication section is closed while enabled")
	}
	for id, want := range map[string]string{"smtp-gw-sa-id": "gw.example.com", "smtp-gateway-sender-auth-check-timeout-ms": "3000"} {
		if got := attr(byID(doc, id), "value"); got != want {
			t.Errorf("#%s: got %q, want %q", id, got, want)
		}
	}
	if got := selected(t, page, "smtp-gw-sa-temperror"); got != "fail" {
		t.Errorf("temperror treatment shown as %q, want fail", got)
	}

	form.Set("lookup_timeout_ms", "5")
	form.Set("gw_sa_permerror", "reject")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad sender_auth: got %d, want 422", p.status)
	}
	if got := fieldError(t, p, "smtp-gateway-sender-auth-lookup-timeout-ms"); !strings.Contains(got, "100 to 30000") {
		t.Errorf("lookup timeout error %q", got)
	}
	if got := fieldError(t, p, "smtp-gw-sa-permerror"); !strings.Contains(got, "as_is") {
		t.Errorf("permerror treatment error %q", got)
	}
}
