package ui_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// gatewayForm is the SMTP form of an inbound and outbound gateway.
func gatewayForm() url.Values {
	f := validSMTP()
	f.Set("mode", "inbound_outbound")
	f.Set("gw_inbound_listen", "192.0.2.1:25")
	f.Set("gw_inbound_listen_v6", "[2001:db8::1]:25")
	f.Set("gw_inbound_tls_mode", "off")
	f.Set("gw_inbound_tls_client_cert", "off")
	f.Set("gw_outbound_listen", "192.0.2.1:587")
	f.Set("gw_outbound_tls_mode", "off")
	f.Set("gw_outbound_tls_client_cert", "off")
	f.Set("gw_local_domains", "example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\r\nexample.org mx.example.org mx require_tls\r\n")
	f.Set("gw_inbound_acceptance", "listed")
	f.Set("gw_relay_hosts", "smarthost.example.net:2525")
	f["gateway.require_tls_domains"] = []string{""}
	f.Set("gw_helo_name", "gw.example.com")
	f.Set("gw_hold_timeout", "300")
	f.Set("gw_on_timeout", "keep_holding")
	f.Set("min_backoff_seconds", "60")
	return f
}

// TestSMTPGatewayForm: the gateway part of the SMTP page is stored as the
// API stores it, shown again, and applied unchanged writes nothing new; a
// bad local domain is shown under the local domains, naming its line.
func TestSMTPGatewayForm(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	p := b.get("/sensors/s1/smtp")
	doc := p.doc(t)
	// A sensor never configured is in monitor mode; the gateway is hidden.
	if sel := byID(doc, "smtp-mode"); sel == nil {
		t.Fatal("no mode selector")
	}
	if _, hidden := attrOK(byID(doc, "smtp-gw-title").Parent, "hidden"); !hidden {
		t.Error("the gateway section is shown in monitor mode")
	}

	p = b.post("/sensors/s1/smtp", gatewayForm())
	if p.status != http.StatusSeeOther {
		t.Fatalf("gateway form: got %d\n%s", p.status, p.body)
	}
	cfg, version, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := &ospreyv1.SmtpGateway{
		Inbound:  &ospreyv1.GatewayListener{Listen: "192.0.2.1:25", ListenV6: "[2001:db8::1]:25"},
		Outbound: &ospreyv1.GatewayListener{Listen: "192.0.2.1:587"},
		LocalDomains: []*ospreyv1.LocalDomain{
			{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}, {Host: "10.0.0.11", Preference: 20}}},
			{Domain: "example.org", Hosts: []*ospreyv1.NextHop{{Host: "mx.example.org", MxLookup: true}}, RequireTls: true},
		},
		InboundAcceptance:  ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED,
		RelayHosts:         []*ospreyv1.NextHop{{Host: "smarthost.example.net", Port: 2525}},
		HeloName:           "gw.example.com",
		HoldTimeoutSeconds: 300,
		OnTimeout:          ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING,
		Queue:              &ospreyv1.DeliveryQueueSettings{MinBackoffSeconds: 60},
	}
	if cfg.GetMode() != ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND {
		t.Errorf("mode: got %v, want INBOUND_OUTBOUND", cfg.GetMode())
	}
	if diff := cmp.Diff(want, cfg.GetGateway(), protocmp.Transform()); diff != "" {
		t.Errorf("stored gateway (-want +got):\n%s", diff)
	}

	// Shown again, sections of both directions visible.
	doc = b.get("/sensors/s1/smtp").doc(t)
	for id, want := range map[string]string{"smtp-gw-inbound-listen": "192.0.2.1:25", "smtp-gw-inbound-listen-v6": "[2001:db8::1]:25",
		"smtp-gw-outbound-listen": "192.0.2.1:587", "smtp-gw-helo": "gw.example.com", "smtp-gw-hold-timeout": "300",
		"smtp-gateway-queue-min-backoff-seconds": "60"} {
		if got := attr(byID(doc, id), "value"); got != want {
			t.Errorf("#%s: got %q, want %q", id, got, want)
		}
	}
	if _, checked := attrOK(byID(doc, "smtp-gw-inbound-acceptance-listed"), "checked"); !checked {
		t.Error("the inbound acceptance is not shown as listed")
	}
	if got := textareaValue(byID(doc, "smtp-gw-domains")); got != "example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\nexample.org  mx.example.org mx  require_tls" {
		t.Errorf("local domains shown as %q", got)
	}
	if _, hidden := attrOK(byID(doc, "smtp-gw-title").Parent, "hidden"); hidden {
		t.Error("the gateway section is hidden in inbound_outbound mode")
	}
	if _, hidden := attrOK(byID(doc, "smtp-listen").Parent.Parent.Parent, "hidden"); !hidden {
		t.Error("the monitor listen address is shown in a gateway mode")
	}

	// Applying the form unchanged writes nothing new.
	form := gatewayForm()
	form.Set("version", strconv.FormatInt(version, 10))
	form.Set("gw_local_domains", textareaValue(byID(doc, "smtp-gw-domains")))
	b.post("/sensors/s1/smtp", form)
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != version {
		t.Errorf("an unchanged apply made version %d from %d", v, version)
	}

	// A bad local domain and a line that does not parse: both beside the
	// local domains, each naming its line; nothing is saved.
	form = gatewayForm()
	form.Set("version", strconv.FormatInt(version, 10))
	form.Set("gw_local_domains", "example.com 10.0.0.10\n!bad.example\nexample.net 10.0.0.1 weight=2\n")
	form.Set("gw_outbound_listen", "")
	p = b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad local domain: got %d, want 422", p.status)
	}
	got := fieldError(t, p, "smtp-gw-domains")
	for _, want := range []string{"line 2: domain: must be a domain name", `line 3: unknown option "weight=2"`} {
		if !strings.Contains(got, want) {
			t.Errorf("local domains error %q: want %q in it", got, want)
		}
	}
	if got := fieldError(t, p, "smtp-gw-outbound-listen"); !strings.Contains(got, "required") {
		t.Errorf("outbound listen error %q, want required", got)
	}
	if got := textareaValue(byID(p.doc(t), "smtp-gw-domains")); !strings.Contains(got, "!bad.example") {
		t.Errorf("the form does not show what was typed: %q", got)
	}
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != version {
		t.Errorf("an invalid form was saved (version %d, was %d)", v, version)
	}
}

// TestSMTPGatewayKeysAreNeverShown: a listener's private key is stored and
// never rendered; the page says one is stored, and applying the form
// without it keeps it.
func TestSMTPGatewayKeysAreNeverShown(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	ca, err := pki.NewCA("gw.example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.MarshalCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	b.get("/sensors/s1/smtp")
	form := gatewayForm()
	form.Set("gw_inbound_tls_mode", "accept")
	form.Set("gw_inbound_tls_cert_pem", string(cert))
	form.Set("gw_inbound_tls_key_pem", string(key))
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	p := b.get("/sensors/s1/smtp")
	if strings.Contains(p.body, "PRIVATE KEY-----\n") || !strings.Contains(p.body, "A key is stored. Leave blank to keep it.") {
		t.Error("the page shows the key, or does not say one is stored")
	}
	_, version, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	form.Del("gw_inbound_tls_key_pem")
	form.Set("gw_helo_name", "mx1.example.com")
	form.Set("version", strconv.FormatInt(version, 10))
	if p := b.post("/sensors/s1/smtp", form); p.status != http.StatusSeeOther {
		t.Fatalf("without the key: got %d\n%s", p.status, p.body)
	}
	cfg, _, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if cfg.GetGateway().GetInbound().GetTls().GetKeyPem() != strings.TrimSpace(string(key)) || cfg.GetGateway().GetHeloName() != "mx1.example.com" {
		t.Errorf("the stored key was not kept: key kept %v, helo %q", cfg.GetGateway().GetInbound().GetTls().GetKeyPem() != "", cfg.GetGateway().GetHeloName())
	}
}

// TestApplySMTPToAllScanners: the button applies the sensor's stored SMTP
// settings to the other sensors of its tenant and says what happened to
// each; the other tenant's operator cannot, and an auditor has no button.
func TestApplySMTPToAllScanners(t *testing.T) {
	e := newEnv(t)
	ctx, all := t.Context(), store.AllTenants()
	for _, id := range []string{"s3", "s4"} {
		if _, err := e.store.CreateSensor(ctx, all, &ospreyv1.Sensor{Id: id, Tenant: "default", Name: id, State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
			t.Fatal(err)
		}
	}
	// s3 has gateway addresses of its own; s4 has none.
	if _, err := e.store.PutSMTP(ctx, all, "s3", &ospreyv1.SmtpIntegration{Listen: "0.0.0.0:25", Gateway: &ospreyv1.SmtpGateway{
		Inbound: &ospreyv1.GatewayListener{Listen: "192.0.2.3:25"}, Outbound: &ospreyv1.GatewayListener{Listen: "192.0.2.3:587"},
	}}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn("alice")
	b.get("/sensors/s1/smtp")
	if p := b.post("/sensors/s1/smtp", gatewayForm()); p.status != http.StatusSeeOther {
		t.Fatalf("gateway form: got %d", p.status)
	}
	page := b.get("/sensors/s1/smtp")
	if btn := byID(page.doc(t), "smtp-apply-all"); btn == nil || !strings.Contains(text(btn), "Apply above settings to all scanners") {
		t.Fatal("no Apply above settings to all scanners button")
	}
	p := b.post("/sensors/s1/smtp/apply-to-tenant", nil)
	if p.status != http.StatusSeeOther || p.location != "/sensors/s1/smtp" {
		t.Fatalf("apply to all: got %d to %q", p.status, p.location)
	}
	body := b.get("/sensors/s1/smtp").body
	if !strings.Contains(body, "SMTP settings of s1 applied to the sensors of tenant default: written to s3 (version") {
		t.Errorf("no confirmation naming s3 in\n%s", body)
	}
	if !strings.Contains(body, "Not applied to 1 of the sensors, which kept their settings: s4: gateway.inbound.listen: required") {
		t.Errorf("no report of s4's refusal in\n%s", body)
	}
	s3, _, _ := e.store.GetSMTP(ctx, all, "s3")
	if s3.GetGateway().GetInbound().GetListen() != "192.0.2.3:25" || s3.GetGateway().GetHeloName() != "gw.example.com" || s3.GetListen() != "0.0.0.0:25" {
		t.Errorf("s3 after apply to all: %v", s3)
	}
	if _, v, _ := e.store.GetSMTP(ctx, all, "s4"); v != 0 {
		t.Error("s4 was written")
	}

	bob := e.signedIn("bob")
	bob.get("/sensors")
	if p := bob.post("/sensors/s1/smtp/apply-to-tenant", nil); p.status != http.StatusNotFound {
		t.Errorf("another tenant's operator: got %d, want 404", p.status)
	}
	audrey := e.signedIn("audrey")
	if p := audrey.get("/sensors/s1/smtp"); byID(p.doc(t), "smtp-apply-all") != nil {
		t.Error("an auditor sees the apply-to-all button")
	}
	if p := audrey.post("/sensors/s1/smtp/apply-to-tenant", nil); p.status != http.StatusForbidden {
		t.Errorf("an auditor: got %d, want 403", p.status)
	}
}

// textareaValue is the text of a textarea as the browser holds it.
func textareaValue(n *html.Node) string {
	if n == nil || n.FirstChild == nil {
		return ""
	}
	return n.FirstChild.Data
}
