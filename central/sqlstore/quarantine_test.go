package sqlstore

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// quarantinedRecord is a gateway message's record the central told its
// sensor to quarantine.
func quarantinedRecord(tenant, sensor, msg, subject string) *ospreyv1.MessageRecord {
	rec := record(tenant, sensor, msg)
	rec.Envelope.Direction = ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
	rec.Headers = &ospreyv1.HeaderSummary{Subject: subject}
	rec.Disposition = &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, Reason: "eicar: " + subject}
	return rec
}

// TestQuarantineRows: a record whose disposition is quarantine lists the
// message once (its upload retried adds nothing), per tenant, newest first
// with filters and pages; operators' actions, pending ones and the
// sensor's reports change its state and add to its history; retention
// keeps what a sensor still holds.
func TestQuarantineRows(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		for i, r := range []*ospreyv1.MessageRecord{
			quarantinedRecord("a", "s1", "m1", "invoice"),
			quarantinedRecord("a", "s1", "m2", "Payment due"),
			quarantinedRecord("b", "s2", "m3", "invoice"),
			record("a", "s1", "m4"), // a monitored copy: not quarantined
		} {
			if _, _, err := st.RecordScan(ctx, store.AllTenants(), r, nil, t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if _, dup, err := st.RecordScan(ctx, store.AllTenants(), quarantinedRecord("a", "s1", "m1", "invoice"), nil, t0.Add(time.Hour)); err != nil || !dup {
			t.Fatalf("the retried upload: dup %v, %v", dup, err)
		}
		ids := func(p QuarantinePage) []string {
			var out []string
			for _, m := range p.Messages {
				out = append(out, m.MessageID)
			}
			return out
		}
		list := func(scope store.Scope, q QuarantineQuery) QuarantinePage {
			t.Helper()
			p, err := st.ListQuarantine(ctx, scope, q)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		if d := cmp.Diff([]string{"m3", "m2", "m1"}, ids(list(store.AllTenants(), QuarantineQuery{}))); d != "" {
			t.Errorf("all (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"m2", "m1"}, ids(list(store.TenantScope("a"), QuarantineQuery{}))); d != "" {
			t.Errorf("tenant a's (-want +got):\n%s", d)
		}
		if got := list(store.TenantScope("a"), QuarantineQuery{Tenant: "b"}); len(got.Messages) != 0 {
			t.Errorf("tenant a asking for b's: %v", ids(got))
		}
		if d := cmp.Diff([]string{"m3", "m1"}, ids(list(store.AllTenants(), QuarantineQuery{Subject: "INVOICE"}))); d != "" {
			t.Errorf("by subject (-want +got):\n%s", d)
		}
		p1 := list(store.AllTenants(), QuarantineQuery{Limit: 2})
		p2 := list(store.AllTenants(), QuarantineQuery{Limit: 2, After: p1.Next})
		if d := cmp.Diff([]string{"m3", "m2", "m1"}, append(ids(p1), ids(p2)...)); d != "" || p2.Next != "" {
			t.Errorf("pages (-want +got):\n%s\nlast next %q", d, p2.Next)
		}
		if _, err := st.ListQuarantine(ctx, store.AllTenants(), QuarantineQuery{After: "nonsense"}); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("a bad cursor: %v", err)
		}

		q, _, err := st.GetQuarantined(ctx, store.AllTenants(), "a", "s1", "m1")
		if err != nil {
			t.Fatal(err)
		}
		if q.State != QuarantineHeld || q.Reason != "eicar: invoice" || q.Sender != "bad@evil.example" ||
			!cmp.Equal(q.Rcpts, []string{"ceo@example.com"}) || q.Direction != "inbound" || !q.At.Equal(t0) {
			t.Errorf("row %+v", q)
		}
		if _, _, err := st.GetQuarantined(ctx, store.TenantScope("b"), "a", "s1", "m1"); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrForbidden) {
			t.Errorf("tenant b reads a's: %v", err)
		}

		// An action asked for while the sensor is offline waits.
		if err := st.UpdateQuarantined(ctx, store.AllTenants(), "a", "s1", "m1", QuarantineChange{Pending: "release_to",
			PendingTo: []string{"admin@example.com"}, Event: QuarantineEvent{At: t0.Add(2 * time.Hour), Action: "release_to", Actor: "alice"}}); err != nil {
			t.Fatal(err)
		}
		pending, err := st.PendingQuarantine(ctx, store.AllTenants(), "a", "s1", 10)
		if err != nil || len(pending) != 1 || pending[0].Pending != "release_to" || pending[0].PendingBy != "alice" ||
			!cmp.Equal(pending[0].PendingTo, []string{"admin@example.com"}) {
			t.Fatalf("pending %+v, %v", pending, err)
		}
		if err := st.UpdateQuarantined(ctx, store.AllTenants(), "a", "s1", "m1", QuarantineChange{State: QuarantineReleased,
			Event: QuarantineEvent{At: t0.Add(3 * time.Hour), Action: "released", Actor: "alice"}}); err != nil {
			t.Fatal(err)
		}
		if pending, _ := st.PendingQuarantine(ctx, store.AllTenants(), "a", "s1", 10); len(pending) != 0 {
			t.Errorf("pending after the release: %+v", pending)
		}
		if err := st.UpdateQuarantined(ctx, store.AllTenants(), "a", "s1", "nope", QuarantineChange{State: QuarantineDeleted}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update of no row: %v", err)
		}

		// The sensor's reports: an eviction of one held, and a late report
		// of the released one, which stays released.
		if err := st.RecordQuarantineEvents(ctx, store.AllTenants(), "a", "s1", []*ospreyv1.QuarantineEvent{
			{MessageId: "m2", Kind: ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED, At: timestamppb.New(t0.Add(4 * time.Hour))},
			{MessageId: "m1", Kind: ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED, At: timestamppb.New(t0.Add(4 * time.Hour))},
		}); err != nil {
			t.Fatal(err)
		}
		q1, history, err := st.GetQuarantined(ctx, store.AllTenants(), "a", "s1", "m1")
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range history {
			actions = append(actions, e.Action+" by "+e.Actor)
		}
		if d := cmp.Diff([]string{"quarantined by central", "release_to by alice", "released by alice"}, actions); d != "" || q1.State != QuarantineReleased {
			t.Errorf("m1 %s, history (-want +got):\n%s", q1.State, d)
		}
		if q2, _, _ := st.GetQuarantined(ctx, store.AllTenants(), "a", "s1", "m2"); q2.State != QuarantineEvicted {
			t.Errorf("m2 %s, want evicted", q2.State)
		}
		if got := ids(list(store.AllTenants(), QuarantineQuery{State: QuarantineHeld})); !cmp.Equal(got, []string{"m3"}) {
			t.Errorf("still held: %v, want m3", got)
		}

		// The steps are in the audit log, newest first, with who took them.
		audit, err := st.ListAudit(ctx, store.TenantScope("a"), AuditQuery{Kind: AuditQuarantine, SensorID: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		for _, e := range audit.Events {
			steps = append(steps, e.QuarantineID+" "+e.Quarantine.Action+" by "+e.Quarantine.Actor)
		}
		wantSteps := []string{"m2 evicted by sensor", "m1 released by alice", "m1 release_to by alice", "m2 quarantined by central", "m1 quarantined by central"}
		if d := cmp.Diff(wantSteps, steps); d != "" {
			t.Errorf("audit log (-want +got):\n%s", d)
		}
		p1a, err := st.ListAudit(ctx, store.AllTenants(), AuditQuery{Kind: AuditQuarantine, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		p2a, err := st.ListAudit(ctx, store.AllTenants(), AuditQuery{Kind: AuditQuarantine, Limit: 10, PageToken: p1a.NextPageToken})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p1a.Events) + len(p2a.Events); n != 6 || p1a.NextPageToken == "" {
			t.Errorf("paged: %d + %d steps, want 6 in all", len(p1a.Events), len(p2a.Events))
		}

		// Retention: what is no longer held goes; m3, still held, stays.
		if _, _, err := st.Sweep(ctx, store.AllTenants(), t0.Add(40*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := ids(list(store.AllTenants(), QuarantineQuery{})); !cmp.Equal(got, []string{"m3"}) {
			t.Errorf("after the retention: %v, want m3", got)
		}
	})
}
