package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func() error { return goleak.Find() }))
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// backend opens stores over one database of a driver; every store of a test
// shares it, as the central nodes of a cluster share PostgreSQL.
type backend struct {
	name string
	url  func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "osprey.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.DB(t) }},
}

// suite runs fn once for each driver, as a subtest.
func suite(t *testing.T, fn func(t *testing.T, db *testDB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fn(t, &testDB{t: t, url: b.url(t), clk: clocktest.New(t0)})
		})
	}
}

// testDB is one database under test, with a clock its stores share.
type testDB struct {
	t   *testing.T
	url string
	clk *clocktest.Clock
}

// open opens a store of the database with retention r, closed at the end of
// the test.
func (d *testDB) open(r AlertRetention) *Store {
	d.t.Helper()
	st, err := Open(d.t.Context(), Options{URL: d.url, AlertRetention: r, Now: d.clk.Now})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { st.Close() })
	return st
}

func record(tenant, sensor, msg string) *ospreyv1.MessageRecord {
	return &ospreyv1.MessageRecord{
		MessageId: msg, SensorId: sensor, Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "bad@evil.example", RcptTo: []string{"ceo@example.com"}},
		Size:     1234, Verdict: "detected", Node: "n1",
	}
}

func alertFor(sev ospreyv1.Severity, subject string) *ospreyv1.Alert {
	return &ospreyv1.Alert{
		Severity:    sev,
		Headers:     &ospreyv1.HeaderSummary{Subject: subject, From: "Evil <bad@evil.example>"},
		Envelope:    &ospreyv1.Envelope{MailFrom: "bad@evil.example", RcptTo: []string{"ceo@example.com"}},
		Matches:     []*ospreyv1.Match{{Engine: "eicar", RuleId: "EICAR-Test-File", Severity: sev, What: "EICAR test file in invoice.zip"}},
		Attachments: []*ospreyv1.Attachment{{Path: "invoice.zip/eicar.com", Filename: "eicar.com"}},
		Verdict:     "detected",
	}
}

func countAlerts(t *testing.T, st *Store, tenant string) int64 {
	t.Helper()
	var n int64
	if err := st.db.QueryRowContext(t.Context(), st.d.q(`SELECT COUNT(*) FROM alerts WHERE tenant = ?`), tenant).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countMessages(t *testing.T, st *Store) int64 {
	t.Helper()
	var n int64
	if err := st.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAlertID(t *testing.T) {
	id := AlertID(t0, "s1", "m1")
	if err := checkAlertID(id); err != nil || store.CheckID("alert", id) != nil {
		t.Fatalf("AlertID = %q: %v", id, err)
	}
	if at, _ := alertTime(id); !at.Equal(t0) {
		t.Errorf("time of %s: got %v, want %v", id, at, t0)
	}
	if AlertID(t0, "s1", "m2") == id || AlertID(t0, "s1", "m1") != id {
		t.Error("ids must differ per message and repeat for the same one")
	}
	if later := AlertID(t0.Add(time.Nanosecond), "a", "a"); later <= id {
		t.Errorf("ids do not sort by time: %s <= %s", later, id)
	}
	for _, bad := range []string{"", "x", strings.Repeat("0", 33), strings.ToUpper(id), id + "0"} {
		if checkAlertID(bad) == nil {
			t.Errorf("checkAlertID(%q) accepted it", bad)
		}
	}
}

func TestOpen(t *testing.T) {
	for _, tt := range []struct {
		name, url, want string
	}{
		{"empty", "", "required"},
		{"other scheme", "mysql://x/y", "want postgres://"},
		{"bad postgres URL", "postgres://host:notaport/db", "database URL"},
		{"sqlite with a query", "sqlite:/tmp/x.db?mode=ro", "path of a SQLite file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(t.Context(), Options{URL: tt.url})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q): got %v, want an error containing %q", tt.url, err, tt.want)
			}
		})
	}
	if err := (Options{URL: "x", MessageRetention: time.Hour}).Validate(); err == nil || !strings.Contains(err.Error(), "message retention") {
		t.Errorf("a retention of an hour: got %v, want refused", err)
	}
	suite(t, func(t *testing.T, db *testDB) {
		// Several nodes open the same database at once: the migrations run
		// once, under the lock, and every node gets the schema.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				st, err := Open(t.Context(), Options{URL: db.url})
				if err != nil {
					t.Error(err)
					return
				}
				defer st.Close()
				if err := st.Ping(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := db.open(AlertRetention{}); countMessages(t, st) != 0 {
			t.Error("a fresh database holds messages")
		}
	})
}

func TestRecordScanRaisesOneAlertPerMessage(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		// Three nodes share the database; ten uploads of the same message
		// race across them (retries after lost acknowledgements): one
		// record, one alert, and every caller learns the same alert id.
		nodes := []*Store{db.open(AlertRetention{}), db.open(AlertRetention{}), db.open(AlertRetention{})}
		st := nodes[0]
		ctx := t.Context()
		scope := store.TenantScope("a")
		const n = 10
		var wg sync.WaitGroup
		recs := make([]*ospreyv1.MessageRecord, n)
		dups := make([]bool, n)
		for i := range n {
			wg.Go(func() {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				var err error
				recs[i], dups[i], err = nodes[i%3].RecordScan(ctx, scope, record("a", "s1", "m1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "Invoice"), now)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if got := countAlerts(t, st, "a"); got != 1 {
			t.Fatalf("alerts after %d uploads of one message: got %d, want 1", n, got)
		}
		first := 0
		for i := range n {
			if !dups[i] {
				first++
			}
			if recs[i].GetAlertId() != recs[0].GetAlertId() || recs[i].GetAlertId() == "" {
				t.Errorf("upload %d: alert id %q, want %q", i, recs[i].GetAlertId(), recs[0].GetAlertId())
			}
		}
		if first != 1 {
			t.Errorf("uploads that were not duplicates: got %d, want 1", first)
		}
		a, err := st.GetAlert(ctx, scope, "a", recs[0].GetAlertId())
		if err != nil {
			t.Fatal(err)
		}
		if a.GetTenant() != "a" || a.GetSensorId() != "s1" || a.GetMessageId() != "m1" || a.GetCreatedAt() == nil {
			t.Errorf("stored alert: got %v", a)
		}
		rec, err := st.GetMessage(ctx, scope, "a", "s1", "m1")
		if err != nil || rec.GetAlertId() != a.GetId() {
			t.Errorf("stored record: %v, %v; want alert_id %s", rec, err, a.GetId())
		}

		// A clean message: a record without an alert.
		clean, dup, err := st.RecordMessage(ctx, scope, record("a", "s1", "m2"), db.clk.Now())
		if err != nil || dup || clean.GetAlertId() != "" {
			t.Errorf("clean message: %v, dup %v, %v", clean, dup, err)
		}

		// What RecordScan refuses.
		other := alertFor(ospreyv1.Severity_SEVERITY_LOW, "x")
		other.Tenant = "b"
		if _, _, err := st.RecordScan(ctx, store.AllTenants(), record("a", "s1", "m3"), other, db.clk.Now()); err == nil {
			t.Error("an alert of another tenant than its message: accepted")
		}
		if _, _, err := st.RecordScan(ctx, scope, record("b", "s2", "m3"), alertFor(ospreyv1.Severity_SEVERITY_LOW, "x"), db.clk.Now()); !errors.Is(err, store.ErrForbidden) {
			t.Errorf("a message of another tenant: got %v, want ErrForbidden", err)
		}
		badID := alertFor(ospreyv1.Severity_SEVERITY_LOW, "x")
		badID.Id = "not-an-alert-id"
		if _, _, err := st.RecordScan(ctx, scope, record("a", "s1", "m4"), badID, db.clk.Now()); !errors.Is(err, store.ErrInvalidID) {
			t.Errorf("a bad alert id: got %v, want ErrInvalidID", err)
		}
		if _, err := st.GetMessage(ctx, scope, "a", "s1", "m4"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record of a refused scan: got %v, want none", err)
		}
		if _, err := st.GetMessage(ctx, store.TenantScope("b"), "a", "s1", "m1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b reads a's record: got %v, want ErrNotFound", err)
		}
	})
}

// TestRecordScanKnowsAPOP3MessageByItsUIDL: the same POP3 message polled by
// two sensors (a poller that crashed after RETR, and the central node that
// took the mailbox over) is recorded and alerted once; another UIDL, or the
// same UIDL of another mailbox, is another message.
func TestRecordScanKnowsAPOP3MessageByItsUIDL(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		scope := store.TenantScope("a")
		polled := func(sensor, msg, mailbox, uidl string) *ospreyv1.MessageRecord {
			r := record("a", sensor, msg)
			r.Source = ospreyv1.MailSource_MAIL_SOURCE_POP3
			r.Envelope.Mailbox = mailbox
			r.Uidl = uidl
			return r
		}
		first, dup, err := st.RecordScan(ctx, scope, polled("node1", "m1", "soc@pop.example.com", "UID-1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), db.clk.Now())
		if err != nil || dup {
			t.Fatalf("first upload: dup %v, err %v", dup, err)
		}
		again, dup, err := st.RecordScan(ctx, scope, polled("node2", "m9", "soc@pop.example.com", "UID-1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), db.clk.Now())
		if err != nil || !dup {
			t.Fatalf("the same message from another sensor: dup %v, err %v; want a duplicate", dup, err)
		}
		if again.GetSensorId() != "node1" || again.GetAlertId() != first.GetAlertId() {
			t.Errorf("duplicate answered with %v, want the first record %v", again, first)
		}
		if _, err := st.GetMessage(ctx, scope, "a", "node2", "m9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the duplicate was recorded under its own id: %v", err)
		}
		for _, r := range []*ospreyv1.MessageRecord{
			polled("node2", "m10", "soc@pop.example.com", "UID-2"),
			polled("node2", "m11", "other@pop.example.com", "UID-1"),
		} {
			if _, dup, err := st.RecordScan(ctx, scope, r, alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), db.clk.Now()); err != nil || dup {
				t.Errorf("%s %s: dup %v, err %v; want a new message", r.GetEnvelope().GetMailbox(), r.GetUidl(), dup, err)
			}
		}
		if got := countAlerts(t, st, "a"); got != 3 {
			t.Errorf("alerts: got %d, want 3", got)
		}
	})
}

// raise records n alerts of tenant on sensor, one a second from the clock's
// time, and returns their ids, oldest first.
func raise(t *testing.T, st *Store, clk *clocktest.Clock, tenant, sensor string, n int, sev func(i int) ospreyv1.Severity) []string {
	t.Helper()
	var ids []string
	for i := range n {
		clk.Advance(time.Second)
		msg := fmt.Sprintf("%s-m%d-%d", sensor, i, clk.Now().Unix())
		rec, _, err := st.RecordScan(t.Context(), store.AllTenants(), record(tenant, sensor, msg),
			alertFor(sev(i), fmt.Sprintf("Subject %s %d", tenant, i)), clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.GetAlertId())
	}
	return ids
}

func high(int) ospreyv1.Severity { return ospreyv1.Severity_SEVERITY_HIGH }

func alertIDs(as []*ospreyv1.Alert) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.GetId())
	}
	return out
}

// allAlerts lists every page of q.
func allAlerts(t *testing.T, st *Store, scope store.Scope, q AlertQuery) []string {
	t.Helper()
	got := []string{}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("too many pages")
		}
		page, err := st.ListAlerts(t.Context(), scope, q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Limit > 0 && len(page.Alerts) > q.Limit {
			t.Fatalf("page of %d alerts, limit %d", len(page.Alerts), q.Limit)
		}
		got = append(got, alertIDs(page.Alerts)...)
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			return got
		}
	}
}

func TestListAlertsPagesNewestFirstAcrossTenants(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		var all []string
		for i := range 7 {
			all = append(all, raise(t, st, db.clk, []string{"a", "b"}[i%2], "s"+[]string{"1", "2"}[i%2], 3, high)...)
		}
		slices.Reverse(all)
		if d := cmp.Diff(all, allAlerts(t, st, store.AllTenants(), AlertQuery{Limit: 4})); d != "" {
			t.Errorf("alerts over every page (-want +got):\n%s", d)
		}

		// A tenant scope sees its tenant only; naming another is not found.
		page, err := st.ListAlerts(ctx, store.TenantScope("b"), AlertQuery{Limit: MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Alerts) != 9 || page.NextPageToken != "" {
			t.Errorf("b's alerts: got %d and token %q, want 9 and none", len(page.Alerts), page.NextPageToken)
		}
		for _, a := range page.Alerts {
			if a.GetTenant() != "b" {
				t.Errorf("b sees an alert of %q", a.GetTenant())
			}
		}
		if _, err := st.ListAlerts(ctx, store.TenantScope("b"), AlertQuery{Tenant: "a"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b lists a's alerts: got %v, want ErrNotFound", err)
		}
		// all[0] is a's newest (of 7 groups of 3, the last is a's).
		if _, err := st.GetAlert(ctx, store.TenantScope("b"), "", all[0]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b gets a's alert: got %v, want ErrNotFound", err)
		}
		if a, err := st.GetAlert(ctx, store.AllTenants(), "", all[0]); err != nil || a.GetId() != all[0] {
			t.Errorf("admin gets an alert without its tenant: %v, %v", a, err)
		}
		// The same alert id in two tenants (ids hash sensor and message
		// ids, which tenants choose): both are listed, each in its tenant.
		for _, tenant := range []string{"a", "b"} {
			if _, _, err := st.RecordScan(ctx, store.AllTenants(), record(tenant, "s9", "same"), alertFor(2, "same"), db.clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if got := allAlerts(t, st, store.AllTenants(), AlertQuery{Limit: 1, Q: "same"}); len(got) != 2 || got[0] != got[1] {
			t.Errorf("one id in two tenants: listed %v, want it twice", got)
		}
	})
}

func TestListAlertsFilters(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		sevs := []ospreyv1.Severity{ospreyv1.Severity_SEVERITY_LOW, ospreyv1.Severity_SEVERITY_MEDIUM, ospreyv1.Severity_SEVERITY_HIGH, ospreyv1.Severity_SEVERITY_CRITICAL}
		a1 := raise(t, st, db.clk, "a", "s1", 8, func(i int) ospreyv1.Severity { return sevs[i%4] })
		mid := db.clk.Now()
		a3 := raise(t, st, db.clk, "a", "s3", 4, func(i int) ospreyv1.Severity { return sevs[i%4] })
		b2 := raise(t, st, db.clk, "b", "s2", 2, high)
		// LIKE's wildcards in q are plain characters.
		pct := alertFor(ospreyv1.Severity_SEVERITY_LOW, "100% off_today")
		rec, _, err := st.RecordScan(t.Context(), store.AllTenants(), record("b", "s2", "pct"), pct, db.clk.Now())
		if err != nil {
			t.Fatal(err)
		}

		rev := func(ids ...string) []string {
			out := slices.Clone(ids)
			slices.Reverse(out)
			return out
		}
		tests := []struct {
			name  string
			scope store.Scope
			q     AlertQuery
			want  []string
		}{
			{"severity", store.AllTenants(), AlertQuery{MinSeverity: ospreyv1.Severity_SEVERITY_CRITICAL}, rev(a1[3], a1[7], a3[3])},
			{"severity high and tenant", store.AllTenants(), AlertQuery{Tenant: "b", MinSeverity: ospreyv1.Severity_SEVERITY_HIGH}, rev(b2...)},
			{"since", store.TenantScope("a"), AlertQuery{Since: mid.Add(time.Nanosecond)}, rev(a3...)},
			{"sensor", store.AllTenants(), AlertQuery{SensorID: "s3"}, rev(a3...)},
			{"q subject ignoring case", store.AllTenants(), AlertQuery{Q: "SUBJECT B 1"}, []string{b2[1]}},
			{"q attachment", store.AllTenants(), AlertQuery{Q: "eicar.com", Tenant: "b", MinSeverity: ospreyv1.Severity_SEVERITY_MEDIUM}, rev(b2...)},
			{"q match", store.TenantScope("b"), AlertQuery{Q: "eicar-test", MinSeverity: ospreyv1.Severity_SEVERITY_MEDIUM}, rev(b2...)},
			{"q recipient", store.TenantScope("b"), AlertQuery{Q: "ceo@", MinSeverity: ospreyv1.Severity_SEVERITY_MEDIUM}, rev(b2...)},
			{"q with a percent sign", store.AllTenants(), AlertQuery{Q: "100% off_"}, []string{rec.GetAlertId()}},
			{"q with an underscore", store.AllTenants(), AlertQuery{Q: "subject_a"}, []string{}},
			{"q nothing", store.AllTenants(), AlertQuery{Q: "no such thing"}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				q.Limit = 2
				if d := cmp.Diff(tt.want, allAlerts(t, st, tt.scope, q)); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			})
		}
		for _, q := range []AlertQuery{{Limit: MaxPageLimit + 1}, {Limit: -1}, {PageToken: "junk"}, {SensorID: "S/1"}, {Q: strings.Repeat("x", 300)}, {MinSeverity: 7}} {
			if _, err := st.ListAlerts(t.Context(), store.AllTenants(), q); err == nil {
				t.Errorf("query %+v: accepted", q)
			} else if _, ok := validate.AsErrors(err); !ok {
				t.Errorf("query %+v: got %v, want field errors", q, err)
			}
		}
	})
}

func TestAlertRetention(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{MaxAlerts: 10, MaxAge: 2 * time.Hour})
		ctx := t.Context()

		// Count: RecordScan trims every MaxAlerts/100 (here: every) alert, so
		// the tenant never holds more than MaxAlerts, and the newest stay.
		ids := raise(t, st, db.clk, "a", "s1", 25, high)
		if got := countAlerts(t, st, "a"); got != 10 {
			t.Errorf("alerts kept: got %d, want 10", got)
		}
		want := slices.Clone(ids[15:])
		slices.Reverse(want)
		if d := cmp.Diff(want, allAlerts(t, st, store.AllTenants(), AlertQuery{Tenant: "a"})); d != "" {
			t.Errorf("kept alerts (-want +got):\n%s", d)
		}

		// Age: past MaxAge an alert is hidden at once, and the sweep deletes it.
		raise(t, st, db.clk, "b", "s2", 3, high)
		db.clk.Advance(2*time.Hour - time.Second) // b's first alert is now 2h 1s old
		if got := allAlerts(t, st, store.AllTenants(), AlertQuery{Tenant: "b"}); len(got) != 2 {
			t.Errorf("b's alerts listed after 2h: got %d, want 2", len(got))
		}
		n, _, err := st.Sweep(ctx, store.AllTenants(), db.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n != 11 { // all 10 of a's, one of b's
			t.Errorf("swept: got %d, want 11", n)
		}
		if a, b := countAlerts(t, st, "a"), countAlerts(t, st, "b"); a != 0 || b != 2 {
			t.Errorf("after the sweep: a %d, b %d; want 0 and 2", a, b)
		}
		if _, err := st.GetAlert(ctx, store.AllTenants(), "a", ids[24]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired alert: got %v, want ErrNotFound", err)
		}
		if _, _, err := st.Sweep(ctx, store.TenantScope("a"), db.clk.Now()); !errors.Is(err, store.ErrForbidden) {
			t.Errorf("sweep in a tenant scope: got %v, want ErrForbidden", err)
		}
	})
}

// TestConcurrentSweepsDeleteOnlyTheExcess runs sweeps of several nodes at
// once with writers: however they interleave, no sweep deletes more than the
// oldest beyond the cap, and the newest stay.
func TestConcurrentSweepsDeleteOnlyTheExcess(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		const capacity = 50
		// MaxAlerts 5000 keeps RecordScan from trimming by itself.
		writer := db.open(AlertRetention{MaxAlerts: 5000})
		ctx := t.Context()
		for i := range 120 {
			now := t0.Add(time.Duration(i) * time.Second)
			if _, _, err := writer.RecordScan(ctx, store.AllTenants(), record("a", "s1", fmt.Sprintf("m%03d", i)), alertFor(3, "x"), now); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for range 4 {
			sweeper := db.open(AlertRetention{MaxAlerts: capacity})
			wg.Go(func() {
				if _, _, err := sweeper.Sweep(ctx, store.AllTenants(), t0.Add(time.Hour)); err != nil {
					t.Error(err)
				}
			})
		}
		// A writer goes on meanwhile.
		for i := 120; i < 130; i++ {
			now := t0.Add(time.Duration(i) * time.Second)
			if _, _, err := writer.RecordScan(ctx, store.AllTenants(), record("a", "s1", fmt.Sprintf("m%03d", i)), alertFor(3, "x"), now); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if got := countAlerts(t, writer, "a"); got < capacity || got > capacity+10 {
			t.Errorf("alerts after concurrent sweeps: got %d, want %d to %d", got, capacity, capacity+10)
		}
		page, err := writer.ListAlerts(ctx, store.AllTenants(), AlertQuery{Tenant: "a", Limit: capacity})
		if err != nil || len(page.Alerts) != capacity || page.Alerts[0].GetMessageId() != "m129" || page.Alerts[capacity-1].GetMessageId() != "m080" {
			t.Errorf("newest alerts after sweeps: %d, %v; want m129 down to m080", len(page.Alerts), err)
		}
	})
}

func TestMessageRetention(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st, err := Open(t.Context(), Options{URL: db.url, MessageRetention: 72 * time.Hour, Now: db.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := t.Context()
		for i := range 2500 {
			at := t0.Add(time.Duration(i) * time.Minute)
			if _, _, err := st.RecordMessage(ctx, store.AllTenants(), record("a", "s1", fmt.Sprintf("m%05d", i)), at); err != nil {
				t.Fatal(err)
			}
		}
		// 72 hours after the 2,000th message: it and the later ones stay.
		_, n, err := st.Sweep(ctx, store.AllTenants(), t0.Add(2000*time.Minute+72*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 2000 || countMessages(t, st) != 500 {
			t.Errorf("swept %d, kept %d; want 2000 swept and 500 kept", n, countMessages(t, st))
		}
		if _, err := st.GetMessage(ctx, store.AllTenants(), "a", "s1", "m02000"); err != nil {
			t.Errorf("the oldest record kept: %v", err)
		}
	})
}

func TestListMessages(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		var want []string
		for i := range 7 {
			msg := fmt.Sprintf("m%02d", i)
			if _, _, err := st.RecordMessage(ctx, store.AllTenants(), record("a", "s1", msg), db.clk.Now()); err != nil {
				t.Fatal(err)
			}
			want = append(want, msg)
		}
		if _, _, err := st.RecordScan(ctx, store.AllTenants(), record("b", "s2", "x1"), alertFor(2, "y"), db.clk.Now()); err != nil {
			t.Fatal(err)
		}
		pages := func(scope store.Scope, q MessageQuery) []string {
			t.Helper()
			var got []string
			for i := 0; ; i++ {
				if i > 20 {
					t.Fatal("too many pages")
				}
				p, err := st.ListMessages(ctx, scope, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range p.Messages {
					got = append(got, m.GetMessageId())
				}
				if q.PageToken = p.NextPageToken; q.PageToken == "" {
					return got
				}
			}
		}
		if d := cmp.Diff(want, pages(store.TenantScope("a"), MessageQuery{Limit: 3})); d != "" {
			t.Errorf("a's messages (-want +got):\n%s", d)
		}
		if d := cmp.Diff(append(slices.Clone(want), "x1"), pages(store.AllTenants(), MessageQuery{Limit: 2})); d != "" {
			t.Errorf("every message (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"x1"}, pages(store.AllTenants(), MessageQuery{SensorID: "s2"})); d != "" {
			t.Errorf("s2's messages by sensor alone (-want +got):\n%s", d)
		}
		if _, err := st.ListMessages(ctx, store.TenantScope("b"), MessageQuery{Tenant: "a"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b lists a's messages: got %v, want ErrNotFound", err)
		}
		// A token of a's list does not open a's records to b.
		p, err := st.ListMessages(ctx, store.TenantScope("a"), MessageQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.ListMessages(ctx, store.TenantScope("b"), MessageQuery{PageToken: p.NextPageToken})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got.Messages {
			if m.GetTenant() != "b" {
				t.Errorf("b continued a's list and got %v", m)
			}
		}
		if n, err := st.CountMessages(ctx, store.TenantScope("a"), "a", "s1"); err != nil || n != 7 {
			t.Errorf("count: %d, %v; want 7", n, err)
		}
	})
}

// TestAlertsAfterFollowsCommitOrder has writers on three nodes raise alerts
// of one tenant while a reader follows them by number: the reader sees
// every alert exactly once, numbered without gaps, never one before an
// earlier number is visible.
func TestAlertsAfterFollowsCommitOrder(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		nodes := []*Store{db.open(AlertRetention{}), db.open(AlertRetention{}), db.open(AlertRetention{})}
		ctx := t.Context()
		const perNode = 40
		var wg sync.WaitGroup
		for i, st := range nodes {
			wg.Go(func() {
				for j := range perNode {
					if _, _, err := st.RecordScan(ctx, store.AllTenants(), record("a", fmt.Sprintf("s%d", i), fmt.Sprintf("m%d", j)), alertFor(2, "x"), db.clk.Now()); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		var (
			cursor int64
			seen   = map[string]bool{}
		)
		for finished := false; ; {
			select {
			case <-done:
				finished = true
			default:
			}
			got, err := nodes[1].AlertsAfter(ctx, store.AllTenants(), "a", cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, sa := range got {
				if sa.Seq != cursor+1 {
					t.Fatalf("after %d: got alert number %d", cursor, sa.Seq)
				}
				cursor = sa.Seq
				key := sa.Alert.GetSensorId() + "/" + sa.Alert.GetMessageId()
				if seen[key] {
					t.Errorf("alert of %s seen twice", key)
				}
				seen[key] = true
			}
			if finished && len(got) == 0 {
				break
			}
		}
		if len(seen) != 3*perNode {
			t.Errorf("alerts seen: got %d, want %d", len(seen), 3*perNode)
		}
		if last, err := nodes[2].LastAlertSeq(ctx, store.AllTenants(), "a"); err != nil || last != cursor {
			t.Errorf("last alert number: %d, %v; want %d", last, err, cursor)
		}
		if _, err := nodes[0].AlertsAfter(ctx, store.TenantScope("a"), "a", 0, 1); !errors.Is(err, store.ErrForbidden) {
			t.Errorf("follow in a tenant scope: got %v, want ErrForbidden", err)
		}
	})
}

func TestAlertsAddedWakesWaiters(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		added := st.AlertsAdded()
		if _, _, err := st.RecordMessage(t.Context(), store.AllTenants(), record("a", "s1", "clean"), db.clk.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-added:
			t.Fatal("woken by a message without an alert")
		default:
		}
		if _, _, err := st.RecordScan(t.Context(), store.AllTenants(), record("a", "s1", "bad"), alertFor(2, "x"), db.clk.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-added:
		case <-time.After(10 * time.Second):
			t.Fatal("not woken by an alert")
		}
	})
}

func TestAlertRetentionValidate(t *testing.T) {
	for _, tt := range []struct {
		r  AlertRetention
		ok bool
	}{
		{AlertRetention{}, true},
		{AlertRetention{MaxAlerts: 1, MaxAge: time.Hour}, true},
		{AlertRetention{MaxAlerts: -1}, false},
		{AlertRetention{MaxAlerts: MaxMaxAlerts + 1}, false},
		{AlertRetention{MaxAge: time.Minute}, false},
	} {
		if err := tt.r.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok %v", tt.r, err, tt.ok)
		}
	}
	if got := (AlertRetention{}).withDefaults(); got.MaxAlerts != DefaultMaxAlerts || got.MaxAge != DefaultAlertMaxAge {
		t.Errorf("defaults: got %+v", got)
	}
}

func TestSweeperRun(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{MaxAge: time.Hour})
		raise(t, st, db.clk, "a", "s1", 3, high)
		db.clk.Advance(2 * time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		sw := NewSweeper(st, SweeperOptions{Interval: time.Hour})
		go func() { done <- sw.Run(ctx) }()
		// The first sweep runs at once.
		testwait.For(t, "the first sweep to delete the alerts past their age", func() bool { return countAlerts(t, st, "a") == 0 })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil after its context ended", err)
		}
	})
}

// TestConcurrentUploadsOneStore records 300 messages from 30 goroutines on
// one store (on SQLite, they share group commits): each is recorded once,
// and the alerts of every third are numbered 1 to 100 without a gap.
func TestConcurrentUploadsOneStore(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		var wg sync.WaitGroup
		for g := range 30 {
			wg.Go(func() {
				for i := range 10 {
					n := g*10 + i
					var alert *ospreyv1.Alert
					if n%3 == 0 {
						alert = alertFor(2, fmt.Sprint(n))
					}
					rec, dup, err := st.RecordScan(t.Context(), store.AllTenants(), record("a", "s1", fmt.Sprintf("m%03d", n)), alert, db.clk.Now())
					if err != nil || dup || (alert != nil) != (rec.GetAlertId() != "") {
						t.Errorf("message %d: %v, dup %v, %v", n, rec, dup, err)
					}
				}
			})
		}
		wg.Wait()
		if n := countMessages(t, st); n != 300 {
			t.Errorf("records: %d, want 300", n)
		}
		got, err := st.AlertsAfter(t.Context(), store.AllTenants(), "a", 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range got {
			if a.Seq != int64(i+1) {
				t.Fatalf("alert %d numbered %d", i, a.Seq)
			}
		}
		if len(got) != 100 {
			t.Errorf("alerts: %d, want 100", len(got))
		}
	})
}

// TestSQLiteFileModes: only the node's user may read the records.
func TestSQLiteFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	st, err := Open(t.Context(), Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.RecordMessage(t.Context(), store.AllTenants(), record("a", "s1", "m1"), t0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
}
