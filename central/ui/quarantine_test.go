package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// quarantined records a gateway message of sensor that the central told
// its sensor to quarantine, as RecordScan does after the scan, at t.
func (e *env) quarantined(tenant, sensor, msg, subject string, t time.Time) {
	e.t.Helper()
	rec := &ospreyv1.MessageRecord{
		MessageId: msg, SensorId: sensor, Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "mallory@evil.example", RcptTo: []string{"bob@example.com", "carol@example.com"},
			Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND},
		Headers: &ospreyv1.HeaderSummary{Subject: subject}, Size: 2048, Verdict: "detected",
		Disposition: &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, Reason: "eicar: EICAR test file in eicar.com"},
	}
	if _, _, err := e.db.RecordScan(e.t.Context(), store.AllTenants(), rec, nil, t); err != nil {
		e.t.Fatal(err)
	}
}

// quarantineFixture quarantines three messages of s1 (tenant default)
// and one of s2 (acme), a minute apart; no sensor is connected.
func quarantineFixture(e *env) {
	e.t.Helper()
	t0 := e.clock.Now().Add(-time.Hour)
	e.quarantined("default", "s1", "m1", "Invoice 42", t0)
	e.quarantined("default", "s1", "m2", "Payment due", t0.Add(time.Minute))
	e.quarantined("acme", "s2", "m3", "Invoice for acme", t0.Add(2*time.Minute))
	e.quarantined("default", "s1", "m4", "Your parcel", t0.Add(3*time.Minute))
}

// listed returns the messages the Quarantine page lists, as sensor/message.
func listed(t *testing.T, p page) []string {
	t.Helper()
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && attr(n, "data-message") != "" {
			out = append(out, attr(n, "data-sensor")+"/"+attr(n, "data-message"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.doc(t))
	return out
}

// TestQuarantineListInScope: each user sees the messages of the tenants
// they may see, newest first; an administrator sees the tenant of each;
// a message held on a sensor that is not connected says "unavailable".
func TestQuarantineListInScope(t *testing.T) {
	e := newEnv(t)
	quarantineFixture(e)
	for _, c := range []struct {
		user string
		want []string
	}{
		{"root", []string{"s1/m4", "s2/m3", "s1/m2", "s1/m1"}},
		{"alice", []string{"s1/m4", "s1/m2", "s1/m1"}},
		{"audrey", []string{"s1/m4", "s1/m2", "s1/m1"}},
		{"bob", []string{"s2/m3"}},
	} {
		t.Run(c.user, func(t *testing.T) {
			p := e.signedIn(c.user).get("/quarantine")
			if p.status != http.StatusOK {
				t.Fatalf("status %d", p.status)
			}
			if d := cmp.Diff(c.want, listed(t, p)); d != "" {
				t.Errorf("listed (-want +got):\n%s", d)
			}
			if !strings.Contains(p.body, `<a href="/quarantine" aria-current="page">Quarantine</a>`) {
				t.Error("the navigation does not show the Quarantine page as current")
			}
			table := text(byID(p.doc(t), "quarantine-table"))
			if !strings.Contains(table, "quarantined unavailable") || !strings.Contains(table, "eicar: EICAR test file in eicar.com") ||
				!strings.Contains(table, "bob@example.com, carol@example.com") {
				t.Errorf("the table lacks the state, the reason or the recipients:\n%s", table)
			}
			if hasTenant := byID(p.doc(t), "qf-tenant") != nil; hasTenant != (c.user == "root") {
				t.Errorf("tenant filter shown: %v", hasTenant)
			}
		})
	}
}

// TestQuarantineListFilters: each filter selects its messages, a value
// that cannot be used is named beside its field, and pages follow.
func TestQuarantineListFilters(t *testing.T) {
	e := newEnv(t)
	quarantineFixture(e)
	if err := e.db.UpdateQuarantined(t.Context(), store.AllTenants(), "default", "s1", "m2", sqlstore.QuarantineChange{
		State: sqlstore.QuarantineReleased, Event: sqlstore.QuarantineEvent{At: e.clock.Now(), Action: "released", Actor: "alice"}}); err != nil {
		t.Fatal(err)
	}
	since := e.clock.Now().Add(-time.Hour).Add(90 * time.Second).Format("2006-01-02T15:04:05")
	root := e.signedIn("root")
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"tenant=acme", []string{"s2/m3"}},
		{"sensor=s1", []string{"s1/m4", "s1/m2", "s1/m1"}},
		{"state=released", []string{"s1/m2"}},
		{"state=quarantined", []string{"s1/m4", "s2/m3", "s1/m1"}},
		{"subject=INVOICE", []string{"s2/m3", "s1/m1"}},
		{"sender=mallory&recipient=carol", []string{"s1/m4", "s2/m3", "s1/m2", "s1/m1"}},
		{"recipient=dave", nil},
		{"since=" + url.QueryEscape(since), []string{"s1/m4", "s2/m3"}},
	} {
		t.Run(c.query, func(t *testing.T) {
			p := root.get("/quarantine?" + c.query)
			if p.status != http.StatusOK {
				t.Fatalf("status %d", p.status)
			}
			if d := cmp.Diff(c.want, listed(t, p)); d != "" {
				t.Errorf("listed (-want +got):\n%s", d)
			}
			if c.want == nil && !strings.Contains(text(byID(p.doc(t), "quarantine-empty")), "matches the filter") {
				t.Error("an empty result does not say that nothing matches")
			}
		})
	}
	// A tenant operator asking for another tenant's gets their own.
	if got := listed(t, e.signedIn("bob").get("/quarantine?tenant=default")); !cmp.Equal(got, []string{"s2/m3"}) {
		t.Errorf("bob asking for default's: %v", got)
	}

	p := root.get("/quarantine?state=lost&since=yesterday")
	if p.status != http.StatusBadRequest {
		t.Errorf("bad filter: status %d, want 400", p.status)
	}
	for id, want := range map[string]string{"qf-state": "one of the states listed", "qf-since": "not a time"} {
		if got := fieldError(t, p, id); !strings.Contains(got, want) {
			t.Errorf("beside #%s: %q, want %q", id, got, want)
		}
	}
	if p := root.get("/quarantine?page_token=nonsense"); p.status != http.StatusBadRequest ||
		!strings.Contains(text(byID(p.doc(t), "filter-errors")), "start again from the newest") {
		t.Errorf("a page token of nothing: status %d", p.status)
	}
}

// TestQuarantineListPages: fifty messages a page, newest first; the next
// page continues where the first ended, and leads back to the first.
func TestQuarantineListPages(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now().Add(-2 * time.Hour)
	for i := range 53 {
		e.quarantined("default", "s1", fmt.Sprintf("m%03d", i), fmt.Sprintf("message %d", i), t0.Add(time.Duration(i)*time.Minute))
	}
	b := e.signedIn("alice")
	first := b.get("/quarantine?sensor=s1")
	rows := listed(t, first)
	if len(rows) != 50 || rows[0] != "s1/m052" || rows[49] != "s1/m003" {
		t.Fatalf("first page: %d rows, %v … %v", len(rows), rows[:1], rows[len(rows)-1:])
	}
	next := byID(first.doc(t), "quarantine-older")
	if next == nil {
		t.Fatal("no link to older messages")
	}
	second := b.get(html.UnescapeString(attr(next, "href")))
	if d := cmp.Diff([]string{"s1/m002", "s1/m001", "s1/m000"}, listed(t, second)); d != "" {
		t.Errorf("second page (-want +got):\n%s", d)
	}
	if byID(second.doc(t), "quarantine-older") != nil || attr(byID(second.doc(t), "quarantine-first"), "href") != "/quarantine?sensor=s1" {
		t.Error("the last page links older messages, or not back to the first with the filter")
	}
}

// TestQuarantineMessagePage: a message's page shows its envelope, its
// reason and its history; with its sensor not connected, the preview says
// so and a download link waits for the sensor. Writers get the actions,
// an auditor none; another tenant's message is not found.
func TestQuarantineMessagePage(t *testing.T) {
	e := newEnv(t)
	quarantineFixture(e)
	for _, c := range []struct {
		user    string
		actions bool
	}{{"root", true}, {"alice", true}, {"audrey", false}} {
		t.Run(c.user, func(t *testing.T) {
			p := e.signedIn(c.user).get("/quarantine/s1/m2?back=" + url.QueryEscape("/quarantine?sensor=s1"))
			if p.status != http.StatusOK {
				t.Fatalf("status %d", p.status)
			}
			doc := p.doc(t)
			for id, want := range map[string]string{
				"qm-title":         "Payment due quarantined unavailable: the sensor is not connected",
				"qm-envelope":      "MAIL FROM mallory@evil.example RCPT TO bob@example.com carol@example.com Verdict detected Why eicar: EICAR test file in eicar.com",
				"qm-history":       "Quarantined central eicar: EICAR test file in eicar.com",
				"qm-preview-error": "No preview: unavailable: the sensor is not connected.",
			} {
				if got := text(byID(doc, id)); !strings.Contains(squash(got), squash(want)) {
					t.Errorf("#%s says %q, want %q", id, got, want)
				}
			}
			if !strings.Contains(p.body, `<a href="/quarantine?sensor=s1">Quarantine</a>`) {
				t.Error("the breadcrumb does not lead back to the page of the list")
			}
			if byID(doc, "qm-download") != nil {
				t.Error("a download link while the sensor is not connected")
			}
			if got := byID(doc, "qm-actions") != nil; got != c.actions {
				t.Errorf("actions shown: %v, want %v", got, c.actions)
			}
			if !c.actions && strings.Contains(p.body, `method="post" action="/quarantine/`) {
				t.Error("an auditor is offered a form that acts on the message")
			}
		})
	}
	for _, path := range []string{"/quarantine/s2/m3", "/quarantine/s1/m3", "/quarantine/s1/nope"} {
		if p := e.signedIn("alice").get(path); p.status != http.StatusNotFound {
			t.Errorf("alice GET %s: %d, want 404", path, p.status)
		}
	}
	if p := e.signedIn("root").get("/quarantine/s1/m2?back=" + url.QueryEscape("https://evil.example/")); strings.Contains(p.body, `href="https://evil.example/"`) {
		t.Error("the breadcrumb leads to another site")
	}
}

// TestQuarantineActionsWaitForSensor: with the sensor not connected a
// release waits for it: the page says so, lists it pending with who asked,
// and the history has it. A release to nobody does nothing; an action on
// a message no longer held says so; an auditor's POST is refused and
// another tenant's message is not found.
func TestQuarantineActionsWaitForSensor(t *testing.T) {
	e := newEnv(t)
	quarantineFixture(e)
	alice := e.signedIn("alice")
	back := "/quarantine/s1/m2?back=%2Fquarantine"
	alice.get(back)

	p := alice.post("/quarantine/s1/m2/release-to", url.Values{"to": {"analyst@example.com, soc@example.com"}, "return": {back}})
	if p.status != http.StatusSeeOther || p.location != back {
		t.Fatalf("release to: %d to %q, want 303 back to %s", p.status, p.location, back)
	}
	page := alice.get(back)
	if flash := text(byID(page.doc(t), "main")); !strings.Contains(flash,
		"Release to analyst@example.com, soc@example.com of message m2 waits for the sensor: sensor s1 is not connected, and it is carried out when the sensor is back.") {
		t.Errorf("after the release the page says:\n%s", flash)
	}
	if got := text(byID(page.doc(t), "qm-pending")); got != "Release to analyst@example.com, soc@example.com waits for the sensor (asked by alice)." {
		t.Errorf("pending: %q", got)
	}
	if got := text(byID(page.doc(t), "qm-history")); !strings.Contains(squash(got), squash("Release to other addresses asked alice waits for the sensor analyst@example.com, soc@example.com")) {
		t.Errorf("history: %q", got)
	}
	row, _, err := e.db.GetQuarantined(t.Context(), store.AllTenants(), "default", "s1", "m2")
	if err != nil || row.Pending != "release_to" || row.PendingBy != "alice" || !cmp.Equal(row.PendingTo, []string{"analyst@example.com", "soc@example.com"}) {
		t.Errorf("the row: %+v, %v", row, err)
	}
	if !strings.Contains(text(byID(alice.get("/quarantine").doc(t), "quarantine-table")), "Release to analyst@example.com, soc@example.com waits for the sensor (asked by alice)") {
		t.Error("the list does not show the pending release")
	}

	p = alice.post("/quarantine/s1/m1/release-to", url.Values{"to": {"  "}})
	if p.location != "/quarantine/s1/m1" || !strings.Contains(alice.get("/quarantine/s1/m1").body, "give the addresses to release a copy to") {
		t.Errorf("a release to nobody: %d to %q", p.status, p.location)
	}
	if row, _, _ := e.db.GetQuarantined(t.Context(), store.AllTenants(), "default", "s1", "m1"); row.Pending != "" {
		t.Errorf("a release to nobody is pending: %+v", row)
	}

	if err := e.db.UpdateQuarantined(t.Context(), store.AllTenants(), "default", "s1", "m4", sqlstore.QuarantineChange{
		State: sqlstore.QuarantineEvicted, Event: sqlstore.QuarantineEvent{At: e.clock.Now(), Action: "evicted", Actor: "sensor"}}); err != nil {
		t.Fatal(err)
	}
	if p := alice.post("/quarantine/s1/m4/delete", nil); p.location != "/quarantine/s1/m4" {
		t.Errorf("delete of an evicted message: %d to %q", p.status, p.location)
	}
	evicted := alice.get("/quarantine/s1/m4")
	if !strings.Contains(evicted.body, "Nothing was done: the message is no longer in the quarantine") ||
		byID(evicted.doc(t), "qm-actions") != nil || byID(evicted.doc(t), "qm-not-held") == nil {
		t.Error("the evicted message's page does not say that nothing was done, or still offers actions")
	}

	for _, elsewhere := range []string{"//evil.example/", "/quarantine/s1/m1", "/quarantine/s1/m22", "https://evil.example/quarantine/s1/m2"} {
		if p := alice.post("/quarantine/s1/m2/delete", url.Values{"return": {elsewhere}}); p.location != "/quarantine/s1/m2" {
			t.Errorf("return %q: redirected to %q, want /quarantine/s1/m2", elsewhere, p.location)
		}
	}
	if p := alice.post("/quarantine/s1/m2/bounce", nil); p.status != http.StatusNotFound {
		t.Errorf("an unknown action: %d, want 404", p.status)
	}

	audrey := e.signedIn("audrey")
	audrey.get("/quarantine/s1/m1")
	for _, action := range []string{"release", "release-to", "delete"} {
		if p := audrey.post("/quarantine/s1/m1/"+action, url.Values{"to": {"audrey@example.com"}}); p.status != http.StatusForbidden {
			t.Errorf("an auditor's %s: %d, want 403", action, p.status)
		}
	}
	if row, history, _ := e.db.GetQuarantined(t.Context(), store.AllTenants(), "default", "s1", "m1"); row.Pending != "" || len(history) != 1 {
		t.Errorf("after the auditor's POSTs: %+v, %d steps of history", row, len(history))
	}
	bob := e.signedIn("bob")
	bob.get("/quarantine")
	if p := bob.post("/quarantine/s1/m1/release", nil); p.status != http.StatusNotFound {
		t.Errorf("another tenant's release: %d, want 404", p.status)
	}
}

// TestQuarantineDownloadNeedsSensor: the .eml of a message whose sensor
// is not connected cannot be had, and the page says why; an auditor may
// download (the same answer), another tenant's is not found, and without
// a session the browser goes to the sign-in page.
func TestQuarantineDownloadNeedsSensor(t *testing.T) {
	e := newEnv(t)
	quarantineFixture(e)
	for _, user := range []string{"alice", "audrey"} {
		p := e.signedIn(user).get("/quarantine/s1/m1/eml")
		if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "Sensor s1 is not connected: the message is on the sensor") ||
			p.header.Get("Content-Disposition") != "" {
			t.Errorf("%s's download: %d %q", user, p.status, p.header.Get("Content-Disposition"))
		}
	}
	if p := e.signedIn("bob").get("/quarantine/s1/m1/eml"); p.status != http.StatusNotFound {
		t.Errorf("another tenant's download: %d, want 404", p.status)
	}
	if p := e.browser().get("/quarantine/s1/m1/eml"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/signin?next=") {
		t.Errorf("without a session: %d to %q", p.status, p.location)
	}
}

// TestQuarantineRendersSenderTextEscaped: what the sender wrote reaches
// the pages as text.
func TestQuarantineRendersSenderTextEscaped(t *testing.T) {
	e := newEnv(t)
	e.quarantined("default", "s1", "m1", `<img src=x onerror=alert(1)> "quoted"`, e.clock.Now())
	b := e.signedIn("alice")
	for _, path := range []string{"/quarantine", "/quarantine/s1/m1"} {
		p := b.get(path)
		if strings.Contains(p.body, "<img src=x") || !strings.Contains(p.body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("GET %s: the subject is not escaped", path)
		}
	}
}
