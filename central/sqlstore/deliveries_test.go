package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/central/store"
)

// deferredThenDelivered is a gateway's two attempts at message id to
// next hop example.com: both recipients deferred by a 451 at first, then
// delivered.
func deferredThenDelivered(id string, first, second time.Time) []Delivery {
	attempt := func(at time.Time, state string, code int, enhanced, text string, next time.Time) Delivery {
		d := Delivery{MessageID: id, Sender: "Alice@Partner.test", Direction: "inbound", NextHop: "example.com",
			Host: "mx.example.com [192.0.2.25]:25", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Started: at, Took: 1500 * time.Millisecond}
		for _, rcpt := range []string{"carol@example.com", "Bob@example.com"} {
			d.Recipients = append(d.Recipients, DeliveryRecipient{Address: rcpt, State: state, Code: code, Enhanced: enhanced, Text: text, NextAttempt: next})
		}
		return d
	}
	return []Delivery{
		attempt(first, "deferred", 451, "4.3.0", "try again later", second),
		attempt(second, "delivered", 250, "2.0.0", "Ok: queued as 4F", time.Time{}),
	}
}

func TestAuditDeliveries(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		all := store.AllTenants()
		at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
		accepted(t, st, "a", "s1", "m1", at(1), "192.0.2.1", "alice@partner.test", "Quarterly report", "bob@example.com", "carol@example.com")
		report := append(deferredThenDelivered("m1", at(2), at(4)), Delivery{
			MessageID: "m2", Sender: "dave@example.com", Direction: "outbound", NextHop: "elsewhere.test", Started: at(3),
			Recipients: []DeliveryRecipient{{Address: "erin@elsewhere.test", State: "bounced", Code: 550, Enhanced: "5.1.1",
				Text: strings.Repeat("no such user ", 100)}},
		})
		// A report the central gets twice is recorded once.
		for range 2 {
			if err := st.RecordDeliveries(ctx, store.TenantScope("a"), "a", "s1", report); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.RecordDeliveries(ctx, all, "b", "s9", deferredThenDelivered("m9", at(2), at(3))); err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&rows); err != nil || rows != 9 {
			t.Errorf("rows: %d (%v), want 9: two recipients in each of four attempts, and one", rows, err)
		}
		if err := st.RecordDeliveries(ctx, store.TenantScope("b"), "a", "s1", report); !errors.Is(err, store.ErrForbidden) {
			t.Errorf("deliveries of another tenant: got %v, want ErrForbidden", err)
		}
		huge := []Delivery{{MessageID: "m3", Started: at(1), Recipients: make([]DeliveryRecipient, MaxDeliveryRowsPerReport+1)}}
		if err := st.RecordDeliveries(ctx, all, "a", "s1", huge); err == nil {
			t.Error("a report past the bound was taken")
		}

		checkAudit(t, st, []auditCase{
			{"every kind of a, newest first", store.TenantScope("a"), AuditQuery{}, []string{
				"delivery s1 m1 example.com 2",
				"delivery s1 m2 elsewhere.test 1",
				"delivery s1 m1 example.com 2",
				"accepted s1 m1",
			}},
			{"deliveries only", all, AuditQuery{Kind: AuditDelivery}, []string{
				"delivery s1 m1 example.com 2",
				"delivery s9 m9 example.com 2",
				"delivery s1 m2 elsewhere.test 1",
				"delivery s9 m9 example.com 2",
				"delivery s1 m1 example.com 2",
			}},
			{"time range", all, AuditQuery{Tenant: "a", From: at(2), To: at(4)}, []string{"delivery s1 m2 elsewhere.test 1", "delivery s1 m1 example.com 2"}},
			{"recipient, ignoring case", all, AuditQuery{Tenant: "a", Recipient: "BOB@example.com"}, []string{
				"delivery s1 m1 example.com 2", "delivery s1 m1 example.com 2", "accepted s1 m1",
			}},
			{"sender substring", all, AuditQuery{Sender: "dave@"}, []string{"delivery s1 m2 elsewhere.test 1"}},
			{"a message's Message-ID finds its attempts", all, AuditQuery{MessageID: "m1@mail.example"}, []string{
				"delivery s1 m1 example.com 2", "delivery s1 m1 example.com 2", "accepted s1 m1",
			}},
			{"sensor", all, AuditQuery{SensorID: "s9"}, []string{"delivery s9 m9 example.com 2", "delivery s9 m9 example.com 2"}},
			{"client leaves deliveries out", all, AuditQuery{ClientIP: "192.0.2.1"}, []string{"accepted s1 m1"}},
			{"verdict leaves deliveries out", all, AuditQuery{Verdict: "clean"}, []string{"accepted s1 m1"}},
			{"reason leaves deliveries out", all, AuditQuery{Kind: AuditDelivery, Reason: "client_refused"}, []string{}},
			{"b sees its own only", store.TenantScope("b"), AuditQuery{}, []string{"delivery s9 m9 example.com 2", "delivery s9 m9 example.com 2"}},
		})

		// An event is the whole attempt, with each recipient's reply.
		page, err := st.ListAudit(ctx, all, AuditQuery{Kind: AuditDelivery, Tenant: "a", To: at(3)})
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("%+v, %v", page, err)
		}
		e := page.Events[0]
		want := deferredThenDelivered("m1", at(2), at(4))[0]
		want.Sender = "alice@partner.test"
		want.Recipients[0], want.Recipients[1] = want.Recipients[1], want.Recipients[0]
		want.Recipients[0].Address = "bob@example.com"
		if d := cmp.Diff(&want, e.Delivery); d != "" || e.Kind != AuditDelivery || !e.Time.Equal(at(2)) || e.Tenant != "a" || e.SensorID != "s1" {
			t.Errorf("event %s at %v of %s/%s (-want +got):\n%s", e.Kind, e.Time, e.Tenant, e.SensorID, d)
		}
		page, err = st.ListAudit(ctx, all, AuditQuery{Kind: AuditDelivery, Sender: "dave"})
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("%+v, %v", page, err)
		}
		if text := page.Events[0].Delivery.Recipients[0].Text; len(text) > maxDeliveryText {
			t.Errorf("a reply of %d bytes kept", len(text))
		}

		// One message's attempts, oldest first.
		got, err := st.MessageDeliveries(ctx, store.TenantScope("a"), "a", "s1", "m1")
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, d := range got {
			for _, r := range d.Recipients {
				states = append(states, d.Started.Sub(t0).String()+" "+r.Address+" "+r.State)
			}
		}
		if d := cmp.Diff([]string{"2m0s bob@example.com deferred", "2m0s carol@example.com deferred",
			"4m0s bob@example.com delivered", "4m0s carol@example.com delivered"}, states); d != "" {
			t.Errorf("the attempts of m1 (-want +got):\n%s", d)
		}
		if _, err := st.MessageDeliveries(ctx, store.TenantScope("b"), "a", "s1", "m1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b reads a's attempts: got %v, want ErrNotFound", err)
		}

		// Retention takes the attempts with the records.
		if _, _, err := st.Sweep(ctx, all, at(10).Add(DefaultMessageRetention)); err != nil {
			t.Fatal(err)
		}
		if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&rows); err != nil || rows != 0 {
			t.Errorf("rows after the retention: %d, %v", rows, err)
		}
	})
}

// TestAuditTokens: the page tokens of the log's three kinds parse, and
// those of before the delivery kind still do.
func TestAuditTokens(t *testing.T) {
	for _, c := range []auditCursor{
		{t: 1, kind: AuditAccepted, tenant: "a", sensor: "s1", key: []string{"m1"}},
		{t: 2, kind: AuditRefused, tenant: "a", sensor: "s1", key: []string{"60", "192.0.2.1", "client_refused"}},
		{t: 3, kind: AuditDelivery, tenant: "a", sensor: "s1", key: []string{"m1", "example.com"}},
	} {
		got, ok := parseAuditToken(c.token())
		if !ok || !cmp.Equal(got, c, cmp.AllowUnexported(auditCursor{})) {
			t.Errorf("token of %+v: parsed as %+v, %v", c, got, ok)
		}
	}
	for _, bad := range []auditCursor{
		{t: 1, kind: AuditDelivery, tenant: "a", sensor: "s1", key: []string{"m1"}},
		{t: 1, kind: AuditAccepted, tenant: "a", sensor: "s1", key: []string{"m1", "example.com"}},
	} {
		if _, ok := parseAuditToken(bad.token()); ok {
			t.Errorf("token of %+v: parsed", bad)
		}
	}
}
