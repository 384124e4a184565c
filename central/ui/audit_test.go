package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// auditT0 is when the audit tests' mail arrives, give or take minutes.
var auditT0 = time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC)

// auditMessage is the record of a clean message that sensor took over
// SMTP at `at`, as an upload stores it: its envelope, its header summary,
// the node that took it a second later.
func auditMessage(tenant, sensor, id string, at time.Time, from, subject string, rcpts ...string) *ospreyv1.MessageRecord {
	return &ospreyv1.MessageRecord{
		MessageId: id, SensorId: sensor, Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: from, RcptTo: rcpts, ClientAddr: "192.0.2.10:40000", Helo: "mx.example.org",
			ReceivedAt: timestamppb.New(at)},
		Headers: &ospreyv1.HeaderSummary{From: "Sender <" + from + ">", To: rcpts, Subject: subject,
			MessageId: "<" + id + "@mail.example>"},
		Size: 2048, Sha256: strings.Repeat("ab", 32), Node: "node-1", Verdict: "clean",
		UploadedAt: timestamppb.New(at.Add(time.Second)),
	}
}

// record stores rec, with its alert when alert is not nil, and returns the
// record as stored.
func (e *env) record(rec *ospreyv1.MessageRecord, alert *ospreyv1.Alert) *ospreyv1.MessageRecord {
	e.t.Helper()
	stored, dup, err := e.db.RecordScan(e.t.Context(), store.AllTenants(), rec, alert, rec.GetUploadedAt().AsTime())
	if err != nil || dup {
		e.t.Fatalf("record %s/%s: duplicate %v, %v", rec.GetSensorId(), rec.GetMessageId(), dup, err)
	}
	return stored
}

// refuse records refusals of sensor in tenant, as a sensor's report does.
func (e *env) refuse(tenant, sensor string, refusals ...sqlstore.Refusal) {
	e.t.Helper()
	if err := e.db.RecordRefusals(e.t.Context(), store.AllTenants(), tenant, sensor, refusals); err != nil {
		e.t.Fatal(err)
	}
}

// refusal is count refusals from client for reason, the last at `at`.
func refusal(at time.Time, client, reason string, count int64, from, rcpt, detail string) sqlstore.Refusal {
	return sqlstore.Refusal{Minute: at.Truncate(time.Minute), ClientIP: client, Reason: reason, Count: count,
		FirstAt: at.Truncate(time.Minute), LastAt: at, MailFrom: from, Rcpt: rcpt, Detail: detail}
}

// auditRows returns the rows of a page's audit table as "kind key", in
// order; none when the page has no table.
func auditRows(t *testing.T, p page) []string {
	t.Helper()
	rows := []string{}
	table := byID(p.doc(t), "audit-table")
	if table == nil {
		return rows
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			if key, ok := attrOK(n, "data-key"); ok {
				rows = append(rows, attr(n, "data-event")+" "+key)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(table)
	return rows
}

// filterValue returns the value a filter of the form shows: an input's
// value, or the value of a drop-down's selected option ("" for none).
func filterValue(t *testing.T, p page, id string) string {
	t.Helper()
	el := byID(p.doc(t), id)
	if el == nil {
		t.Fatalf("no #%s in the page", id)
	}
	if el.Data != "select" {
		return attr(el, "value")
	}
	for c := el.FirstChild; c != nil; c = c.NextSibling {
		if _, ok := attrOK(c, "selected"); ok && c.Type == html.ElementNode {
			return attr(c, "value")
		}
	}
	return ""
}

// filterError returns the error shown beside the filter with id: the text
// of the element id+"-err", which must be in the same filter as the input.
func filterError(t *testing.T, p page, id string) string {
	t.Helper()
	doc := p.doc(t)
	input := byID(doc, id)
	if input == nil {
		t.Fatalf("no #%s in the page", id)
	}
	errEl := byID(doc, id+"-err")
	if errEl == nil {
		return ""
	}
	if errEl.Parent != input.Parent || !strings.Contains(attr(input.Parent, "class"), "has-error") {
		t.Fatalf("the error #%s-err is not in the filter of #%s, marked as having one", id, id)
	}
	if attr(input, "aria-invalid") != "true" || attr(input, "aria-describedby") != id+"-err" {
		t.Errorf("#%s is not marked invalid and described by its error", id)
	}
	return text(errEl)
}

func TestAuditLogShowsEventsInScope(t *testing.T) {
	e := newEnv(t)
	e.record(auditMessage("default", "s1", "m1", auditT0, "alice@example.org", "default quarterly report", "ceo@example.com"), nil)
	e.record(auditMessage("acme", "s2", "m2", auditT0.Add(time.Minute), "bob@acme.example", "acme invoice", "ap@acme.example"), nil)
	e.refuse("default", "s1", refusal(auditT0.Add(2*time.Minute), "203.0.113.9", "client_refused", 4, "", "", "not in the clients list"))
	e.refuse("acme", "s2", refusal(auditT0.Add(3*time.Minute), "203.0.113.77", "recipient_refused", 1, "x@y.example", "hr@acme.example", ""))
	defaultEvents := []string{"refused s1/" + fmt.Sprint(auditT0.Add(2*time.Minute).Unix()) + "/203.0.113.9/client_refused", "accepted s1/m1"}
	acmeEvents := []string{"refused s2/" + fmt.Sprint(auditT0.Add(3*time.Minute).Unix()) + "/203.0.113.77/recipient_refused", "accepted s2/m2"}
	for _, tc := range []struct {
		user, query string
		want        []string
	}{
		{"root", "", []string{acmeEvents[0], defaultEvents[0], acmeEvents[1], defaultEvents[1]}},
		{"alice", "", defaultEvents},
		{"audrey", "", defaultEvents},
		{"bob", "", acmeEvents},
		// A tenant operator's tenant filter is ignored: they see their own.
		{"bob", "tenant=default", acmeEvents},
	} {
		t.Run(tc.user+"?"+tc.query, func(t *testing.T) {
			p := e.signedIn(tc.user).get("/audit?" + tc.query)
			if p.status != http.StatusOK {
				t.Fatalf("got %d\n%s", p.status, p.body)
			}
			if d := cmp.Diff(tc.want, auditRows(t, p)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			doc := p.doc(t)
			if hasTenant := byID(doc, "au-tenant") != nil; hasTenant != (tc.user == "root") {
				t.Errorf("the tenant filter is shown: %v", hasTenant)
			}
			// A refusal's detail row spans every column, and its button
			// names it.
			cols := strings.Count(p.body, `<th scope="col"`)
			spans := regexp.MustCompile(`<tr class="refusal-detail" id="(refusal-\d+)">\s*<td colspan="(\d+)">`).FindAllStringSubmatch(p.body, -1)
			if want := len(slices.DeleteFunc(slices.Clone(tc.want), func(e string) bool { return !strings.HasPrefix(e, "refused ") })); len(spans) != want {
				t.Errorf("%d refusal detail rows, want %d", len(spans), want)
			}
			for _, m := range spans {
				if m[2] != fmt.Sprint(cols) || !strings.Contains(p.body, `aria-controls="`+m[1]+`"`) {
					t.Errorf("the refusal's detail row %s spans %s columns of %d, or no button names it", m[1], m[2], cols)
				}
			}
			if !strings.Contains(p.body, `href="/audit" aria-current="page">Audit log</a>`) {
				t.Errorf("the navigation does not mark the Audit log as the current page")
			}
			if tc.user != "root" && (strings.Contains(p.body, "sensor-s1") == strings.Contains(p.body, "sensor-s2")) {
				t.Errorf("the sensors of the page are not those of the user's tenant")
			}
		})
	}

	// Every column of a row of each kind, and the refusal's detail.
	p := e.signedIn("root").get("/audit")
	doc := p.doc(t)
	table := byID(doc, "audit-table")
	if table == nil {
		t.Fatal("no audit table")
	}
	for _, want := range []string{
		"2026-02-28 09:00:00 UTC accepted SMTP default sensor-s1 192.0.2.10 alice@example.org ceo@example.com default quarterly report clean 1",
		"2026-02-28 09:02:00 UTC refused default sensor-s1 203.0.113.9 — — — client_refused client not in the sensor's clients",
		"Refused 4 times in the minute of 2026-02-28 09:02:00 UTC", "Detail not in the clients list",
	} {
		if !strings.Contains(squash(text(table)), squash(want)) {
			t.Errorf("the audit table lacks %q:\n%s", want, text(table))
		}
	}
	if p := e.signedIn("audrey").get("/alerts"); !strings.Contains(p.body, `<li><a href="/alerts" aria-current="page">Alerts</a></li>
      <li><a href="/audit">Audit log</a></li>`) {
		t.Errorf("the navigation has no Audit log entry after Alerts")
	}
}

// auditFixture records, in tenant default, three messages on two sensors
// (s1 and s3), two counts of refusals, and a message of acme, and returns
// the events' row keys by name.
func auditFixture(e *env) map[string]string {
	e.t.Helper()
	if _, err := e.store.CreateSensor(e.t.Context(), store.AllTenants(), &ospreyv1.Sensor{Id: "s3", Tenant: "default", Name: "sensor-s3",
		State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
		e.t.Fatal(err)
	}
	at := func(min int) time.Time { return auditT0.Add(time.Duration(min) * time.Minute) }
	m1 := auditMessage("default", "s1", "m1", at(1), "alice@example.org", "Quarterly report", "ceo@example.com", "cfo@example.com")
	m1.Envelope.ClientAddr = "192.0.2.1:40001"
	e.record(m1, nil)
	m2 := auditMessage("default", "s1", "m2", at(2), "bob@example.net", "Invoice 4471", "CEO@example.com")
	m2.Envelope.ClientAddr, m2.Verdict = "192.0.2.2:40002", "detected"
	e.record(m2, eicarAlert("Invoice 4471", ospreyv1.Severity_SEVERITY_HIGH))
	m3 := auditMessage("default", "s3", "m3", at(3), "mallory@evil.example", "Password reset", "ap@example.com")
	m3.Envelope.ClientAddr, m3.Verdict = "192.0.2.1:40003", "unscannable: limit"
	e.record(m3, nil)
	e.record(auditMessage("acme", "s2", "m4", at(3), "alice@example.org", "Acme's own", "ceo@example.com"), nil)
	e.refuse("default", "s1", refusal(at(2).Add(50*time.Second), "198.51.100.7", "recipient_refused", 3, "spam@evil.example", "nobody@example.com", ""))
	e.refuse("default", "s3", refusal(at(4), "198.51.100.7", "tls_invalid_client_certificate", 1, "", "", "x509: certificate signed by unknown authority"))
	return map[string]string{
		"m1": "accepted s1/m1", "m2": "accepted s1/m2", "m3": "accepted s3/m3", "m4": "accepted s2/m4",
		"r1": fmt.Sprintf("refused s1/%d/198.51.100.7/recipient_refused", at(2).Unix()),
		"r2": fmt.Sprintf("refused s3/%d/198.51.100.7/tls_invalid_client_certificate", at(4).Unix()),
	}
}

func TestAuditLogFilters(t *testing.T) {
	e := newEnv(t)
	keys := auditFixture(e)
	b := e.signedIn("root")
	minute := func(min int) string { return auditT0.Add(time.Duration(min) * time.Minute).Format("2006-01-02T15:04") }
	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string
		// shown is how the form shows a filter when not as it was asked.
		shown map[string]string
	}{
		{"everything", nil, []string{"r2", "m3", "m4", "r1", "m2", "m1"}, nil},
		{"one tenant", url.Values{"tenant": {"default"}}, []string{"r2", "m3", "r1", "m2", "m1"}, nil},
		{"another tenant", url.Values{"tenant": {"acme"}}, []string{"m4"}, nil},
		{"time range", url.Values{"tenant": {"default"}, "from": {minute(2)}, "to": {minute(3)}}, []string{"r1", "m2"}, nil},
		{"time range in RFC 3339", url.Values{"from": {auditT0.Add(3 * time.Minute).Format(time.RFC3339)}},
			[]string{"r2", "m3", "m4"}, map[string]string{"from": minute(3)}},
		{"a date", url.Values{"to": {"2026-02-28"}}, []string{}, map[string]string{"to": "2026-02-28T00:00"}},
		{"refused", url.Values{"kind": {"refused"}}, []string{"r2", "r1"}, nil},
		{"accepted", url.Values{"kind": {"accepted"}, "tenant": {"default"}}, []string{"m3", "m2", "m1"}, nil},
		{"sender, any part, any case", url.Values{"sender": {"ALICE@"}}, []string{"m4", "m1"}, nil},
		{"sender of messages and refusals", url.Values{"sender": {"evil.example"}}, []string{"m3", "r1"}, nil},
		{"recipient, whole, any case", url.Values{"recipient": {"CEO@example.com"}, "tenant": {"default"}}, []string{"m2", "m1"}, nil},
		{"recipient of a refusal", url.Values{"recipient": {"nobody@example.com"}}, []string{"r1"}, nil},
		{"recipient is not a part", url.Values{"recipient": {"example.com"}}, []string{}, nil},
		{"subject", url.Values{"subject": {"invoice"}}, []string{"m2"}, nil},
		{"message id with brackets", url.Values{"message_id": {"<m3@mail.example>"}}, []string{"m3"}, nil},
		{"message id without", url.Values{"message_id": {"m3@mail.example"}}, []string{"m3"}, nil},
		{"client", url.Values{"client_ip": {"192.0.2.1"}}, []string{"m3", "m1"}, nil},
		{"client of refusals", url.Values{"client_ip": {"198.51.100.7"}}, []string{"r2", "r1"}, nil},
		{"sensor", url.Values{"sensor": {"s3"}}, []string{"r2", "m3"}, nil},
		{"unknown sensor", url.Values{"sensor": {"nope"}}, []string{}, nil},
		{"verdict", url.Values{"verdict": {"detected"}}, []string{"m2"}, nil},
		{"verdict with a colon", url.Values{"verdict": {"unscannable: limit"}}, []string{"m3"}, nil},
		{"verdict not known here", url.Values{"verdict": {"quarantined"}}, []string{}, nil},
		{"reason", url.Values{"reason": {"tls_invalid_client_certificate"}}, []string{"r2"}, nil},
		{"reason and kind accepted", url.Values{"reason": {"recipient_refused"}, "kind": {"accepted"}}, []string{}, nil},
		{"combined", url.Values{"sender": {"evil"}, "client_ip": {"198.51.100.7"}, "kind": {"refused"}}, []string{"r1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/audit?" + tc.query.Encode())
			if p.status != http.StatusOK {
				t.Fatalf("got %d\n%s", p.status, p.body)
			}
			want := []string{}
			for _, name := range tc.want {
				want = append(want, keys[name])
			}
			if d := cmp.Diff(want, auditRows(t, p)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			// The form shows the filter as it was asked.
			ids := map[string]string{"from": "au-from", "to": "au-to", "kind": "au-kind", "sender": "au-sender",
				"recipient": "au-recipient", "subject": "au-subject", "message_id": "au-message-id", "client_ip": "au-client",
				"sensor": "au-sensor", "verdict": "au-verdict", "reason": "au-reason", "tenant": "au-tenant"}
			for k, v := range tc.query {
				want := v[0]
				if s, ok := tc.shown[k]; ok {
					want = s
				}
				if got := filterValue(t, p, ids[k]); got != want {
					t.Errorf("the form shows %s=%q, want %q", k, got, want)
				}
			}
			if len(want) == 0 && !strings.Contains(p.body, "Nothing on this page of the log matches the filter") {
				t.Errorf("an empty result does not say so")
			}
		})
	}
}

func TestAuditLogFieldErrors(t *testing.T) {
	e := newEnv(t)
	auditFixture(e)
	b := e.signedIn("root")
	for _, tc := range []struct {
		name  string
		query string
		// errs are the messages beside the fields, by input id.
		errs map[string]string
	}{
		{"times that are not", "from=yesterday&to=2026-13-01", map[string]string{
			"au-from": "not a time", "au-to": "not a time"}},
		{"to before from", "from=2026-03-02&to=2026-03-01", map[string]string{"au-to": "must be after from"}},
		{"client", "client_ip=mail.example.com", map[string]string{"au-client": "not an IP address"}},
		{"kind", "kind=deleted", map[string]string{"au-kind": "must be accepted, refused, delivery or quarantine"}},
		{"subject too long", "subject=" + strings.Repeat("x", 300), map[string]string{"au-subject": "at most 256 bytes"}},
		{"sender too long", "sender=" + strings.Repeat("x", 300), map[string]string{"au-sender": "at most 256 bytes"}},
		{"sensor", "sensor=S%2F1", map[string]string{"au-sensor": "not a sensor id"}},
		{"tenant", "tenant=Not+A+Tenant", map[string]string{"au-tenant": "not a tenant id"}},
		{"every store error at once", "client_ip=x&kind=y&message_id=" + strings.Repeat("m", 257), map[string]string{
			"au-client": "not an IP address", "au-kind": "must be accepted, refused, delivery or quarantine", "au-message-id": "at most 256 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/audit?" + tc.query)
			if p.status != http.StatusBadRequest {
				t.Fatalf("got %d, want 400", p.status)
			}
			for _, id := range []string{"au-from", "au-to", "au-kind", "au-sensor", "au-tenant", "au-sender", "au-recipient",
				"au-subject", "au-message-id", "au-client", "au-verdict", "au-reason"} {
				got := filterError(t, p, id)
				if want, ok := tc.errs[id]; !ok && got != "" {
					t.Errorf("#%s has the error %q, want none", id, got)
				} else if !strings.Contains(got, want) {
					t.Errorf("#%s has the error %q, want %q", id, got, want)
				}
			}
			summary := byID(p.doc(t), "filter-errors")
			if summary == nil {
				t.Fatal("no summary of the errors")
			}
			if items := strings.Count(renderHTML(t, summary), "<li>"); items != len(tc.errs) {
				t.Errorf("the summary lists %d errors, want %d: %s", items, len(tc.errs), text(summary))
			}
			if rows := auditRows(t, p); len(rows) != 0 {
				t.Errorf("a refused filter listed %v", rows)
			}
		})
	}
	p := b.get("/audit?page_token=forged")
	if p.status != http.StatusBadRequest || !strings.Contains(text(byID(p.doc(t), "filter-errors")), "Page: not a page token") {
		t.Errorf("a forged page token: got %d", p.status)
	}
}

// renderHTML writes n back as HTML.
func renderHTML(t *testing.T, n *html.Node) string {
	t.Helper()
	var b strings.Builder
	if err := html.Render(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var auditOlderRE = regexp.MustCompile(`href="(/audit\?[^"]*)" rel="next"`)

// TestAuditLogPages: messages and refusals interleaved in time are paged
// together, newest first, each once, with the filter kept.
func TestAuditLogPages(t *testing.T) {
	e := newEnv(t)
	start := auditT0
	var want []string
	for i := range 30 {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		e.record(auditMessage("default", "s1", fmt.Sprintf("m%02d", i), at, fmt.Sprintf("paging-%02d@example.org", i), "paged"), nil)
		client := fmt.Sprintf("198.51.100.%d", i)
		r := refusal(at.Add(5*time.Second), client, "too_many_errors", 1, fmt.Sprintf("paging-%02d@example.net", i), "", "")
		e.refuse("default", "s1", r)
		want = append(want, fmt.Sprintf("accepted s1/m%02d", i), fmt.Sprintf("refused s1/%d/%s/too_many_errors", r.Minute.Unix(), client))
	}
	slices.Reverse(want)
	// One that the filter leaves out.
	e.record(auditMessage("default", "s1", "other", start.Add(time.Minute), "someone@example.org", "not paged"), nil)

	b := e.signedIn("alice")
	p := b.get("/audit?sender=PAGING")
	first := auditRows(t, p)
	if len(first) != 50 {
		t.Fatalf("first page: %d rows, want 50", len(first))
	}
	if strings.Contains(p.body, `">← Newest</a>`) {
		t.Errorf("the first page links to itself as the newest")
	}
	m := auditOlderRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no link to older events")
	}
	next := html.UnescapeString(m[1])
	if u, _ := url.Parse(next); u.Query().Get("sender") != "PAGING" || u.Query().Get("page_token") == "" {
		t.Errorf("the Older link %q does not keep the filter", next)
	}
	p = b.get(next)
	second := auditRows(t, p)
	if d := cmp.Diff(want, append(first, second...)); d != "" {
		t.Errorf("both pages (-want +got):\n%s", d)
	}
	if auditOlderRE.MatchString(p.body) {
		t.Errorf("the last page links to older events")
	}
	if !strings.Contains(p.body, `href="/audit?sender=PAGING">← Newest</a>`) {
		t.Errorf("the second page does not link back to the newest")
	}
	// A message leads to its detail, and the detail back to this page.
	link := regexp.MustCompile(`href="(/audit/default/s1/m0[0-9]\?back=[^"]+)"`).FindStringSubmatch(p.body)
	if link == nil {
		t.Fatalf("no link to a message with the way back")
	}
	d := b.get(html.UnescapeString(link[1]))
	if d.status != http.StatusOK || !strings.Contains(d.body, `<a href="`+html.EscapeString(next)+`">Audit log</a>`) {
		t.Errorf("the message does not lead back to the page it was opened from (%d)", d.status)
	}
}

func TestAuditMessageDetail(t *testing.T) {
	e := newEnv(t)
	rec := auditMessage("default", "s1", "m1", auditT0, "mallory@evil.example", "Overdue invoice", "bob@example.com", "carol@example.com")
	rec.Envelope.ClientAddr, rec.Envelope.Helo, rec.Envelope.Tls = "192.0.2.7:40312", "mx.evil.example", true
	rec.Headers.Cc = []string{"dave@example.com"}
	rec.Headers.Date = timestamppb.New(auditT0.Add(-time.Minute))
	rec.Headers.Received = []string{"from mx.evil.example (192.0.2.7) by sensor-s1 with ESMTPS"}
	rec.Headers.AuthenticationResults = []string{"sensor-s1; spf=fail smtp.mailfrom=evil.example"}
	rec.Verdict, rec.Node = "detected", "node-7"
	rec.Envelope.Auth = &ospreyv1.AuthResults{Spf: "softfail", SpfDomain: "evil.example",
		Dkim:  []*ospreyv1.DkimResult{{Result: "fail", Domain: "example.com", Selector: "s1"}},
		Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.com"}
	rec.Spam = &ospreyv1.SpamResult{Score: 16.5, RequiredScore: 15, Action: "reject", Symbols: []*ospreyv1.SpamSymbol{
		{Name: "MISSING_MID", Score: 2.5}, {Name: "MIME_GOOD", Score: -0.1}, {Name: "GTUBE"}}}
	stored := e.record(rec, eicarAlert("Overdue invoice", ospreyv1.Severity_SEVERITY_HIGH))
	clean := auditMessage("default", "s1", "m2", auditT0.Add(time.Minute), "alice@example.org", "", "bob@example.com")
	clean.Headers.Subject = ""
	clean.Envelope.AuthUser = "alice@example.org"
	e.record(clean, nil)
	unchecked := auditMessage("default", "s1", "m5", auditT0.Add(3*time.Minute), "alice@example.org", "While Rspamd was down", "bob@example.com")
	unchecked.Spam = &ospreyv1.SpamResult{NotChecked: "error"}
	e.record(unchecked, nil)
	polled := auditMessage("default", "s1", "m3", auditT0.Add(2*time.Minute), "alice@example.org", "Journal copy", "bob@example.com")
	polled.Source, polled.Uidl = ospreyv1.MailSource_MAIL_SOURCE_POP3, "uidl-1"
	polled.Envelope.ClientAddr, polled.Envelope.Helo, polled.Envelope.Mailbox = "", "", "journal@mail.example.com"
	e.record(polled, nil)

	b := e.signedIn("alice")
	p := b.get("/audit/default/s1/m1")
	if p.status != http.StatusOK {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	doc := p.doc(t)
	alertHref := "/alerts/default/" + stored.GetAlertId()
	for _, want := range []struct{ id, text string }{
		{"audit-title", "Overdue invoice accepted"},
		{"audit-verdict", "detected"},
		{"step-received", "2026-02-28 09:00:00 UTC Received by sensor sensor-s1 From the client 192.0.2.7:40312, which said HELO mx.evil.example, over TLS."},
		{"step-uploaded", "2026-02-28 09:00:01 UTC Uploaded to central node node-7 2.0 KB (2,048 bytes) from mallory@evil.example to 2 recipients."},
		{"step-scanned", "Scanned: detected By node-7. Rspamd scored it 16.50 of 15.00: reject."},
		{"step-alert", "Alert raised Alert " + stored.GetAlertId()},
		{"audit-spam", "Score 16.50 of 15.00 (Rspamd's threshold): spam Rspamd's action reject"},
		{"audit-spam-symbols", "Symbol Score MISSING_MID +2.50 MIME_GOOD -0.10 GTUBE 0.00"},
		{"audit-envelope", "MAIL FROM mallory@evil.example RCPT TO bob@example.com carol@example.com Client 192.0.2.7:40312 HELO mx.evil.example TLS yes Received 2026-02-28 09:00:00 UTC"},
		{"audit-headers", "From Sender <mallory@evil.example> To bob@example.com carol@example.com Cc dave@example.com Subject Overdue invoice Message-ID <m1@mail.example> Date 2026-02-28 08:59:00 UTC"},
		{"audit-message", "Sensor's message ID m1 Central node node-7 Uploaded 2026-02-28 09:00:01 UTC Alert " + stored.GetAlertId()},
		{"audit-auth", "SPF softfail evil.example DKIM fail example.com, selector s1 DMARC fail From example.com, policy reject"},
	} {
		el := byID(doc, want.id)
		if el == nil {
			t.Errorf("no #%s", want.id)
			continue
		}
		if got := text(el); !strings.Contains(squash(got), squash(want.text)) {
			t.Errorf("#%s:\n got %q\nwant it to contain %q", want.id, got, want.text)
		}
	}
	if link := byID(doc, "audit-alert-link"); link == nil || attr(link, "href") != alertHref {
		t.Errorf("no link to the alert %s", alertHref)
	} else if a := b.get(alertHref); a.status != http.StatusOK {
		t.Errorf("the alert's link: got %d", a.status)
	}
	for _, want := range []string{`<a href="/audit">Audit log</a>`, `<a href="/sensors/s1">sensor-s1</a>`,
		"from mx.evil.example (192.0.2.7) by sensor-s1 with ESMTPS", "spf=fail smtp.mailfrom=evil.example"} {
		if !strings.Contains(p.body, want) && !strings.Contains(p.body, html.EscapeString(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if p := b.get("/audit/default/s1/m1?back=" + url.QueryEscape("https://evil.example/audit")); !strings.Contains(p.body, `<a href="/audit">Audit log</a>`) {
		t.Errorf("the way back leads off the site")
	}
	// The list links to the detail and to the alert.
	list := b.get("/audit")
	for _, href := range []string{"/audit/default/s1/m1", alertHref} {
		if !strings.Contains(list.body, `href="`+href+`"`) {
			t.Errorf("the list has no link to %s", href)
		}
	}

	// A clean message without TLS or subject, and a polled one.
	for _, tc := range []struct {
		path string
		want map[string]string
	}{
		{"/audit/default/s1/m2", map[string]string{
			"audit-title":    "(no subject) accepted",
			"step-received":  "Received by sensor sensor-s1 From the client 192.0.2.10:40000, which said HELO mx.example.org, without TLS.",
			"step-scanned":   "Scanned: clean",
			"step-alert":     "No alert The scan engines found nothing.",
			"audit-envelope": "HELO mx.example.org Authenticated as alice@example.org TLS no",
		}},
		{"/audit/default/s1/m3", map[string]string{
			"step-received":  "Polled by sensor sensor-s1 From the mailbox journal@mail.example.com, without TLS.",
			"audit-envelope": "POP3 mailbox journal@mail.example.com",
		}},
		{"/audit/default/s1/m5", map[string]string{
			"step-scanned":           "Scanned: clean By node-1. Not checked for spam: Rspamd failed or did not answer in time.",
			"audit-spam-not-checked": "Not checked: Rspamd failed or did not answer in time.",
		}},
	} {
		p := b.get(tc.path)
		if p.status != http.StatusOK {
			t.Fatalf("GET %s: got %d", tc.path, p.status)
		}
		doc := p.doc(t)
		for id, want := range tc.want {
			if got := text(byID(doc, id)); !strings.Contains(squash(got), squash(want)) {
				t.Errorf("%s #%s:\n got %q\nwant it to contain %q", tc.path, id, got, want)
			}
		}
		if byID(doc, "audit-alert-link") != nil {
			t.Errorf("%s links to an alert", tc.path)
		}
		if byID(doc, "audit-auth") != nil {
			t.Errorf("%s shows sender authentication it never had", tc.path)
		}
		if byID(doc, "audit-spam") != nil && tc.path != "/audit/default/s1/m5" {
			t.Errorf("%s shows a spam result it does not have", tc.path)
		}
	}

	// A sensor that is no longer there is named by its id.
	e.record(auditMessage("default", "gone", "m4", auditT0, "alice@example.org", "From a sensor since removed", "bob@example.com"), nil)
	if p := b.get("/audit/default/gone/m4"); !strings.Contains(text(byID(p.doc(t), "step-received")), "by sensor gone (removed)") {
		t.Errorf("a removed sensor is not named by its id")
	}
}

func TestAuditMessageOfAnotherTenantIsNotFound(t *testing.T) {
	e := newEnv(t)
	e.record(auditMessage("default", "s1", "m1", auditT0, "alice@example.org", "default's secret subject", "bob@example.com"), nil)
	for _, tc := range []struct {
		user, path string
	}{
		{"bob", "/audit/default/s1/m1"}, // another tenant's message
		{"bob", "/audit/acme/s1/m1"},    // named under his own tenant
		{"root", "/audit/acme/s1/m1"},   // in the wrong tenant
		{"root", "/audit/default/s2/m1"},
		{"alice", "/audit/default/s1/M1"}, // not a message id
		{"alice", "/audit/default/s1/nope"},
		{"alice", "/audit/nosuchtenant/s1/m1"},
	} {
		p := e.signedIn(tc.user).get(tc.path)
		if p.status != http.StatusNotFound {
			t.Errorf("%s GET %s: got %d, want 404", tc.user, tc.path, p.status)
		}
		if strings.Contains(p.body, "secret subject") {
			t.Errorf("%s GET %s shows the message", tc.user, tc.path)
		}
	}
	for _, user := range []string{"root", "alice", "audrey"} {
		if p := e.signedIn(user).get("/audit/default/s1/m1"); p.status != http.StatusOK {
			t.Errorf("%s reading the message: got %d", user, p.status)
		}
	}
}

func TestAuditPagesNeedSignIn(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{"/audit", "/audit?kind=refused", "/audit/default/s1/m1"} {
		p := b.get(path)
		if want := "/signin?next=" + url.QueryEscape(path); p.status != http.StatusSeeOther || p.location != want {
			t.Errorf("GET %s: got %d to %q, want 303 to %q", path, p.status, p.location, want)
		}
	}
}

// TestAuditRendersAttackerTextEscaped: what a sender wrote (addresses,
// HELO, subject, header values) and what a refused client sent (the
// sample sender, recipient and detail) are shown as text, never as markup,
// in the list and the detail; invisible and direction-changing characters
// are shown as escapes.
func TestAuditRendersAttackerTextEscaped(t *testing.T) {
	e := newEnv(t)
	const (
		subject = `<script>alert(1)</script>`
		bidi    = "invoice\u202efdp.exe"
	)
	rec := auditMessage("default", "s1", "m1", auditT0, `"><svg onload=alert(3)>@evil.example`, subject, `</td><script>alert(4)</script>`)
	rec.Envelope.Helo = `<iframe src=javascript:alert(6)>`
	rec.Envelope.ClientAddr = "192.0.2.7:25\u2066"
	rec.Headers.From = `<b onmouseover=alert(5)>boss</b>` + "\u200b"
	rec.Headers.MessageId = `<"><img src=x onerror=alert(7)>>`
	rec.Headers.Received = []string{`from <iframe src=javascript:alert(8)>`}
	rec.Headers.AuthenticationResults = []string{"x; dkim=pass header.d=<style>body{display:none}</style>"}
	rec.Spam = &ospreyv1.SpamResult{Action: "<img src=x onerror=alert(10)>", Symbols: []*ospreyv1.SpamSymbol{{Name: "<script>alert(11)</script>\u202e"}}}
	e.record(rec, nil)
	e.record(auditMessage("default", "s1", "m2", auditT0.Add(time.Second), "rlo@evil.example", bidi, "bob@example.com"), nil)
	e.refuse("default", "s1", refusal(auditT0.Add(time.Minute), "198.51.100.7", "recipient_refused", 2,
		`<img src=x onerror=alert(9)>@evil.example`, "x\u202e@example.com", `<style>body{display:none}</style>`+"\u2067"))
	b := e.signedIn("alice")
	for _, path := range []string{"/audit", "/audit?subject=" + url.QueryEscape(subject), "/audit?kind=refused", "/audit/default/s1/m1", "/audit/default/s1/m2"} {
		t.Run(path, func(t *testing.T) {
			p := b.get(path)
			if p.status != http.StatusOK {
				t.Fatalf("got %d", p.status)
			}
			for _, raw := range []string{"<script>alert", "<img src=x", "<svg", "<iframe", "<b onmouseover", "<style>", "\u202e", "\u2066", "\u2067", "\u200b"} {
				if strings.Contains(p.body, raw) {
					t.Errorf("the page holds %q unescaped", raw)
				}
			}
			// The parsed page has no element but the layout's: one script
			// (app.js), one image (the logo), no handlers.
			doc := p.doc(t)
			counts := map[string]int{}
			var walk func(*html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode {
					counts[n.Data]++
					for _, at := range n.Attr {
						if strings.HasPrefix(at.Key, "on") {
							t.Errorf("<%s> has the attribute %s=%q", n.Data, at.Key, at.Val)
						}
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
			}
			walk(doc)
			if counts["script"] != 1 || counts["img"] != 1 || counts["svg"] != 0 || counts["iframe"] != 0 || counts["style"] != 0 {
				t.Errorf("elements: %d script, %d img, %d svg, %d iframe, %d style; want 1, 1, 0, 0, 0",
					counts["script"], counts["img"], counts["svg"], counts["iframe"], counts["style"])
			}
			page := text(doc)
			var want []string
			switch path {
			case "/audit":
				want = []string{subject, `invoice\u202efdp.exe`, `"><svg onload=alert(3)>@evil.example`, `<img src=x onerror=alert(9)>@evil.example`,
					`x\u202e@example.com`, `<style>body{display:none}</style>\u2067`, `192.0.2.7`}
			case "/audit/default/s1/m1":
				want = []string{subject, `<iframe src=javascript:alert(6)>`, `192.0.2.7:25\u2066`, `<b onmouseover=alert(5)>boss</b>\u200b`,
					`<"><img src=x onerror=alert(7)>>`, `from <iframe src=javascript:alert(8)>`}
			case "/audit/default/s1/m2":
				want = []string{`invoice\u202efdp.exe`}
			}
			for _, w := range want {
				if !strings.Contains(page, w) {
					t.Errorf("the page does not show %q as text", w)
				}
			}
		})
	}
}

// TestAuditLogShowsQuarantineSteps: a quarantined message's steps are in
// the audit log with who took them, each leading to the message's page.
func TestAuditLogShowsQuarantineSteps(t *testing.T) {
	e := newEnv(t)
	rec := auditMessage("default", "s1", "q1", auditT0, "mallory@evil.example", "invoice", "bob@example.com")
	rec.Envelope.Direction = ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
	rec.Verdict = "detected"
	rec.Disposition = &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, Reason: "eicar"}
	e.record(rec, nil)
	if err := e.db.UpdateQuarantined(t.Context(), store.AllTenants(), "default", "s1", "q1", sqlstore.QuarantineChange{
		State: sqlstore.QuarantineReleased, Event: sqlstore.QuarantineEvent{At: auditT0.Add(time.Minute), Action: "released", Actor: "alice"}}); err != nil {
		t.Fatal(err)
	}
	p := e.signedIn("root").get("/audit?kind=quarantine")
	if p.status != http.StatusOK {
		t.Fatalf("got %d", p.status)
	}
	for _, want := range []string{"released", "alice", "quarantined", "/quarantine/s1/q1"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page has no %q", want)
		}
	}
	if n := strings.Count(p.body, `data-event="quarantine"`); n != 2 {
		t.Errorf("%d quarantine rows, want 2", n)
	}
}
