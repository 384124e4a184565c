package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %v, want a 400 api.Error", err)
	}
	var out []string
	for _, f := range apiErr.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestRulesAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, audrey := e.client(t, "alice"), e.client(t, "audrey")

	in := api.Rule{ID: "bad-zip", Kind: api.RuleAttachmentName, Value: "Invoice*.ZIP", Severity: api.SeverityHigh, Description: "campaign 12"}
	r, err := alice.CreateRule(ctx, "default", in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Value != "invoice*.zip" || r.Tenant != "default" || r.Version == 0 || r.CreatedAt.IsZero() {
		t.Errorf("created rule: got %+v", r)
	}
	gen, err := alice.CreateRule(ctx, "default", api.Rule{Kind: api.RuleSHA256, Value: strings.Repeat("A", 64), Severity: api.SeverityCritical})
	if err != nil {
		t.Fatal(err)
	}
	if gen.ID == "" || gen.Value != strings.Repeat("a", 64) {
		t.Errorf("rule with a generated id: got %+v", gen)
	}

	tests := []struct {
		name string
		user string
		call func(c *api.Client) error
		want int
	}{
		{"auditor lists", "audrey", func(c *api.Client) error { _, err := c.Rules(ctx, "default"); return err }, 0},
		{"auditor reads", "audrey", func(c *api.Client) error { _, err := c.Rule(ctx, "default", "bad-zip"); return err }, 0},
		{"auditor creates", "audrey", func(c *api.Client) error { _, err := c.CreateRule(ctx, "default", in); return err }, http.StatusForbidden},
		{"auditor deletes", "audrey", func(c *api.Client) error { return c.DeleteRule(ctx, "default", "bad-zip", 0) }, http.StatusForbidden},
		{"other tenant lists", "bob", func(c *api.Client) error { _, err := c.Rules(ctx, "default"); return err }, http.StatusNotFound},
		{"other tenant reads", "bob", func(c *api.Client) error { _, err := c.Rule(ctx, "default", "bad-zip"); return err }, http.StatusNotFound},
		{"other tenant creates", "bob", func(c *api.Client) error { _, err := c.CreateRule(ctx, "default", in); return err }, http.StatusForbidden},
		{"other tenant updates", "bob", func(c *api.Client) error { _, err := c.UpdateRule(ctx, "default", in, 0); return err }, http.StatusForbidden},
		{"other tenant deletes", "bob", func(c *api.Client) error { return c.DeleteRule(ctx, "default", "bad-zip", 0) }, http.StatusNotFound},
		{"create twice", "alice", func(c *api.Client) error { _, err := c.CreateRule(ctx, "default", in); return err }, http.StatusConflict},
		{"missing rule", "alice", func(c *api.Client) error { _, err := c.Rule(ctx, "default", "nope"); return err }, http.StatusNotFound},
		{"update missing rule", "alice", func(c *api.Client) error {
			r := in
			r.ID = "nope"
			_, err := c.UpdateRule(ctx, "default", r, 0)
			return err
		}, http.StatusNotFound},
		{"missing tenant", "root", func(c *api.Client) error { _, err := c.CreateRule(ctx, "nope", in); return err }, http.StatusNotFound},
		{"invalid tenant id", "root", func(c *api.Client) error { _, err := c.Rules(ctx, "No_Such"); return err }, http.StatusBadRequest},
		{"admin reads any tenant", "root", func(c *api.Client) error { _, err := c.Rule(ctx, "default", "bad-zip"); return err }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusOf(tt.call(e.client(t, tt.user))); got != tt.want {
				t.Errorf("got status %d, want %d", got, tt.want)
			}
		})
	}

	// Field errors: every bad field at once, nothing stored.
	_, err = alice.CreateRule(ctx, "default", api.Rule{Kind: "sha512", Severity: "urgent"})
	if d := cmp.Diff([]string{"kind", "severity"}, fieldsOf(t, err)); d != "" {
		t.Errorf("unknown names (-want +got):\n%s", d)
	}
	_, err = alice.CreateRule(ctx, "default", api.Rule{ID: "x", Kind: api.RuleURL, Value: "javascript:alert(1)", Severity: api.SeverityLow, Description: "a\x00", Tenant: "acme"})
	if d := cmp.Diff([]string{"tenant", "value", "description"}, fieldsOf(t, err)); d != "" {
		t.Errorf("bad values (-want +got):\n%s", d)
	}
	_, err = alice.UpdateRule(ctx, "default", api.Rule{ID: "bad-zip", Kind: api.RuleAttachmentExtension, Value: "pdf.exe", Severity: api.SeverityLow}, 0)
	if d := cmp.Diff([]string{"value"}, fieldsOf(t, err)); d != "" {
		t.Errorf("bad update (-want +got):\n%s", d)
	}
	if list, err := audrey.Rules(ctx, "default"); err != nil || len(list) != 2 {
		t.Errorf("rules after refused writes: %v, %v; want the 2 created", list, err)
	}

	// Read, edit, write back with If-Match; a stale version is a conflict.
	got, err := alice.Rule(ctx, "default", "bad-zip")
	if err != nil {
		t.Fatal(err)
	}
	got.Disabled = true
	upd, err := alice.UpdateRule(ctx, "default", *got, got.Version)
	if err != nil {
		t.Fatal(err)
	}
	if !upd.Disabled || upd.Version <= got.Version || !upd.CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("updated rule: got %+v", upd)
	}
	if _, err := alice.UpdateRule(ctx, "default", *got, got.Version); statusOf(err) != http.StatusConflict {
		t.Errorf("stale update: got %v, want 409", err)
	}
	if err := alice.DeleteRule(ctx, "default", "bad-zip", got.Version); statusOf(err) != http.StatusConflict {
		t.Errorf("stale delete: got %v, want 409", err)
	}
	mismatch := *upd
	mismatch.ID = "other"
	if _, err := alice.UpdateRule(ctx, "default", mismatch, 0); statusOf(err) != http.StatusNotFound {
		// The client puts to the body's id; the path and body agree, and it does not exist.
		t.Errorf("update of another id: got %v, want 404", err)
	}
	if err := alice.DeleteRule(ctx, "default", "bad-zip", upd.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Rule(ctx, "default", "bad-zip"); statusOf(err) != http.StatusNotFound {
		t.Errorf("after delete: got %v, want 404", err)
	}

	// A body naming another id than its path is refused.
	body := `{"id":"zzz","kind":"md5","value":"` + strings.Repeat("0", 32) + `","severity":"low"}`
	if code := do(t, e, "alice", "PUT", "/api/v1/tenants/default/rules/"+gen.ID, body); code != http.StatusBadRequest {
		t.Errorf("PUT with another id in the body: got %d, want 400", code)
	}
	if code := do(t, e, "alice", "POST", "/api/v1/tenants/default/rules", `{"kind":"md5","value":"x","severity":"low","bogus":1}`); code != http.StatusBadRequest {
		t.Errorf("unknown field: got %d, want 400", code)
	}
	if code := do(t, e, "alice", "PUT", "/api/v1/tenants/default/rules/"+gen.ID, "{}"); code != http.StatusBadRequest {
		t.Errorf("empty rule: got %d, want 400", code)
	}
}

// do sends a raw request and returns its status.
func do(t *testing.T, e *env, user, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// seedScans records n scanned messages of a sensor, an alert for each odd
// one, a second apart from start; it returns the alert ids, oldest first.
func seedScans(t *testing.T, e *env, tenant, sensor string, n int, start time.Time) []string {
	t.Helper()
	sevs := []ospreyv1.Severity{ospreyv1.Severity_SEVERITY_LOW, ospreyv1.Severity_SEVERITY_HIGH, ospreyv1.Severity_SEVERITY_CRITICAL}
	var ids []string
	for i := range n {
		now := start.Add(time.Duration(i) * time.Second)
		rec := &ospreyv1.MessageRecord{
			MessageId: fmt.Sprintf("%s-%03d", sensor, i), SensorId: sensor, Tenant: tenant,
			Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Verdict: "clean", Size: 100,
			Envelope: &ospreyv1.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}},
		}
		var alert *ospreyv1.Alert
		if i%2 == 1 {
			rec.Verdict = "detected"
			sev := sevs[(i/2)%3]
			alert = &ospreyv1.Alert{
				Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Severity: sev, Verdict: "detected",
				Envelope:    rec.Envelope,
				Headers:     &ospreyv1.HeaderSummary{Subject: fmt.Sprintf("Message %d of %s", i, sensor), From: "a@example.org"},
				Matches:     []*ospreyv1.Match{{Engine: "eicar", RuleId: "EICAR-Test-File", Severity: sev, What: "EICAR test file"}},
				Attachments: []*ospreyv1.Attachment{{Path: "eicar.com", Filename: "eicar.com", Size: 68}},
			}
		}
		stored, _, err := e.db.RecordScan(t.Context(), store.AllTenants(), rec, alert, now)
		if err != nil {
			t.Fatal(err)
		}
		if alert != nil {
			ids = append(ids, stored.GetAlertId())
		}
	}
	return ids
}

func alertIDs(as []api.Alert) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestAlertsAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	def := seedScans(t, e, "default", "s1", 10, start)               // 5 alerts
	acme := seedScans(t, e, "acme", "s2", 6, start.Add(time.Hour/2)) // 3 alerts, all newer
	newestFirst := func(ids ...[]string) []string {
		var out []string
		for _, l := range ids {
			out = append(out, l...)
		}
		slices.Reverse(out)
		return out
	}
	list := func(user string, q api.AlertQuery) ([]string, error) {
		var got []string
		for range 20 {
			page, err := e.client(t, user).Alerts(ctx, q)
			if err != nil {
				return nil, err
			}
			got = append(got, alertIDs(page.Alerts)...)
			if q.PageToken = page.NextPageToken; q.PageToken == "" {
				return got, nil
			}
		}
		t.Fatal("too many pages")
		return nil, nil
	}
	tests := []struct {
		name string
		user string
		q    api.AlertQuery
		want []string
	}{
		{"admin sees every tenant, newest first", "root", api.AlertQuery{}, newestFirst(def, acme)},
		{"admin pages of 2", "root", api.AlertQuery{Limit: 2}, newestFirst(def, acme)},
		{"tenant admin sees its tenant", "alice", api.AlertQuery{Limit: 3}, newestFirst(def)},
		{"auditor sees its tenant", "audrey", api.AlertQuery{}, newestFirst(def)},
		{"tenant filter", "root", api.AlertQuery{Tenant: "acme"}, newestFirst(acme)},
		{"sensor filter", "root", api.AlertQuery{Sensor: "s2", Limit: 1}, newestFirst(acme)},
		{"severity", "root", api.AlertQuery{Severity: api.SeverityCritical}, []string{acme[2], def[2]}},
		{"since", "root", api.AlertQuery{Since: start.Add(5 * time.Second)}, newestFirst(def[2:], acme)},
		{"q", "alice", api.AlertQuery{Q: "MESSAGE 3 OF"}, []string{def[1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := list(tt.user, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}

	if _, err := e.client(t, "alice").Alerts(ctx, api.AlertQuery{Tenant: "acme"}); statusOf(err) != http.StatusNotFound {
		t.Errorf("alice lists acme's alerts: got %v, want 404", err)
	}
	a, err := e.client(t, "root").Alert(ctx, "", acme[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Tenant != "acme" || a.SensorID != "s2" || a.Severity != api.SeverityLow || len(a.Matches) != 1 ||
		a.Matches[0].Engine != "eicar" || a.Attachments[0].Filename != "eicar.com" || a.Envelope.MailFrom != "a@example.org" {
		t.Errorf("alert: got %+v", a)
	}
	if _, err := e.client(t, "bob").Alert(ctx, "", acme[0]); err != nil {
		t.Errorf("bob reads acme's alert: %v", err)
	}
	for _, tenant := range []string{"", "default", "acme"} {
		if _, err := e.client(t, "alice").Alert(ctx, tenant, acme[0]); statusOf(err) != http.StatusNotFound {
			t.Errorf("alice reads acme's alert with tenant %q: got %v, want 404", tenant, err)
		}
	}
	if _, err := e.client(t, "root").Alert(ctx, "default", acme[0]); statusOf(err) != http.StatusNotFound {
		t.Errorf("alert looked for in the wrong tenant: got %v, want 404", err)
	}
	if _, err := e.client(t, "root").Alert(ctx, "", "not-an-id"); statusOf(err) != http.StatusBadRequest {
		t.Errorf("malformed alert id: got %v, want 400", err)
	}

	for query, field := range map[string]string{
		"severity=urgent":               "severity",
		"since=yesterday":               "since",
		"limit=0":                       "limit",
		"limit=501":                     "limit",
		"page_token=xyz":                "page_token",
		"sevrity=high":                  "sevrity",
		"sensor=S1":                     "sensor",
		"q=" + strings.Repeat("x", 257): "q",
	} {
		body := rawGet(t, e.url+"/api/v1/alerts?"+query, "root")
		var resp api.Error
		if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Fields) != 1 || resp.Fields[0].Field != field {
			t.Errorf("GET /api/v1/alerts?%s: got %s, want a field error on %s", query, body, field)
		}
	}
}

func TestMessagesAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Minute)
	def := seedScans(t, e, "default", "s1", 7, start)
	seedScans(t, e, "acme", "s2", 3, start)

	var ids []string
	alerts := map[string]string{}
	q := api.MessageQuery{Limit: 2}
	for range 20 {
		page, err := e.client(t, "audrey").Messages(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			ids = append(ids, m.MessageID)
			if m.Tenant != "default" {
				t.Errorf("audrey sees a message of %q", m.Tenant)
			}
			if m.AlertID != "" {
				alerts[m.MessageID] = m.AlertID
				if m.Verdict != "detected" {
					t.Errorf("message %s with an alert: verdict %q", m.MessageID, m.Verdict)
				}
			}
		}
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			break
		}
	}
	want := []string{"s1-000", "s1-001", "s1-002", "s1-003", "s1-004", "s1-005", "s1-006"}
	if d := cmp.Diff(want, ids); d != "" {
		t.Errorf("messages (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"s1-001": def[0], "s1-003": def[1], "s1-005": def[2]}, alerts); d != "" {
		t.Errorf("alert ids (-want +got):\n%s", d)
	}

	// The JSON shape other tools rely on.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(rawGet(t, e.url+"/api/v1/messages?sensor=s2", "root")), &raw); err != nil {
		t.Fatal(err)
	}
	var msgs []map[string]any
	if err := json.Unmarshal(raw["messages"], &msgs); err != nil || len(msgs) != 3 {
		t.Errorf("messages of s2: %v, %v", msgs, err)
	}
	if string(raw["next_page_token"]) != `""` {
		t.Errorf("next_page_token of the last page: got %s, want \"\"", raw["next_page_token"])
	}
	if msgs[0]["message_id"] != "s2-000" || msgs[0]["verdict"] != "clean" || msgs[0]["sensor_id"] != "s2" {
		t.Errorf("first message of s2: %v", msgs[0])
	}

	if _, err := e.client(t, "alice").Messages(ctx, api.MessageQuery{Tenant: "acme"}); statusOf(err) != http.StatusNotFound {
		t.Errorf("alice lists acme's messages: got %v, want 404", err)
	}
	if _, err := e.client(t, "alice").Messages(ctx, api.MessageQuery{Sensor: "s2"}); err != nil {
		t.Errorf("alice lists a sensor of acme: %v", err) // an empty list: her tenant has no s2
	}
	if _, err := e.client(t, "root").Messages(ctx, api.MessageQuery{Limit: 501}); statusOf(err) != http.StatusBadRequest {
		t.Errorf("limit 501: got %v, want 400", err)
	}
}

func TestExportAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice := e.client(t, "alice")
	got, v0, err := alice.Export(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || v0 != 0 {
		t.Errorf("never written: got %+v at %d, want disabled at 0", got, v0)
	}
	in := &api.SyslogExport{Enabled: true, Address: "siem.example.com:6514", TLS: true, Facility: 16, AppName: "osprey-hq"}
	out, v1, err := alice.PutExport(ctx, "default", in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" || v1 == 0 {
		t.Errorf("stored export at %d (-put +got):\n%s", v1, d)
	}
	changed := *in
	changed.Facility = 17
	if _, _, err := e.client(t, "root").PutExport(ctx, "default", &changed, v1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.PutExport(ctx, "default", in, v1); statusOf(err) != http.StatusConflict {
		t.Errorf("stale write: got %v, want 409", err)
	}
	_, _, err = alice.PutExport(ctx, "default", &api.SyslogExport{Enabled: true, Facility: 24, AppName: "a b"}, 0)
	if d := cmp.Diff([]string{"address", "facility", "app_name"}, fieldsOf(t, err)); d != "" {
		t.Errorf("invalid export (-want +got):\n%s", d)
	}
	if _, _, err := e.client(t, "bob").Export(ctx, "default"); statusOf(err) != http.StatusNotFound {
		t.Errorf("bob reads default's export: got %v, want 404", err)
	}
	if _, _, err := e.client(t, "bob").PutExport(ctx, "default", in, 0); statusOf(err) != http.StatusForbidden {
		t.Errorf("bob writes default's export: got %v, want 403", err)
	}
	if _, _, err := e.client(t, "audrey").PutExport(ctx, "default", in, 0); statusOf(err) != http.StatusForbidden {
		t.Errorf("auditor writes the export: got %v, want 403", err)
	}
	if got, _, err := e.client(t, "audrey").Export(ctx, "default"); err != nil || got.Facility != 17 {
		t.Errorf("auditor reads the export: %+v, %v; want facility 17", got, err)
	}
}

// TestPolicyAPI: a tenant's verdict policy reads with its defaults, is
// written whole, refuses bad values field by field, and keeps tenants and
// auditors to what they may do. A rule carries its own action.
func TestPolicyAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice := e.client(t, "alice")
	got, v0, err := alice.Policy(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	defaults := &api.VerdictPolicy{Detected: api.ActionQuarantine, UnscannableLimit: api.ActionDeliver,
		UnscannableError: api.ActionDeliver, SubjectTag: "[Osprey detect]", DMARCReject: api.ActionQuarantine,
		DMARCQuarantine: api.ActionQuarantine, SpamTagScore: 6, SpamQuarantineScore: 15, SpamSubjectTag: "[SPAM]"}
	if d := cmp.Diff(defaults, got); d != "" || v0 != 0 {
		t.Errorf("never written, at %d (-want +got):\n%s", v0, d)
	}
	in := *defaults
	in.Detected, in.SubjectTag, in.ApplyDMARCPolicy = api.ActionTag, "[virus?]", true
	in.TagHeaders = []api.HeaderField{{Name: "X-Osprey-Tag", Value: "detected"}}
	out, v1, err := alice.PutPolicy(ctx, "default", &in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&in, out); d != "" || v1 == 0 {
		t.Errorf("stored policy at %d (-put +got):\n%s", v1, d)
	}
	// What is stored is what differs from the defaults.
	stored, err := e.store.GetPolicy(ctx, store.AllTenants(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetUnscannableLimit() != 0 || stored.GetSpamTagScore() != 0 || stored.GetDetected() != ospreyv1.VerdictAction_VERDICT_ACTION_TAG {
		t.Errorf("stored %v; want only what differs from the defaults", stored)
	}
	stale := in
	stale.SubjectTag = "[stale]"
	if _, _, err := alice.PutPolicy(ctx, "default", &stale, v1-1); statusOf(err) != http.StatusConflict {
		t.Errorf("stale write: got %v, want 409", err)
	}
	bad := api.VerdictPolicy{Detected: "bounce", SpamTagScore: 20, SpamQuarantineScore: 10,
		TagHeaders: []api.HeaderField{{Name: "Received", Value: "x"}, {Name: "Bad Name", Value: "y"}}}
	_, _, err = alice.PutPolicy(ctx, "default", &bad, 0)
	if d := cmp.Diff([]string{"detected"}, fieldsOf(t, err)); d != "" {
		t.Errorf("unknown action (-want +got):\n%s", d)
	}
	bad.Detected = ""
	_, _, err = alice.PutPolicy(ctx, "default", &bad, 0)
	if d := cmp.Diff([]string{"tag_headers[0].name", "tag_headers[1].name", "spam_quarantine_score"}, fieldsOf(t, err)); d != "" {
		t.Errorf("invalid policy (-want +got):\n%s", d)
	}
	if _, _, err := e.client(t, "bob").Policy(ctx, "default"); statusOf(err) != http.StatusNotFound {
		t.Errorf("bob reads default's policy: got %v, want 404", err)
	}
	if _, _, err := e.client(t, "audrey").PutPolicy(ctx, "default", &in, 0); statusOf(err) != http.StatusForbidden {
		t.Errorf("auditor writes the policy: got %v, want 403", err)
	}
	if got, _, err := e.client(t, "audrey").Policy(ctx, "default"); err != nil || got.Detected != api.ActionTag {
		t.Errorf("auditor reads the policy: %+v, %v; want detected tag", got, err)
	}

	r, err := alice.CreateRule(ctx, "default", api.Rule{Kind: api.RuleKind("sender"), Value: "evil@example.net",
		Severity: api.Severity("high"), Action: api.ActionDropNotifySender})
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != api.ActionDropNotifySender {
		t.Errorf("rule action %q, want %q", r.Action, api.ActionDropNotifySender)
	}
	_, err = alice.CreateRule(ctx, "default", api.Rule{Kind: api.RuleKind("sender"), Value: "x@example.net",
		Severity: api.Severity("high"), Action: "explode"})
	if d := cmp.Diff([]string{"action"}, fieldsOf(t, err)); d != "" {
		t.Errorf("rule with an unknown action (-want +got):\n%s", d)
	}
}

func TestAuditAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	seedScans(t, e, "default", "s1", 4, start)
	seedScans(t, e, "acme", "s2", 2, start.Add(time.Minute))
	if err := e.db.RecordRefusals(ctx, store.AllTenants(), "default", "s1", []sqlstore.Refusal{{
		Minute: start.Add(10 * time.Minute), ClientIP: "198.51.100.7", Reason: "recipient_refused", Count: 12,
		FirstAt: start.Add(10 * time.Minute), LastAt: start.Add(10*time.Minute + 30*time.Second),
		MailFrom: "spam@evil.example", Rcpt: "nobody@example.com",
	}}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RecordDeliveries(ctx, store.AllTenants(), "default", "s1", []sqlstore.Delivery{{
		MessageID: "s1-003", Sender: "alice@partner.test", Direction: "inbound", NextHop: "example.com",
		Host: "mx.example.com [192.0.2.25]:25", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Started: start.Add(20 * time.Minute), Took: 1500 * time.Millisecond,
		Recipients: []sqlstore.DeliveryRecipient{{Address: "bob@example.com", State: "delivered", Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4F"}},
	}}); err != nil {
		t.Fatal(err)
	}
	list := func(user string, q api.AuditQuery) []string {
		t.Helper()
		var got []string
		for range 20 {
			page, err := e.client(t, user).Audit(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				switch {
				case ev.Kind == api.AuditAccepted && ev.Message != nil:
					got = append(got, ev.Message.MessageID)
				case ev.Kind == api.AuditRefused && ev.Refusal != nil:
					got = append(got, fmt.Sprintf("%s x%d", ev.Refusal.Reason, ev.Refusal.Count))
				case ev.Kind == api.AuditDelivery && ev.Delivery != nil:
					d := ev.Delivery
					got = append(got, fmt.Sprintf("%s to %s at %s (%s, %d ms):", d.MessageID, d.NextHop, d.Host, d.TLS, d.TookMS))
					for _, r := range d.Recipients {
						got = append(got, fmt.Sprintf("  %s %s %d %s %s", r.Address, r.State, r.Code, r.Enhanced, r.Text))
					}
				default:
					t.Errorf("event %+v: kind and body disagree", ev)
				}
			}
			if q.PageToken = page.NextPageToken; q.PageToken == "" {
				return got
			}
		}
		t.Fatal("too many pages")
		return nil
	}
	attempt := []string{"s1-003 to example.com at mx.example.com [192.0.2.25]:25 (TLS 1.3 TLS_AES_128_GCM_SHA256, 1500 ms):",
		"  bob@example.com delivered 250 2.0.0 Ok: queued as 4F"}
	if d := cmp.Diff(append(attempt, "recipient_refused x12", "s1-003", "s1-002", "s1-001", "s1-000"), list("audrey", api.AuditQuery{Limit: 2})); d != "" {
		t.Errorf("the auditor's log (-want +got):\n%s", d)
	}
	if d := cmp.Diff(attempt, list("root", api.AuditQuery{Kind: api.AuditDelivery, Recipient: "bob@example.com"})); d != "" {
		t.Errorf("delivery attempts to a recipient (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"s2-001", "s2-000"}, list("root", api.AuditQuery{Tenant: "acme"})); d != "" {
		t.Errorf("acme's log (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"recipient_refused x12"}, list("root", api.AuditQuery{Kind: api.AuditRefused, ClientIP: "198.51.100.7"})); d != "" {
		t.Errorf("refusals of a client (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"s1-001"}, list("root", api.AuditQuery{Tenant: "default", Verdict: "detected", To: start.Add(2 * time.Second)})); d != "" {
		t.Errorf("detected messages before a time (-want +got):\n%s", d)
	}
	if _, err := e.client(t, "alice").Audit(ctx, api.AuditQuery{Tenant: "acme"}); statusOf(err) != http.StatusNotFound {
		t.Errorf("alice reads acme's log: got %v, want 404", err)
	}
	for _, bad := range []string{"kind=deleted", "client_ip=nope", "from=yesterday", "limit=501", "page_token=x", "colour=red"} {
		body := rawGet(t, e.url+"/api/v1/audit?"+bad, "root")
		if !strings.Contains(body, `"fields"`) {
			t.Errorf("?%s: got %s, want field errors", bad, body)
		}
	}
}
