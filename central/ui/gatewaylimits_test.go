package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSMTPGatewayLimitsForm: a gateway's recipient verification and rate
// limits are stored from the SMTP page, shown again, and their errors are
// shown beside their fields.
func TestSMTPGatewayLimitsForm(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	form := gatewayForm()
	form.Set("gw_rv_enabled", "on")
	form.Set("negative_ttl_seconds", "3600")
	form.Set("max_probes_per_host", "2")
	form.Set("recipients_per_minute", "500")
	form.Set("harvest_unknown_recipients", "20")
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	cfg, _, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.GetGateway()
	wantV := &ospreyv1.RecipientVerification{Enabled: true, NegativeTtlSeconds: 3600, MaxProbesPerHost: 2}
	if diff := cmp.Diff(wantV, g.GetRecipientVerification(), protocmp.Transform()); diff != "" {
		t.Errorf("stored recipient_verification (-want +got):\n%s", diff)
	}
	wantL := &ospreyv1.RateLimits{RecipientsPerMinute: 500, HarvestUnknownRecipients: 20}
	if diff := cmp.Diff(wantL, g.GetRateLimits(), protocmp.Transform()); diff != "" {
		t.Errorf("stored rate_limits (-want +got):\n%s", diff)
	}

	doc := b.get("/sensors/s1/smtp").doc(t)
	if _, on := attrOK(byID(doc, "smtp-gw-rv-enabled"), "checked"); !on {
		t.Error("the recipient verification box is not checked")
	}
	if _, open := attrOK(byID(doc, "smtp-gw-rv"), "open"); !open {
		t.Error("the recipient verification section is closed while enabled")
	}
	for id, want := range map[string]string{
		"smtp-gateway-recipient-verification-negative-ttl-seconds":  "3600",
		"smtp-gateway-recipient-verification-max-probes-per-host":   "2",
		"smtp-gateway-recipient-verification-probe-timeout-seconds": "",
		"smtp-gateway-rate-limits-recipients-per-minute":            "500",
		"smtp-gateway-rate-limits-harvest-unknown-recipients":       "20",
	} {
		if got := attr(byID(doc, id), "value"); got != want {
			t.Errorf("#%s: got %q, want %q", id, got, want)
		}
	}
	if got := attr(byID(doc, "smtp-gateway-recipient-verification-probe-timeout-seconds"), "placeholder"); got != "30" {
		t.Errorf("probe timeout placeholder %q, want the default 30", got)
	}

	form.Del("gw_rv_enabled")
	form.Set("max_probes_per_host", "1000")
	form.Set("messages_per_minute", "2000000")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad limits: got %d, want 422", p.status)
	}
	for id, want := range map[string]string{
		"smtp-gateway-recipient-verification-max-probes-per-host": "1 to 100",
		"smtp-gateway-rate-limits-messages-per-minute":            "at most 1000000",
		"smtp-gateway-rate-limits-harvest-unknown-recipients":     "needs gateway.recipient_verification.enabled",
	} {
		if got := fieldError(t, p, id); !strings.Contains(got, want) {
			t.Errorf("#%s: error %q, want %q", id, got, want)
		}
	}
	if _, open := attrOK(byID(p.doc(t), "smtp-gw-rl"), "open"); !open {
		t.Error("the rate limits section is closed while it has errors")
	}
}

// TestAuditShowsAccessRefusals: the refusals of recipient verification,
// the rate limits and the harvest guard read in the audit log with what
// they mean, and each can be chosen in the reason filter.
func TestAuditShowsAccessRefusals(t *testing.T) {
	e := newEnv(t)
	reasons := map[string]string{
		"rate_limit_connections":    "too many connections per minute from the client",
		"rate_limit_messages":       "too many messages per minute from the client",
		"rate_limit_recipients":     "too many recipients per minute from the client",
		"harvest_guard":             "client deferred for naming too many unknown recipients",
		"recipient_unknown":         "recipient unknown to the domain's mail server",
		"recipient_verify_tempfail": "recipient not verified: the domain's mail server could not be asked",
	}
	i := 0
	for reason := range reasons {
		e.refuse("default", "s1", refusal(auditT0.Add(time.Duration(i)*time.Minute), "203.0.113.9", reason, 1, "", "", ""))
		i++
	}
	p := e.signedIn("root").get("/audit")
	table := byID(p.doc(t), "audit-table")
	if table == nil {
		t.Fatal("no audit table")
	}
	for reason, meaning := range reasons {
		if !strings.Contains(squash(text(table)), squash(reason+" "+meaning)) {
			t.Errorf("the audit table does not read %q as %q:\n%s", reason, meaning, text(table))
		}
		if !strings.Contains(p.body, `<option value="`+reason+`"`) {
			t.Errorf("the reason filter does not offer %s", reason)
		}
	}
}
