package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// clock is a settable clock for the store.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// alertStore returns a store with retention r over a fresh etcd, its clock
// at t0, and tenants a and b.
func alertStore(t *testing.T, r AlertRetention) (*Store, *clock, *clientv3.Client) {
	t.Helper()
	cli := etcdtest.Client(t)
	clk := &clock{}
	clk.Set(t0)
	st := NewWithOptions(cli, Options{AlertRetention: r, Now: clk.Now})
	mustCreate(t, st, []string{"a", "b"})
	return st, clk, cli
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

func countAlerts(t *testing.T, cli *clientv3.Client, tenant string) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), tenantAlertsPrefix(tenant), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func TestAlertID(t *testing.T) {
	id := AlertID(t0, "s1", "m1")
	if err := checkAlertID(id); err != nil || !validID(id) {
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

func TestRecordScanRaisesOneAlertPerMessage(t *testing.T) {
	st, clk, cli := alertStore(t, AlertRetention{})
	ctx := t.Context()
	scope := TenantScope("a")

	// Ten concurrent uploads of the same message (retries on several nodes):
	// one record, one alert, and every caller learns the same alert id.
	const n = 10
	var wg sync.WaitGroup
	recs := make([]*ospreyv1.MessageRecord, n)
	dups := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := clk.Now().Add(time.Duration(i) * time.Millisecond)
			var err error
			recs[i], dups[i], err = st.RecordScan(ctx, scope, record("a", "s1", "m1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "Invoice"), now)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := countAlerts(t, cli, "a"); got != 1 {
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

	// A clean message: a record without an alert (RecordMessage is RecordScan without one).
	clean, dup, err := st.RecordMessage(ctx, scope, record("a", "s1", "m2"), clk.Now())
	if err != nil || dup || clean.GetAlertId() != "" {
		t.Errorf("clean message: %v, dup %v, %v", clean, dup, err)
	}

	// What RecordScan refuses.
	other := alertFor(ospreyv1.Severity_SEVERITY_LOW, "x")
	other.Tenant = "b"
	if _, _, err := st.RecordScan(ctx, AllTenants(), record("a", "s1", "m3"), other, clk.Now()); err == nil {
		t.Error("an alert of another tenant than its message: accepted")
	}
	if _, _, err := st.RecordScan(ctx, scope, record("b", "s2", "m3"), alertFor(ospreyv1.Severity_SEVERITY_LOW, "x"), clk.Now()); !errors.Is(err, ErrForbidden) {
		t.Errorf("a message of another tenant: got %v, want ErrForbidden", err)
	}
	badID := alertFor(ospreyv1.Severity_SEVERITY_LOW, "x")
	badID.Id = "not-an-alert-id"
	if _, _, err := st.RecordScan(ctx, scope, record("a", "s1", "m4"), badID, clk.Now()); !errors.Is(err, ErrInvalidID) {
		t.Errorf("a bad alert id: got %v, want ErrInvalidID", err)
	}
	if _, err := st.GetMessage(ctx, scope, "a", "s1", "m4"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record of a refused scan: got %v, want none", err)
	}
}

// raise records n alerts of tenant on sensor, one a second from the clock's
// time, and returns their ids, oldest first.
func raise(t *testing.T, st *Store, clk *clock, tenant, sensor string, n int, sev func(i int) ospreyv1.Severity) []string {
	t.Helper()
	var ids []string
	for i := range n {
		clk.Advance(time.Second)
		msg := fmt.Sprintf("%s-m%d-%d", sensor, i, clk.Now().Unix())
		rec, _, err := st.RecordScan(t.Context(), AllTenants(), record(tenant, sensor, msg),
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

func TestListAlertsPagesNewestFirstAcrossTenants(t *testing.T) {
	st, clk, _ := alertStore(t, AlertRetention{})
	ctx := t.Context()
	var all []string
	for i := range 7 {
		all = append(all, raise(t, st, clk, []string{"a", "b"}[i%2], "s"+[]string{"1", "2"}[i%2], 3, high)...)
	}
	slices.Reverse(all)

	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		page, err := st.ListAlerts(ctx, AllTenants(), AlertQuery{Limit: 4, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Alerts) > 4 {
			t.Fatalf("page of %d alerts, limit 4", len(page.Alerts))
		}
		got = append(got, alertIDs(page.Alerts)...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if d := cmp.Diff(all, got); d != "" {
		t.Errorf("alerts over every page (-want +got):\n%s", d)
	}

	// A tenant scope sees its tenant only; naming another is not found.
	page, err := st.ListAlerts(ctx, TenantScope("b"), AlertQuery{Limit: MaxPageLimit})
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
	if _, err := st.ListAlerts(ctx, TenantScope("b"), AlertQuery{Tenant: "a"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("b lists a's alerts: got %v, want ErrNotFound", err)
	}
	// all[0] is a's newest (of 7 groups of 3, the last is a's).
	if _, err := st.GetAlert(ctx, TenantScope("b"), "", all[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("b gets a's alert: got %v, want ErrNotFound", err)
	}
	if a, err := st.GetAlert(ctx, AllTenants(), "", all[0]); err != nil || a.GetId() != all[0] {
		t.Errorf("admin gets an alert without its tenant: %v, %v", a, err)
	}
}

func TestListAlertsFilters(t *testing.T) {
	st, clk, _ := alertStore(t, AlertRetention{})
	ctx := t.Context()
	sevs := []ospreyv1.Severity{ospreyv1.Severity_SEVERITY_LOW, ospreyv1.Severity_SEVERITY_MEDIUM, ospreyv1.Severity_SEVERITY_HIGH, ospreyv1.Severity_SEVERITY_CRITICAL}
	a1 := raise(t, st, clk, "a", "s1", 8, func(i int) ospreyv1.Severity { return sevs[i%4] })
	mid := clk.Now()
	a3 := raise(t, st, clk, "a", "s3", 4, func(i int) ospreyv1.Severity { return sevs[i%4] })
	b2 := raise(t, st, clk, "b", "s2", 2, high)

	rev := func(ids ...string) []string {
		out := slices.Clone(ids)
		slices.Reverse(out)
		return out
	}
	tests := []struct {
		name  string
		scope Scope
		q     AlertQuery
		want  []string
	}{
		{"severity", AllTenants(), AlertQuery{MinSeverity: ospreyv1.Severity_SEVERITY_CRITICAL}, rev(a1[3], a1[7], a3[3])},
		{"severity high and tenant", AllTenants(), AlertQuery{Tenant: "b", MinSeverity: ospreyv1.Severity_SEVERITY_HIGH}, rev(b2...)},
		{"since", TenantScope("a"), AlertQuery{Since: mid.Add(time.Nanosecond)}, rev(a3...)},
		{"sensor", AllTenants(), AlertQuery{SensorID: "s3"}, rev(a3...)},
		{"q subject ignoring case", AllTenants(), AlertQuery{Q: "SUBJECT B 1"}, []string{b2[1]}},
		{"q attachment", AllTenants(), AlertQuery{Q: "eicar.com", Tenant: "b"}, rev(b2...)},
		{"q match", TenantScope("b"), AlertQuery{Q: "eicar-test"}, rev(b2...)},
		{"q recipient", TenantScope("b"), AlertQuery{Q: "ceo@"}, rev(b2...)},
		{"q nothing", AllTenants(), AlertQuery{Q: "no such thing"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			tok := ""
			for {
				q := tt.q
				q.PageToken, q.Limit = tok, 2
				page, err := st.ListAlerts(ctx, tt.scope, q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, alertIDs(page.Alerts)...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
			}
			if got == nil {
				got = []string{}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}

	for _, q := range []AlertQuery{{Limit: MaxPageLimit + 1}, {Limit: -1}, {PageToken: "junk"}, {SensorID: "S/1"}, {Q: strings.Repeat("x", 300)}, {MinSeverity: 7}} {
		if _, err := st.ListAlerts(ctx, AllTenants(), q); err == nil {
			t.Errorf("query %+v: accepted", q)
		} else if _, ok := validate.AsErrors(err); !ok {
			t.Errorf("query %+v: got %v, want field errors", q, err)
		}
	}
}

func TestAlertRetention(t *testing.T) {
	st, clk, cli := alertStore(t, AlertRetention{MaxAlerts: 10, MaxAge: 2 * time.Hour})
	ctx := t.Context()

	// Count: RecordScan trims every MaxAlerts/100 (here: every) alert, so the
	// tenant never holds more than MaxAlerts, and the newest stay.
	ids := raise(t, st, clk, "a", "s1", 25, high)
	if got := countAlerts(t, cli, "a"); got != 10 {
		t.Errorf("alerts kept: got %d, want 10", got)
	}
	page, err := st.ListAlerts(ctx, AllTenants(), AlertQuery{Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(ids[15:])
	slices.Reverse(want)
	if d := cmp.Diff(want, alertIDs(page.Alerts)); d != "" {
		t.Errorf("kept alerts (-want +got):\n%s", d)
	}

	// Age: past MaxAge an alert is hidden at once, and the sweep deletes it.
	raise(t, st, clk, "b", "s2", 3, high)
	clk.Advance(2*time.Hour - time.Second) // b's first alert is now 2h 1s old
	page, err = st.ListAlerts(ctx, AllTenants(), AlertQuery{Tenant: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Alerts) != 2 {
		t.Errorf("b's alerts listed after 2h: got %d, want 2", len(page.Alerts))
	}
	n, err := st.SweepAlerts(ctx, AllTenants(), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != 11 { // all 10 of a's, one of b's
		t.Errorf("swept: got %d, want 11", n)
	}
	if a, b := countAlerts(t, cli, "a"), countAlerts(t, cli, "b"); a != 0 || b != 2 {
		t.Errorf("after the sweep: a %d, b %d; want 0 and 2", a, b)
	}
	if _, err := st.GetAlert(ctx, AllTenants(), "a", ids[24]); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired alert: got %v, want ErrNotFound", err)
	}
	if _, err := st.TrimAlerts(ctx, TenantScope("a"), "a", clk.Now()); !errors.Is(err, ErrForbidden) {
		t.Errorf("trim in a tenant scope: got %v, want ErrForbidden", err)
	}
}

// TestConcurrentTrimsDeleteOnlyTheExcess runs trimmers of several "nodes" at
// once with writers: however they interleave, no trim deletes more than the
// oldest beyond the cap.
func TestConcurrentTrimsDeleteOnlyTheExcess(t *testing.T) {
	cli := etcdtest.Client(t)
	ctx := t.Context()
	const max = 50
	clk := &clock{}
	clk.Set(t0)
	nodes := make([]*Store, 4)
	for i := range nodes {
		// MaxAlerts 5000 keeps RecordScan from trimming by itself.
		nodes[i] = NewWithOptions(cli, Options{AlertRetention: AlertRetention{MaxAlerts: 5000}, Now: clk.Now})
	}
	mustCreate(t, nodes[0], []string{"a"})
	// 120 alerts, then 4 trimmers at once with a cap of max (through a store
	// of that retention).
	for i := range 120 {
		now := t0.Add(time.Duration(i) * time.Second)
		if _, _, err := nodes[i%4].RecordScan(ctx, AllTenants(), record("a", "s1", fmt.Sprintf("m%03d", i)), alertFor(3, "x"), now); err != nil {
			t.Fatal(err)
		}
	}
	trimmer := NewWithOptions(cli, Options{AlertRetention: AlertRetention{MaxAlerts: max}, Now: clk.Now})
	var wg sync.WaitGroup
	var deleted atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := trimmer.TrimAlerts(ctx, AllTenants(), "a", t0.Add(time.Hour))
			if err != nil {
				t.Error(err)
			}
			deleted.Add(n)
		}()
	}
	wg.Wait()
	if got := countAlerts(t, cli, "a"); got != max {
		t.Errorf("alerts after concurrent trims: got %d, want %d", got, max)
	}
	if deleted.Load() != 120-max {
		t.Errorf("deleted: got %d, want %d", deleted.Load(), 120-max)
	}
	page, err := trimmer.ListAlerts(ctx, AllTenants(), AlertQuery{Tenant: "a", Limit: 1})
	if err != nil || len(page.Alerts) != 1 || page.Alerts[0].GetMessageId() != "m119" {
		t.Errorf("newest alert after trims: %v, %v; want m119's", page, err)
	}
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

func TestListMessagesPage(t *testing.T) {
	st, clk, _ := alertStore(t, AlertRetention{})
	ctx := t.Context()
	mustCreate(t, st, nil, [2]string{"a", "s1"}, [2]string{"b", "s2"})
	var want []string
	for i := range 7 {
		msg := fmt.Sprintf("m%02d", i)
		if _, _, err := st.RecordMessage(ctx, AllTenants(), record("a", "s1", msg), clk.Now()); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg)
	}
	if _, _, err := st.RecordScan(ctx, AllTenants(), record("b", "s2", "x1"), alertFor(2, "y"), clk.Now()); err != nil {
		t.Fatal(err)
	}
	pages := func(scope Scope, q MessageQuery) []string {
		t.Helper()
		var got []string
		for i := 0; ; i++ {
			if i > 20 {
				t.Fatal("too many pages")
			}
			p, err := st.ListMessagesPage(ctx, scope, q)
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
	if d := cmp.Diff(want, pages(TenantScope("a"), MessageQuery{Limit: 3})); d != "" {
		t.Errorf("a's messages (-want +got):\n%s", d)
	}
	if d := cmp.Diff(append(slices.Clone(want), "x1"), pages(AllTenants(), MessageQuery{Limit: 2})); d != "" {
		t.Errorf("every message (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"x1"}, pages(AllTenants(), MessageQuery{SensorID: "s2"})); d != "" {
		t.Errorf("s2's messages by sensor alone (-want +got):\n%s", d)
	}
	if _, err := st.ListMessagesPage(ctx, TenantScope("b"), MessageQuery{Tenant: "a"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("b lists a's messages: got %v, want ErrNotFound", err)
	}
	// A token of a's list does not open a's records to b.
	p, err := st.ListMessagesPage(ctx, TenantScope("a"), MessageQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ListMessagesPage(ctx, TenantScope("b"), MessageQuery{PageToken: p.NextPageToken}); err == nil {
		t.Error("b continued a's list")
	}
}

func TestAlertSweeperRun(t *testing.T) {
	st, clk, cli := alertStore(t, AlertRetention{MaxAge: time.Hour})
	raise(t, st, clk, "a", "s1", 3, high)
	clk.Advance(2 * time.Hour)
	wch := cli.Watch(t.Context(), tenantAlertsPrefix("a"), clientv3.WithPrefix())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- NewAlertSweeper(st, AlertSweeperOptions{Interval: time.Hour}).Run(ctx) }()
	// The first sweep runs at once: wait for its deletion.
	deleted := 0
	for deleted < 3 {
		wr := <-wch
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				deleted++
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil after its context ended", err)
	}
	if got := countAlerts(t, cli, "a"); got != 0 {
		t.Errorf("alerts after the sweep: got %d, want 0", got)
	}
}

// TestRecordScanKnowsAPOP3MessageByItsUIDL: the same POP3 message polled by
// two sensors (a poller that crashed after RETR, and the central node that
// took the mailbox over) is recorded and alerted once; another UIDL, or the
// same UIDL of another mailbox, is another message.
func TestRecordScanKnowsAPOP3MessageByItsUIDL(t *testing.T) {
	st, clk, cli := alertStore(t, AlertRetention{})
	ctx := t.Context()
	scope := TenantScope("a")
	polled := func(sensor, msg, mailbox, uidl string) *ospreyv1.MessageRecord {
		r := record("a", sensor, msg)
		r.Source = ospreyv1.MailSource_MAIL_SOURCE_POP3
		r.Envelope.Mailbox = mailbox
		r.Uidl = uidl
		return r
	}
	first, dup, err := st.RecordScan(ctx, scope, polled("node1", "m1", "soc@pop.example.com", "UID-1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), clk.Now())
	if err != nil || dup {
		t.Fatalf("first upload: dup %v, err %v", dup, err)
	}
	again, dup, err := st.RecordScan(ctx, scope, polled("node2", "m9", "soc@pop.example.com", "UID-1"), alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), clk.Now())
	if err != nil || !dup {
		t.Fatalf("the same message from another sensor: dup %v, err %v; want a duplicate", dup, err)
	}
	if again.GetSensorId() != "node1" || again.GetAlertId() != first.GetAlertId() {
		t.Errorf("duplicate answered with %v, want the first record %v", again, first)
	}
	if _, err := st.GetMessage(ctx, scope, "a", "node2", "m9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the duplicate was recorded under its own id: %v", err)
	}
	for _, r := range []*ospreyv1.MessageRecord{
		polled("node2", "m10", "soc@pop.example.com", "UID-2"),
		polled("node2", "m11", "other@pop.example.com", "UID-1"),
	} {
		if _, dup, err := st.RecordScan(ctx, scope, r, alertFor(ospreyv1.Severity_SEVERITY_HIGH, "x"), clk.Now()); err != nil || dup {
			t.Errorf("%s %s: dup %v, err %v; want a new message", r.GetEnvelope().GetMailbox(), r.GetUidl(), dup, err)
		}
	}
	if got := countAlerts(t, cli, "a"); got != 3 {
		t.Errorf("alerts: got %d, want 3", got)
	}
}
