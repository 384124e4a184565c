package ui_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func (e *env) rules(tenant string) []*ospreyv1.Rule {
	e.t.Helper()
	list, err := e.store.ListRules(e.t.Context(), store.AllTenants(), tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func (e *env) addRule(r *ospreyv1.Rule) *ospreyv1.Rule {
	e.t.Helper()
	created, err := e.store.CreateRule(e.t.Context(), store.AllTenants(), r)
	if err != nil {
		e.t.Fatal(err)
	}
	return created
}

func TestRulesPageGoesToOwnTenant(t *testing.T) {
	e := newEnv(t)
	for user, want := range map[string]string{"root": "/rules/default", "alice": "/rules/default", "bob": "/rules/acme", "audrey": "/rules/default"} {
		if p := e.signedIn(user).get("/rules"); p.status != http.StatusSeeOther || p.location != want {
			t.Errorf("%s GET /rules: got %d to %q, want 303 to %q", user, p.status, p.location, want)
		}
	}
	if p := e.signedIn("root").get("/rules?tenant=acme"); p.location != "/rules/acme" {
		t.Errorf("an administrator choosing acme went to %q", p.location)
	}
	if p := e.signedIn("bob").get("/rules?tenant=default"); p.location != "/rules/acme" {
		t.Errorf("a tenant operator choosing another tenant went to %q, want his own", p.location)
	}
}

func TestRuleCreate(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	p := b.get("/rules/default")
	if p.status != http.StatusOK || !strings.Contains(p.body, "No rules yet.") {
		t.Fatalf("empty rules page: got %d", p.status)
	}

	// An invalid value: the error is beside the field, the form keeps what
	// was typed, and nothing is saved.
	p = b.post("/rules/default", url.Values{"kind": {"url"}, "value": {"javascript:alert(1)"}, "severity": {"critical"}, "description": {"phish"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid value: got %d, want 422", p.status)
	}
	if msg := fieldError(t, p, "rule-value"); !strings.Contains(msg, "http") {
		t.Errorf("the error beside Value is %q, want it to say which URLs are taken", msg)
	}
	if !strings.Contains(p.body, `value="javascript:alert(1)"`) || !strings.Contains(p.body, `<option value="critical" selected>`) {
		t.Errorf("the refused form does not keep what was typed")
	}
	if !strings.Contains(p.body, "Nothing was saved") {
		t.Errorf("no summary of the refused form")
	}
	if n := len(e.rules("default")); n != 0 {
		t.Fatalf("%d rules saved from an invalid form", n)
	}

	// Unknown drop-down values are field errors too, with the value's.
	p = b.post("/rules/default", url.Values{"kind": {"regex"}, "value": {""}, "severity": {"urgent"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown kind: got %d", p.status)
	}
	for id, want := range map[string]string{"rule-kind": "kinds listed", "rule-severity": "low, medium, high or critical"} {
		if msg := fieldError(t, p, id); !strings.Contains(msg, want) {
			t.Errorf("the error beside #%s is %q, want %q", id, msg, want)
		}
	}
	p = b.post("/rules/default", url.Values{"kind": {"sha256"}, "value": {""}, "severity": {"high"}})
	if msg := fieldError(t, p, "rule-value"); msg != "required" && !strings.Contains(msg, "required") {
		t.Errorf("an empty value: error %q", msg)
	}

	// A valid rule is saved in canonical form and listed.
	p = b.post("/rules/default", url.Values{"kind": {"url_host"}, "value": {"Pay.EVIL.example"}, "severity": {"critical"}, "description": {"phishing host"}})
	if p.status != http.StatusSeeOther || p.location != "/rules/default" {
		t.Fatalf("valid rule: got %d to %q\n%s", p.status, p.location, p.body)
	}
	rules := e.rules("default")
	if len(rules) != 1 {
		t.Fatalf("%d rules, want 1", len(rules))
	}
	r := rules[0]
	if r.GetKind() != ospreyv1.RuleKind_RULE_KIND_URL_HOST || r.GetValue() != "pay.evil.example" ||
		r.GetSeverity() != ospreyv1.Severity_SEVERITY_CRITICAL || r.GetDescription() != "phishing host" || r.GetDisabled() {
		t.Errorf("stored rule %v", r)
	}
	p = b.get("/rules/default")
	row := text(byID(p.doc(t), "rule-"+r.GetId()))
	for _, want := range []string{"Host of a URL", "pay.evil.example", "critical", "phishing host", "enabled"} {
		if !strings.Contains(row, want) {
			t.Errorf("the rule's row lacks %q: %q", want, row)
		}
	}
	if !strings.Contains(p.body, "applies from the next message") {
		t.Errorf("no confirmation after creating the rule")
	}
}

func TestRuleDisableEnableDelete(t *testing.T) {
	e := newEnv(t)
	r := e.addRule(&ospreyv1.Rule{Tenant: "default", Kind: ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, Value: "exe", Severity: ospreyv1.Severity_SEVERITY_MEDIUM})
	b := e.signedIn("alice")
	b.get("/rules/default")
	version := func(r *ospreyv1.Rule) url.Values {
		return url.Values{"version": {strconv.FormatInt(r.GetVersion(), 10)}}
	}
	get := func() *ospreyv1.Rule {
		got, err := e.store.GetRule(t.Context(), store.AllTenants(), "default", r.GetId())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	p := b.post("/rules/default/"+r.GetId()+"/disable", version(r))
	if p.status != http.StatusSeeOther || !get().GetDisabled() {
		t.Fatalf("disable: got %d, disabled %v", p.status, get().GetDisabled())
	}
	p = b.get("/rules/default")
	if !strings.Contains(text(byID(p.doc(t), "rule-"+r.GetId())), "disabled") || !strings.Contains(p.body, "0 enabled") {
		t.Errorf("the list does not show the rule disabled")
	}

	// The form still carries the version before the change: a conflict,
	// reported, and nothing changed.
	stale := r
	p = b.post("/rules/default/"+r.GetId()+"/enable", version(stale))
	if p.status != http.StatusConflict || !strings.Contains(p.body, "Someone else changed rule "+r.GetId()) {
		t.Fatalf("enable from a stale page: got %d, want 409 with the conflict", p.status)
	}
	if !get().GetDisabled() {
		t.Errorf("a stale enable was applied")
	}
	p = b.post("/rules/default/"+r.GetId()+"/delete", version(stale))
	if p.status != http.StatusConflict {
		t.Errorf("delete from a stale page: got %d, want 409", p.status)
	}

	current := get()
	if p := b.post("/rules/default/"+r.GetId()+"/enable", version(current)); p.status != http.StatusSeeOther || get().GetDisabled() {
		t.Fatalf("enable: got %d, disabled %v", p.status, get().GetDisabled())
	}
	if p := b.post("/rules/default/"+r.GetId()+"/delete", version(get())); p.status != http.StatusSeeOther {
		t.Fatalf("delete: got %d", p.status)
	}
	if n := len(e.rules("default")); n != 0 {
		t.Errorf("%d rules after delete", n)
	}
	if p := b.post("/rules/default/"+r.GetId()+"/delete", version(current)); p.status != http.StatusNotFound {
		t.Errorf("deleting a deleted rule: got %d, want 404", p.status)
	}
	if p := b.post("/rules/default/"+r.GetId()+"/disable", url.Values{"version": {"x"}}); p.status != http.StatusBadRequest {
		t.Errorf("a form without a version: got %d, want 400", p.status)
	}
}

func TestRulesOfAnotherTenantAreNotFound(t *testing.T) {
	e := newEnv(t)
	r := e.addRule(&ospreyv1.Rule{Tenant: "default", Kind: ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, Value: "secret-indicator.example", Severity: ospreyv1.Severity_SEVERITY_HIGH})
	b := e.signedIn("bob") // tenant acme
	if p := b.get("/rules/default"); p.status != http.StatusNotFound || strings.Contains(p.body, "secret-indicator") {
		t.Errorf("GET another tenant's rules: got %d, want 404 without them", p.status)
	}
	b.get("/rules/acme")
	v := strconv.FormatInt(r.GetVersion(), 10)
	for path, form := range map[string]url.Values{
		"/rules/default": {"kind": {"sender"}, "value": {"x@y.example"}, "severity": {"low"}},
		"/rules/default/" + r.GetId() + "/disable": {"version": {v}},
		"/rules/default/" + r.GetId() + "/delete":  {"version": {v}},
		"/rules/acme/" + r.GetId() + "/delete":     {"version": {v}},
	} {
		if p := b.post(path, form); p.status != http.StatusNotFound {
			t.Errorf("POST %s: got %d, want 404", path, p.status)
		}
	}
	if got := e.rules("default"); len(got) != 1 || got[0].GetDisabled() {
		t.Errorf("another tenant's operator changed the rules: %v", got)
	}
	if n := len(e.rules("acme")); n != 0 {
		t.Errorf("%d rules in acme", n)
	}
	// An administrator reaches both.
	root := e.signedIn("root")
	if p := root.get("/rules/acme"); p.status != http.StatusOK || !strings.Contains(p.body, `id="rules-tenant"`) {
		t.Errorf("an administrator: got %d, or no tenant switch", p.status)
	}
	if p := root.get("/rules/nosuchtenant"); p.status != http.StatusNotFound {
		t.Errorf("an unknown tenant: got %d, want 404", p.status)
	}
}

func TestRulesReadOnlyForAuditor(t *testing.T) {
	e := newEnv(t)
	r := e.addRule(&ospreyv1.Rule{Tenant: "default", Kind: ospreyv1.RuleKind_RULE_KIND_MD5, Value: "44d88612fea8a8f36de82e1278abb02f", Severity: ospreyv1.Severity_SEVERITY_LOW})
	b := e.signedIn("audrey")
	p := b.get("/rules/default")
	if p.status != http.StatusOK || !strings.Contains(p.body, `<fieldset class="plain" disabled>`) || strings.Contains(p.body, "/delete\"") {
		t.Errorf("an auditor's rules page: got %d; want the form read-only and no delete buttons", p.status)
	}
	v := strconv.FormatInt(r.GetVersion(), 10)
	for path, form := range map[string]url.Values{
		"/rules/default": {"kind": {"sender"}, "value": {"x@y.example"}, "severity": {"low"}},
		"/rules/default/" + r.GetId() + "/disable": {"version": {v}},
		"/rules/default/" + r.GetId() + "/delete":  {"version": {v}},
	} {
		if p := b.post(path, form); p.status != http.StatusForbidden {
			t.Errorf("POST %s as an auditor: got %d, want 403", path, p.status)
		}
	}
	// And without the session's CSRF token, nobody changes anything.
	alice := e.signedIn("alice")
	if p := alice.postRaw("/rules/default/"+r.GetId()+"/delete", url.Values{"version": {v}, "csrf": {"forged"}}); p.status != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: got %d, want 403", p.status)
	}
	if got := e.rules("default"); len(got) != 1 || got[0].GetDisabled() {
		t.Errorf("the rule changed: %v", got)
	}
}

func TestRuleValueIsEscaped(t *testing.T) {
	e := newEnv(t)
	e.addRule(&ospreyv1.Rule{Tenant: "default", Kind: ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, Value: `*"><img src=x onerror=alert(1)>*`,
		Severity: ospreyv1.Severity_SEVERITY_HIGH, Description: `<script>alert(2)</script>`})
	p := e.signedIn("alice").get("/rules/default")
	if strings.Contains(p.body, "<img src=x") || strings.Contains(p.body, "<script>alert") {
		t.Errorf("a rule's value or description is rendered as markup")
	}
	if !strings.Contains(p.body, "&lt;script&gt;alert(2)&lt;/script&gt;") {
		t.Errorf("the description is not shown")
	}
}

// TestGlobalRules: an administrator of all tenants adds a global rule from
// a tenant's page and deletes it; every tenant's page lists it; a tenant
// operator has no "Global" box, and the store refuses a forged one.
func TestGlobalRules(t *testing.T) {
	e := newEnv(t)
	root := e.signedIn("root")
	if p := root.get("/rules/default"); !strings.Contains(p.body, `id="rule-global"`) || !strings.Contains(p.body, "No global rules.") {
		t.Fatalf("an administrator's rules page: no Global box, or global rules listed")
	}
	p := root.post("/rules/default", url.Values{"kind": {"sender"}, "value": {"mallory@evil.example"}, "severity": {"high"}, "scope": {"global"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("add a global rule: got %d", p.status)
	}
	global, err := e.store.ListGlobalRules(t.Context(), store.AllTenants())
	if err != nil || len(global) != 1 || !global[0].GetGlobal() || len(e.rules("default")) != 0 {
		t.Fatalf("after the form: global rules %v (%v), default's %v; want one global rule", global, err, e.rules("default"))
	}
	g := global[0]
	bob := e.signedIn("bob")
	p = bob.get("/rules/acme")
	if !strings.Contains(text(byID(p.doc(t), "global-rule-"+g.GetId())), "mallory@evil.example") {
		t.Errorf("acme's rules page does not list the global rule")
	}
	if strings.Contains(p.body, `id="rule-global"`) || strings.Contains(p.body, "/global/"+g.GetId()+"/delete") {
		t.Errorf("a tenant operator is offered to add or delete global rules")
	}
	if p := bob.post("/rules/acme", url.Values{"kind": {"sender"}, "value": {"eve@evil.example"}, "severity": {"high"}, "scope": {"global"}}); p.status != http.StatusForbidden {
		t.Errorf("a tenant operator's forged global rule: got %d, want 403", p.status)
	}
	if p := bob.post("/rules/acme/global/"+g.GetId()+"/delete", url.Values{"version": {strconv.FormatInt(g.GetVersion(), 10)}}); p.status != http.StatusForbidden {
		t.Errorf("a tenant operator deletes a global rule: got %d, want 403", p.status)
	}
	root.get("/rules/default")
	if p := root.post("/rules/default/global/"+g.GetId()+"/delete", url.Values{"version": {strconv.FormatInt(g.GetVersion(), 10)}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete the global rule: got %d", p.status)
	}
	if global, _ := e.store.ListGlobalRules(t.Context(), store.AllTenants()); len(global) != 0 {
		t.Errorf("after the delete: %v", global)
	}
}
