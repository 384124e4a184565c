package ui_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func (e *env) policy(tenant string) *ospreyv1.VerdictPolicy {
	e.t.Helper()
	p, err := e.store.GetPolicy(e.t.Context(), store.AllTenants(), tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// validPolicy is the policy form as a tenant that never wrote one sees it,
// with version v.
func validPolicy(v int64) url.Values {
	return url.Values{
		"version": {strconv.FormatInt(v, 10)}, "detected": {"quarantine"}, "unscannable_limit": {"deliver"},
		"unscannable_error": {"deliver"}, "subject_tag": {"[Osprey detect]"}, "tag_headers": {""},
		"dmarc_reject": {"quarantine"}, "dmarc_quarantine": {"quarantine"},
		"spam_tag_score": {"6"}, "spam_quarantine_score": {"15"}, "spam_subject_tag": {"[SPAM]"},
	}
}

// selected returns the value of the option selected in the drop-down id.
func selected(t *testing.T, p page, id string) string {
	t.Helper()
	sel := byID(p.doc(t), id)
	if sel == nil {
		t.Fatalf("no #%s in the page", id)
	}
	for c := sel.FirstChild; c != nil; c = c.NextSibling {
		if _, ok := attrOK(c, "selected"); ok {
			return attr(c, "value")
		}
	}
	return ""
}

// TestPolicyPage: the Rules page says what the tenant's policy does and
// links its page, which shows the defaults of a policy never written;
// saved, the policy is stored as the API stores it (defaults unset) and
// shown again.
func TestPolicyPage(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	rules := b.get("/rules/default")
	if got := text(byID(rules.doc(t), "policy-summary")); got != "detected → quarantine · unscannable (a limit hit) → deliver · unscannable (an engine failed) → deliver" {
		t.Errorf("the Rules page's summary: %q", got)
	}
	if attr(byID(rules.doc(t), "policy-link"), "href") != "/rules/default/policy" {
		t.Error("the Rules page does not link the policy page")
	}
	p := b.get("/rules/default/policy")
	if p.status != http.StatusOK {
		t.Fatalf("status %d", p.status)
	}
	for id, want := range map[string]string{"pol-detected": "quarantine", "pol-unscannable-limit": "deliver", "pol-dmarc-reject": "quarantine"} {
		if got := selected(t, p, id); got != want {
			t.Errorf("#%s: %q selected, want %q", id, got, want)
		}
	}
	if got := attr(byID(p.doc(t), "pol-subject-tag"), "value"); got != "[Osprey detect]" {
		t.Errorf("subject tag %q, want the default", got)
	}

	form := validPolicy(0)
	form.Set("detected", "drop_notify_sender")
	form.Set("unscannable_error", "tag")
	form.Set("tag_headers", "X-Scanned-By: osprey\r\n\r\nX-Risk:  high ")
	form.Set("apply_dmarc_policy", "on")
	form.Set("dmarc_quarantine", "tag")
	form.Set("spam_quarantine_score", "12.5")
	p = b.post("/rules/default/policy", form)
	if p.status != http.StatusSeeOther || p.location != "/rules/default/policy" {
		t.Fatalf("save: %d to %q\n%s", p.status, p.location, p.body)
	}
	want := &ospreyv1.VerdictPolicy{
		Detected: ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER, UnscannableError: ospreyv1.VerdictAction_VERDICT_ACTION_TAG,
		TagHeaders:       []*ospreyv1.HeaderField{{Name: "X-Scanned-By", Value: "osprey"}, {Name: "X-Risk", Value: "high"}},
		ApplyDmarcPolicy: true, DmarcQuarantine: ospreyv1.VerdictAction_VERDICT_ACTION_TAG, SpamQuarantineScore: 12.5,
	}
	if d := cmp.Diff(want, e.policy("default"), protocmp.Transform(), protocmp.IgnoreFields(&ospreyv1.VerdictPolicy{}, "version")); d != "" {
		t.Errorf("stored (-want +got):\n%s", d)
	}
	p = b.get("/rules/default/policy")
	if !strings.Contains(p.body, "Verdict policy of tenant default saved") || selected(t, p, "pol-detected") != "drop_notify_sender" ||
		text(byID(p.doc(t), "pol-tag-headers")) != "X-Scanned-By: osprey X-Risk: high" {
		t.Errorf("after saving the page does not say so, or shows other values")
	}
	if got := text(byID(b.get("/rules/default").doc(t), "policy-summary")); !strings.HasPrefix(got, "detected → drop and notify the sender") {
		t.Errorf("the Rules page's summary after saving: %q", got)
	}
}

// TestPolicyFieldErrors: values the API refuses are refused here, each
// error beside its field (a tag header's naming its line), with what was
// typed kept; nothing is saved.
func TestPolicyFieldErrors(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	b.get("/rules/default/policy")
	form := validPolicy(0)
	form.Set("detected", "explode")
	form.Set("subject_tag", strings.Repeat("x", 65))
	form.Set("tag_headers", "X-Fine: yes\nReceived: from nowhere\nno colon here")
	form.Set("spam_tag_score", "lots")
	form.Set("spam_quarantine_score", "3")
	form.Set("spam_subject_tag", "[SPAM]")
	p := b.post("/rules/default/policy", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", p.status)
	}
	for id, want := range map[string]string{
		"pol-detected":              "action",
		"pol-subject-tag":           "64",
		"pol-tag-headers":           "line 3: want Name: value",
		"pol-spam-tag-score":        "must be a number",
		"pol-spam-quarantine-score": "must be above spam_tag_score",
	} {
		if got := fieldError(t, p, id); !strings.Contains(got, want) {
			t.Errorf("beside #%s: %q, want %q", id, got, want)
		}
	}
	if got := attr(byID(p.doc(t), "pol-spam-tag-score"), "value"); got != "lots" {
		t.Errorf("the refused form shows the tag score %q, want what was typed", got)
	}
	if !strings.Contains(p.body, "Nothing was saved") {
		t.Error("no summary of the refused form")
	}

	// Once it reads, the gateway's own header is refused by validation,
	// naming its line.
	form = validPolicy(0)
	form.Set("tag_headers", "X-Fine: yes\n\nReceived: from nowhere")
	p = b.post("/rules/default/policy", form)
	if got := fieldError(t, p, "pol-tag-headers"); !strings.Contains(got, "line 3: name: Received is the gateway's own header") {
		t.Errorf("a gateway's own header: %q (status %d)", got, p.status)
	}
	if v := e.policy("default").GetVersion(); v != 0 {
		t.Errorf("a refused form saved the policy (version %d)", v)
	}
}

// TestPolicyConcurrentChange: a form rendered before someone else saved
// changes nothing, and shows the policy as it is now.
func TestPolicyConcurrentChange(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	b.get("/rules/default/policy")
	if _, err := e.store.PutPolicy(t.Context(), store.AllTenants(), "default",
		&ospreyv1.VerdictPolicy{Detected: ospreyv1.VerdictAction_VERDICT_ACTION_TAG}, 0); err != nil {
		t.Fatal(err)
	}
	form := validPolicy(0)
	form.Set("detected", "deliver")
	p := b.post("/rules/default/policy", form)
	if p.status != http.StatusConflict || byID(p.doc(t), "policy-conflict") == nil || selected(t, p, "pol-detected") != "tag" {
		t.Errorf("a stale form: %d; want 409, saying so, with the current policy", p.status)
	}
	if got := e.policy("default").GetDetected(); got != ospreyv1.VerdictAction_VERDICT_ACTION_TAG {
		t.Errorf("stored detected %v, want the other change kept", got)
	}
}

// TestPolicyRights: an auditor sees the form read-only and may not save;
// a tenant operator cannot reach another tenant's policy.
func TestPolicyRights(t *testing.T) {
	e := newEnv(t)
	audrey := e.signedIn("audrey")
	if p := audrey.get("/rules/default/policy"); p.status != http.StatusOK || !strings.Contains(p.body, `<fieldset class="plain" disabled>`) {
		t.Errorf("an auditor's policy page: %d; want the form read-only", p.status)
	}
	if p := audrey.post("/rules/default/policy", validPolicy(0)); p.status != http.StatusForbidden {
		t.Errorf("an auditor's save: %d, want 403", p.status)
	}
	bob := e.signedIn("bob")
	if p := bob.get("/rules/default/policy"); p.status != http.StatusNotFound {
		t.Errorf("another tenant's policy page: %d, want 404", p.status)
	}
	if p := bob.post("/rules/default/policy", validPolicy(0)); p.status != http.StatusNotFound {
		t.Errorf("another tenant's save: %d, want 404", p.status)
	}
	if v := e.policy("default").GetVersion(); v != 0 {
		t.Errorf("the policy was saved (version %d)", v)
	}
}

// TestRuleAction: a rule's action is chosen when it is added and listed;
// an unknown one is refused beside its field.
func TestRuleAction(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	b.get("/rules/default")
	p := b.post("/rules/default", url.Values{"kind": {"sender"}, "value": {"x@evil.example"}, "severity": {"high"}, "action": {"explode"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(fieldError(t, p, "rule-action"), "one of the actions listed") {
		t.Errorf("an unknown action: %d, %q", p.status, fieldError(t, p, "rule-action"))
	}
	for _, c := range []struct {
		value, action string
		want          ospreyv1.VerdictAction
		label         string
	}{
		{"tag@evil.example", "tag", ospreyv1.VerdictAction_VERDICT_ACTION_TAG, "tag"},
		{"drop@evil.example", "drop_notify_recipient", ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_RECIPIENT, "drop and notify the recipients"},
		{"policy@evil.example", "", ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED, "tenant's policy"},
	} {
		p := b.post("/rules/default", url.Values{"kind": {"sender"}, "value": {c.value}, "severity": {"high"}, "action": {c.action}})
		if p.status != http.StatusSeeOther {
			t.Fatalf("add a rule with action %q: %d\n%s", c.action, p.status, p.body)
		}
		var stored *ospreyv1.Rule
		for _, r := range e.rules("default") {
			if r.GetValue() == c.value {
				stored = r
			}
		}
		if stored.GetAction() != c.want {
			t.Errorf("rule %s stored with action %v, want %v", c.value, stored.GetAction(), c.want)
		}
		row := byID(b.get("/rules/default").doc(t), "rule-"+stored.GetId())
		if !strings.Contains(text(row), c.label) {
			t.Errorf("rule %s listed as %q, want its action %q", c.value, text(row), c.label)
		}
	}
}
