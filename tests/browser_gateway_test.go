package tests

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestBrowserSMTPGatewayMode: on a sensor's SMTP page, choosing
// inbound_outbound shows the gateway's settings (and hides the monitor
// listener's) without a reload; filled and applied, they are stored and
// shown again after a reload; a bad local domain is refused beside the
// local domains, naming its line, and nothing is saved.
func TestBrowserSMTPGatewayMode(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)

	visible := func(what, id string) bool {
		t.Helper()
		return uiRun(t, ctx, what, chromedp.Evaluate[bool](`(() => { const el = document.getElementById(`+jsString(id)+`); return !!el && el.offsetParent !== null; })()`))
	}
	uiDo(t, ctx, "SMTP settings", chromedp.Navigate(n.url+"/sensors/dc-frankfurt/smtp"), chromedp.WaitVisible(chromedp.ID("smtp-title")))
	if visible("gateway in monitor mode", "smtp-gw-inbound-listen") || !visible("monitor listen", "smtp-listen") {
		t.Fatal("in monitor mode: the gateway's settings are shown, or the monitor listen address is not")
	}
	uiDo(t, ctx, "choose inbound and outbound",
		chromedp.SetValue(chromedp.ID("smtp-mode"), "inbound_outbound"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("smtp-mode").dispatchEvent(new Event("change"))`),
		chromedp.WaitVisible(chromedp.ID("smtp-gw-inbound-listen")),
		chromedp.WaitVisible(chromedp.ID("smtp-gw-outbound-listen")),
	)
	if visible("monitor listen in a gateway mode", "smtp-listen") {
		t.Error("the monitor listen address is still shown in inbound_outbound mode")
	}
	uiDo(t, ctx, "fill the gateway",
		chromedp.SendKeys(chromedp.ID("smtp-gw-inbound-listen"), "192.0.2.1:25"),
		chromedp.SendKeys(chromedp.ID("smtp-gw-inbound-listen-v6"), "[2001:db8::1]:25"),
		chromedp.SendKeys(chromedp.ID("smtp-gw-outbound-listen"), "192.0.2.1:587"),
		chromedp.SendKeys(chromedp.ID("smtp-gw-domains"), "example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\nexample.org mx.example.org mx"),
		chromedp.Click(chromedp.ID("smtp-gw-inbound-acceptance-listed")),
		chromedp.SendKeys(chromedp.ID("smtp-gw-helo"), "gw.example.com"),
		chromedp.SendKeys(chromedp.ID("smtp-gw-hold-timeout"), "300"),
		chromedp.SetValue(chromedp.ID("smtp-gw-on-timeout"), "keep_holding"),
	)
	uiDo(t, ctx, "scroll to the gateway", chromedp.Evaluate[chromedp.Void](
		`document.getElementById("smtp-gw-title").scrollIntoView({block: "start"}); window.scrollBy(0, -24)`))
	uiScreenshot(t, ctx, "smtp-gateway")
	if status := uiSubmit(t, ctx, "apply the gateway", `form.settings button.btn-primary`); status != 200 {
		t.Fatalf("apply the gateway: status %d", status)
	}
	uiDo(t, ctx, "applied", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	cfg, version, err := n.store.GetSMTP(t.Context(), store.AllTenants(), "dc-frankfurt")
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.GetGateway()
	if cfg.GetMode() != ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND || g.GetInbound().GetListen() != "192.0.2.1:25" ||
		len(g.GetLocalDomains()) != 2 || len(g.GetLocalDomains()[0].GetHosts()) != 2 || !g.GetLocalDomains()[1].GetHosts()[0].GetMxLookup() ||
		g.GetOnTimeout() != ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING || g.GetHoldTimeoutSeconds() != 300 ||
		g.GetInboundAcceptance() != ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED {
		t.Fatalf("stored: %v", cfg)
	}

	// Reloaded, the page shows what was stored.
	uiDo(t, ctx, "reload", chromedp.Navigate(n.url+"/sensors/dc-frankfurt/smtp"), chromedp.WaitVisible(chromedp.ID("smtp-gw-inbound-listen")))
	shown := uiRun(t, ctx, "values shown", chromedp.Evaluate[string](`["smtp-mode", "smtp-gw-inbound-listen", "smtp-gw-inbound-listen-v6",
		"smtp-gw-outbound-listen", "smtp-gw-helo", "smtp-gw-hold-timeout", "smtp-gw-on-timeout", "smtp-gw-domains"]
		.map(id => document.getElementById(id).value).concat([document.getElementById("smtp-gw-inbound-acceptance-listed").checked]).join(" | ")`))
	want := "inbound_outbound | 192.0.2.1:25 | [2001:db8::1]:25 | 192.0.2.1:587 | gw.example.com | 300 | keep_holding | " +
		"example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\nexample.org  mx.example.org mx | true"
	if shown != want {
		t.Errorf("after a reload the form shows\n%s\nwant\n%s", shown, want)
	}

	// A bad local domain: refused beside the local domains, naming its line.
	uiDo(t, ctx, "a bad local domain",
		chromedp.SetValue(chromedp.ID("smtp-gw-domains"), "example.com 10.0.0.10\n!hr.example.com"),
	)
	if status := uiSubmit(t, ctx, "apply a bad local domain", `form.settings button.btn-primary`); status != 422 {
		t.Fatalf("apply a bad local domain: status %d, want 422", status)
	}
	msg := uiRun(t, ctx, "local domains error", chromedp.Text(chromedp.ID("smtp-gw-domains-err")))
	if !strings.Contains(msg, "line 2: domain:") {
		t.Errorf("error beside the local domains: %q, want it to name line 2's domain", msg)
	}
	if !visible("gateway after a refusal", "smtp-gw-domains") {
		t.Error("the local domains are hidden after the refusal")
	}
	if _, v, _ := n.store.GetSMTP(t.Context(), store.AllTenants(), "dc-frankfurt"); v != version {
		t.Errorf("the invalid configuration was saved: version %d, was %d", v, version)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
