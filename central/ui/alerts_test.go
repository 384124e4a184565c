package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// addAlert records a scanned message of sensor in tenant with alert a,
// scanned at `at`, as the scanner does, and returns the alert's id.
func (e *env) addAlert(tenant, sensor, messageID string, at time.Time, a *ospreyv1.Alert) string {
	e.t.Helper()
	rec := &ospreyv1.MessageRecord{
		MessageId: messageID, SensorId: sensor, Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Size: a.GetSize(), Sha256: a.GetSha256(), Node: "node-1", Verdict: "detected", UploadedAt: timestamppb.New(at),
	}
	stored, dup, err := e.db.RecordScan(e.t.Context(), store.AllTenants(), rec, a, at)
	if err != nil || dup {
		e.t.Fatalf("record alert of %s/%s: duplicate %v, %v", sensor, messageID, dup, err)
	}
	return stored.GetAlertId()
}

// eicarAlert is an alert as the scanner raises it for EICAR in an attachment.
func eicarAlert(subject string, sev ospreyv1.Severity) *ospreyv1.Alert {
	return &ospreyv1.Alert{
		Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{
			MailFrom: "mallory@evil.example", RcptTo: []string{"bob@example.com", "carol@example.com"},
			ClientAddr: "192.0.2.7:40312", Helo: "mx.evil.example", Tls: true,
			ReceivedAt: timestamppb.New(time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC)),
		},
		Headers: &ospreyv1.HeaderSummary{
			From: "Mallory <mallory@evil.example>", To: []string{"Bob <bob@example.com>"}, Cc: []string{"dave@example.com"},
			Subject: subject, MessageId: "<m1@evil.example>", Date: timestamppb.New(time.Date(2026, 2, 28, 8, 59, 0, 0, time.UTC)),
			Received: []string{
				"from mx.evil.example (192.0.2.7) by sensor-s1 with ESMTPS; Sat, 28 Feb 2026 09:00:00 +0000",
				"from laptop by mx.evil.example; Sat, 28 Feb 2026 08:59:30 +0000",
			},
			AuthenticationResults: []string{"sensor-s1; spf=fail smtp.mailfrom=evil.example"},
		},
		Severity: sev,
		Matches: []*ospreyv1.Match{
			{Engine: "eicar", RuleId: "EICAR-Test-File", Severity: sev, What: "the EICAR test file", Part: "attachment eicar.com"},
			{Engine: "ioc", RuleId: "r-phish", Severity: ospreyv1.Severity_SEVERITY_LOW, What: "sender domain evil.example", Part: "envelope"},
		},
		Attachments: []*ospreyv1.Attachment{{
			Path: "eicar.com", Filename: "eicar.com", DeclaredType: "application/octet-stream", DetectedType: "text/plain; charset=utf-8",
			Size: 68, Sha256: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
			Sha1: "3395856ce81f2b7382dee72602f798b642f14140", Md5: "44d88612fea8a8f36de82e1278abb02f",
		}},
		Node: "node-7", Verdict: "detected", Size: 1234567,
		Sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
}

func TestAlertListShowsAlertsInScope(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.addAlert("default", "s1", "m1", now.Add(-2*time.Minute), eicarAlert("quarterly report", ospreyv1.Severity_SEVERITY_HIGH))
	e.addAlert("acme", "s2", "m2", now.Add(-time.Minute), eicarAlert("acme invoice", ospreyv1.Severity_SEVERITY_CRITICAL))
	for _, tc := range []struct {
		user      string
		see, hide []string
	}{
		{"root", []string{"quarterly report", "acme invoice"}, nil},
		{"alice", []string{"quarterly report"}, []string{"acme invoice"}},
		{"audrey", []string{"quarterly report"}, []string{"acme invoice"}},
		{"bob", []string{"acme invoice"}, []string{"quarterly report"}},
		// A tenant operator's tenant filter is ignored: they see their own.
		{"bob?tenant=default", []string{"acme invoice"}, []string{"quarterly report"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			user, query, _ := strings.Cut(tc.user, "?")
			p := e.signedIn(user).get("/alerts?" + query)
			if p.status != http.StatusOK {
				t.Fatalf("got %d\n%s", p.status, p.body)
			}
			for _, s := range tc.see {
				if !strings.Contains(p.body, s) {
					t.Errorf("%s does not see %q", tc.user, s)
				}
			}
			for _, s := range tc.hide {
				if strings.Contains(p.body, s) {
					t.Errorf("%s sees %q of another tenant", tc.user, s)
				}
			}
		})
	}

	// Newest first, and every column of the row.
	p := e.signedIn("root").get("/alerts")
	if i, j := strings.Index(p.body, "acme invoice"), strings.Index(p.body, "quarterly report"); i < 0 || j < 0 || i > j {
		t.Errorf("the newer alert is not listed first")
	}
	doc := p.doc(t)
	table := byID(doc, "alert-table")
	if table == nil {
		t.Fatalf("no alert table")
	}
	row := text(table)
	for _, want := range []string{"critical", "high", "sensor-s1", "sensor-s2", "SMTP", "mallory@evil.example",
		"bob@example.com, carol@example.com", "detected", "eicar EICAR-Test-File", "ioc r-phish", "1 attachment"} {
		if !strings.Contains(row, want) {
			t.Errorf("the alert list lacks %q:\n%s", want, row)
		}
	}
	if !strings.Contains(p.body, `class="badge sev sev-critical"`) || !strings.Contains(p.body, `class="sev-row-critical"`) {
		t.Errorf("a critical alert is not marked as critical")
	}
	if nav := byID(doc, "main"); nav == nil || !strings.Contains(p.body, `href="/alerts" aria-current="page">Alerts</a>`) {
		t.Errorf("the navigation does not mark Alerts as the current page")
	}
}

func TestAlertListFilters(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Minute)
	e.addAlert("default", "s1", "old", now.Add(-48*time.Hour), eicarAlert("old low one", ospreyv1.Severity_SEVERITY_LOW))
	e.addAlert("default", "s1", "new", now.Add(-time.Hour), eicarAlert("new high one", ospreyv1.Severity_SEVERITY_HIGH))
	e.addAlert("acme", "s2", "acme", now.Add(-time.Hour), eicarAlert("acme medium one", ospreyv1.Severity_SEVERITY_MEDIUM))
	b := e.signedIn("root")
	all := []string{"old low one", "new high one", "acme medium one"}
	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"none", nil, all},
		{"severity at least medium", url.Values{"severity": {"medium"}}, []string{"new high one", "acme medium one"}},
		{"severity at least critical", url.Values{"severity": {"critical"}}, nil},
		{"sensor", url.Values{"sensor": {"s2"}}, []string{"acme medium one"}},
		{"tenant", url.Values{"tenant": {"default"}}, []string{"old low one", "new high one"}},
		{"text in the subject", url.Values{"q": {"HIGH ONE"}}, []string{"new high one"}},
		{"text in a recipient", url.Values{"q": {"carol@"}}, all},
		{"since two hours", url.Values{"since": {now.Add(-2 * time.Hour).Format("2006-01-02T15:04")}}, []string{"new high one", "acme medium one"}},
		{"since a date", url.Values{"since": {now.Add(-72 * time.Hour).Format("2006-01-02")}}, all},
		{"since RFC 3339", url.Values{"since": {now.Add(time.Hour).Format(time.RFC3339)}}, nil},
		{"unknown sensor", url.Values{"sensor": {"nope"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get("/alerts?" + tc.query.Encode())
			if p.status != http.StatusOK {
				t.Fatalf("got %d\n%s", p.status, p.body)
			}
			for _, s := range all {
				want := strings.Contains(strings.Join(tc.want, "|"), s)
				if got := strings.Contains(p.body, s); got != want {
					t.Errorf("%q listed %v, want %v", s, got, want)
				}
			}
			// The filter is shown as it was asked; a time as the date
			// picker writes it.
			for k, v := range tc.query {
				want := v[0]
				switch k {
				case "sensor":
					continue // a drop-down: an unknown sensor is not one of its choices
				case "since":
					since, err := time.Parse(time.RFC3339, v[0])
					if err != nil {
						since, err = time.Parse("2006-01-02", v[0])
					}
					if err != nil {
						since, err = time.Parse("2006-01-02T15:04", v[0])
					}
					if err != nil {
						t.Fatal(err)
					}
					want = `id="af-since" name="since" value="` + since.UTC().Format("2006-01-02T15:04") + `"`
				}
				if !strings.Contains(p.body, html.EscapeString(want)) && !strings.Contains(p.body, want) {
					t.Errorf("the page does not show the filter %s=%q", k, want)
				}
			}
		})
	}

	t.Run("bad values are shown beside the filter", func(t *testing.T) {
		p := b.get("/alerts?since=yesterday&severity=urgent")
		if p.status != http.StatusBadRequest {
			t.Fatalf("got %d, want 400", p.status)
		}
		if msg := fieldError(t, p, "af-since"); !strings.Contains(msg, "not a time") {
			t.Errorf("the error beside Since is %q", msg)
		}
		if msg := fieldError(t, p, "af-severity"); !strings.Contains(msg, "low, medium, high or critical") {
			t.Errorf("the error beside Severity is %q", msg)
		}
		if strings.Contains(p.body, "new high one") {
			t.Errorf("a refused filter listed alerts")
		}
		p = b.get("/alerts?q=" + strings.Repeat("x", 300))
		if msg := fieldError(t, p, "af-q"); p.status != http.StatusBadRequest || !strings.Contains(msg, "at most 256") {
			t.Errorf("a long search: got %d, error %q", p.status, msg)
		}
		p = b.get("/alerts?page_token=forged")
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "not a page token") {
			t.Errorf("a forged page token: got %d", p.status)
		}
	})
}

var olderRE = regexp.MustCompile(`href="(/alerts\?[^"]*)" rel="next"`)

func TestAlertListPages(t *testing.T) {
	e := newEnv(t)
	start := time.Now().Add(-time.Hour)
	for i := range 57 {
		e.addAlert("default", "s1", fmt.Sprintf("m%02d", i), start.Add(time.Duration(i)*time.Second),
			eicarAlert(fmt.Sprintf("message number %02d", i), ospreyv1.Severity_SEVERITY_HIGH))
	}
	b := e.signedIn("alice")
	p := b.get("/alerts?q=message")
	rows := strings.Count(p.body, `data-alert="`)
	if rows != 50 || !strings.Contains(p.body, "message number 56") || strings.Contains(p.body, "message number 06") {
		t.Fatalf("first page: %d rows, want the newest 50", rows)
	}
	if strings.Contains(p.body, `">← Newest</a>`) {
		t.Errorf("the first page links to itself as the newest")
	}
	m := olderRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no link to older alerts")
	}
	next := html.UnescapeString(m[1])
	if u, _ := url.Parse(next); u.Query().Get("q") != "message" || u.Query().Get("page_token") == "" {
		t.Errorf("the Older link %q does not keep the filter", next)
	}
	p = b.get(next)
	if rows := strings.Count(p.body, `data-alert="`); rows != 7 || !strings.Contains(p.body, "message number 00") || strings.Contains(p.body, "message number 07") {
		t.Errorf("second page: %d rows, want the oldest 7", rows)
	}
	if olderRE.MatchString(p.body) {
		t.Errorf("the last page links to older alerts")
	}
	if !strings.Contains(p.body, `href="/alerts?q=message">← Newest</a>`) {
		t.Errorf("the second page does not link back to the newest")
	}
	// A row leads to the alert, and the alert back to this page of the list.
	id := regexp.MustCompile(`data-alert="([^"]+)"`).FindStringSubmatch(p.body)[1]
	link := regexp.MustCompile(`href="(/alerts/default/` + id + `\?back=[^"]+)"`).FindStringSubmatch(p.body)
	if link == nil {
		t.Fatalf("no link to alert %s with the way back", id)
	}
	d := b.get(html.UnescapeString(link[1]))
	if d.status != http.StatusOK || !strings.Contains(d.body, `<a href="`+html.EscapeString(next)+`">Alerts</a>`) {
		t.Errorf("the alert does not lead back to the page it was opened from (%d)", d.status)
	}
}

func TestAlertDetail(t *testing.T) {
	e := newEnv(t)
	id := e.addAlert("default", "s1", "m1", time.Now(), eicarAlert("quarterly report", ospreyv1.Severity_SEVERITY_HIGH))
	p := e.signedIn("alice").get("/alerts/default/" + id)
	if p.status != http.StatusOK {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	doc := p.doc(t)
	for _, want := range []struct{ id, text string }{
		{"alert-title", "quarterly report high"},
		{"alert-verdict", "detected"},
		{"alert-node", "node-7"},
		{"alert-sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{"alert-envelope", "MAIL FROM mallory@evil.example RCPT TO bob@example.com carol@example.com Client 192.0.2.7:40312 HELO mx.evil.example TLS yes"},
		{"alert-headers", "From Mallory <mallory@evil.example> To Bob <bob@example.com> Cc dave@example.com Subject quarterly report Message-ID <m1@evil.example> Date 2026-02-28 08:59:00 UTC"},
		{"match-table", "eicar EICAR-Test-File high the EICAR test file attachment eicar.com"},
		{"match-table", "ioc r-phish low sender domain evil.example envelope"},
		{"attachment-table", "eicar.com application/octet-stream text/plain; charset=utf-8 differs 68 bytes SHA-256 275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f SHA-1 3395856ce81f2b7382dee72602f798b642f14140 MD5 44d88612fea8a8f36de82e1278abb02f"},
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
	if !strings.Contains(p.body, `<a href="/alerts">Alerts</a>`) {
		t.Errorf("the breadcrumb does not lead to the list")
	}
	if p := e.signedIn("alice").get("/alerts/default/" + id + "?back=" + url.QueryEscape("https://evil.example/alerts")); !strings.Contains(p.body, `<a href="/alerts">Alerts</a>`) {
		t.Errorf("the way back leads off the site")
	}
	for _, want := range []string{
		"from mx.evil.example (192.0.2.7) by sensor-s1 with ESMTPS", "from laptop by mx.evil.example",
		"spf=fail smtp.mailfrom=evil.example", "1.2 MB (1,234,567 bytes)", `href="/sensors/s1/smtp">sensor-s1</a>`,
		`href="/rules/default#rule-r-phish"`,
	} {
		if !strings.Contains(p.body, html.EscapeString(want)) && !strings.Contains(p.body, want) {
			t.Errorf("the alert page lacks %q", want)
		}
	}
}

func TestAlertOfAnotherTenantIsNotFound(t *testing.T) {
	e := newEnv(t)
	id := e.addAlert("default", "s1", "m1", time.Now(), eicarAlert("default's secret subject", ospreyv1.Severity_SEVERITY_HIGH))
	for _, tc := range []struct {
		user, path string
	}{
		{"bob", "/alerts/default/" + id},                   // another tenant's alert
		{"bob", "/alerts/acme/" + id},                      // named under his own tenant
		{"root", "/alerts/acme/" + id},                     // in the wrong tenant
		{"alice", "/alerts/default/0000000000000000-0000"}, // not an alert id
		{"alice", "/alerts/nosuchtenant/" + id},
	} {
		p := e.signedIn(tc.user).get(tc.path)
		if p.status != http.StatusNotFound {
			t.Errorf("%s GET %s: got %d, want 404", tc.user, tc.path, p.status)
		}
		if strings.Contains(p.body, "secret subject") {
			t.Errorf("%s GET %s shows the alert", tc.user, tc.path)
		}
	}
	if p := e.signedIn("root").get("/alerts/default/" + id); p.status != http.StatusOK {
		t.Errorf("an administrator reading the alert: got %d", p.status)
	}
}

// TestAlertsRenderAttackerTextEscaped: what a message's sender wrote
// (subject, addresses, file names, header values) is shown as text, never
// as markup, in the list and the detail; invisible and direction-changing
// characters are shown as escapes.
func TestAlertsRenderAttackerTextEscaped(t *testing.T) {
	e := newEnv(t)
	const (
		subject  = `<script>alert(1)</script>`
		fileName = `"><img src=x onerror=alert(2)>`
		rlo      = "invoice\u202efdp.exe"
	)
	a := eicarAlert(subject, ospreyv1.Severity_SEVERITY_CRITICAL)
	a.Envelope.MailFrom = `"><svg onload=alert(3)>@evil.example`
	a.Envelope.RcptTo = []string{`</td><script>alert(4)</script>`}
	a.Headers.From = `<b onmouseover=alert(5)>boss</b>`
	a.Headers.Received = []string{`from <iframe src=javascript:alert(6)>`}
	a.Headers.AuthenticationResults = []string{"x; dkim=pass header.d=<style>body{display:none}</style>"}
	a.Matches[0].What = `attachment named ` + fileName
	a.Matches[0].Part = `attachment ` + fileName
	a.Attachments = append(a.Attachments,
		&ospreyv1.Attachment{Path: "x.zip/" + fileName, Filename: fileName, DeclaredType: `text/html"><script>alert(7)</script>`, Size: 10},
		&ospreyv1.Attachment{Path: rlo, Filename: rlo, Size: 10})
	a.Verdict = `detected<script>alert(8)</script>`
	id := e.addAlert("default", "s1", "m1", time.Now(), a)
	b := e.signedIn("alice")
	for _, path := range []string{"/alerts", "/alerts?q=" + url.QueryEscape(subject), "/alerts/default/" + id} {
		t.Run(path, func(t *testing.T) {
			p := b.get(path)
			if p.status != http.StatusOK {
				t.Fatalf("got %d", p.status)
			}
			for _, raw := range []string{"<script>alert", "<img src=x", "<svg", "<iframe", "<b onmouseover", "<style>", "\u202e"} {
				if strings.Contains(p.body, raw) {
					t.Errorf("the page holds %q unescaped", raw)
				}
			}
			if !strings.Contains(p.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("the subject is not shown, escaped")
			}
			// The parsed page has no element but the layout's: one script
			// (app.js), one image (the logo), no handlers.
			doc := p.doc(t)
			var walk func(*html.Node)
			counts := map[string]int{}
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
			if strings.HasPrefix(path, "/alerts/") {
				table := text(byID(doc, "attachment-table"))
				if !strings.Contains(table, fileName) || !strings.Contains(table, `invoice\u202efdp.exe`) {
					t.Errorf("the attachment names are not shown as text:\n%s", table)
				}
			}
		})
	}
}

// squash drops white space, for comparing the text of elements whose
// children the page lays out without spaces between them.
func squash(s string) string { return strings.Join(strings.Fields(s), "") }
