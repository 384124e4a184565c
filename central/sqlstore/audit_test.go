package sqlstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// accepted records a message that sensor took at a time, from a client,
// with a sender, recipients and a subject.
func accepted(t *testing.T, st *Store, tenant, sensor, id string, at time.Time, client, from, subject string, rcpts ...string) {
	t.Helper()
	rec := &ospreyv1.MessageRecord{
		MessageId: id, SensorId: sensor, Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Verdict: "clean",
		Envelope: &ospreyv1.Envelope{MailFrom: from, RcptTo: rcpts, ClientAddr: client + ":40000", ReceivedAt: timestamppb.New(at)},
		Headers:  &ospreyv1.HeaderSummary{Subject: subject, From: "Someone <" + from + ">", MessageId: "<" + id + "@mail.example>"},
	}
	if _, _, err := st.RecordMessage(t.Context(), store.AllTenants(), rec, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
}

// auditKeys lists every page of q as "kind sensor key" strings.
func auditKeys(t *testing.T, st *Store, scope store.Scope, q AuditQuery) []string {
	t.Helper()
	got := []string{}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("too many pages")
		}
		page, err := st.ListAudit(t.Context(), scope, q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Limit > 0 && len(page.Events) > q.Limit {
			t.Fatalf("page of %d events, limit %d", len(page.Events), q.Limit)
		}
		for _, e := range page.Events {
			switch {
			case e.Message != nil:
				got = append(got, "accepted "+e.SensorID+" "+e.Message.GetMessageId())
			case e.Delivery != nil:
				got = append(got, fmt.Sprintf("delivery %s %s %s %d", e.SensorID, e.Delivery.MessageID, e.Delivery.NextHop, len(e.Delivery.Recipients)))
			default:
				got = append(got, fmt.Sprintf("refused %s %s %s %d", e.SensorID, e.Refusal.ClientIP, e.Refusal.Reason, e.Refusal.Count))
			}
		}
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			return got
		}
	}
}

// auditCase is a query of the log in a scope, and the events it lists.
type auditCase struct {
	name  string
	scope store.Scope
	q     AuditQuery
	want  []string
}

// checkAudit runs each case, a page of 1, 2 and 50 events at a time.
func checkAudit(t *testing.T, st *Store, cases []auditCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 50} {
				q := tt.q
				q.Limit = limit
				if d := cmp.Diff(tt.want, auditKeys(t, st, tt.scope, q)); d != "" {
					t.Errorf("limit %d (-want +got):\n%s", limit, d)
				}
			}
		})
	}
}

func TestAuditLog(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
		accepted(t, st, "a", "s1", "m1", at(1), "192.0.2.1", "Alice@Example.org", "Quarterly report", "ceo@example.com", "cfo@example.com")
		accepted(t, st, "a", "s1", "m2", at(2), "192.0.2.2", "bob@example.net", "100% off_today", "CEO@example.com")
		accepted(t, st, "a", "s2", "m3", at(3), "192.0.2.1", "mallory@evil.example", "Invoice", "ap@example.com")
		accepted(t, st, "b", "s9", "m4", at(3), "192.0.2.1", "alice@example.org", "Other tenant", "ceo@example.com")
		// Refusals of the same client, reason and minute add up, whichever
		// report brings them.
		for range 2 {
			if err := st.RecordRefusals(ctx, store.AllTenants(), "a", "s1", []Refusal{
				{Minute: at(2), ClientIP: "198.51.100.7", Reason: "recipient_refused", Count: 3,
					FirstAt: at(2).Add(time.Second), LastAt: at(2).Add(50 * time.Second), MailFrom: "spam@evil.example", Rcpt: "nobody@example.com"},
				{Minute: at(4), ClientIP: "198.51.100.7", Reason: "tls_invalid_client_certificate", Count: 1,
					FirstAt: at(4), LastAt: at(4), Detail: "x509: certificate signed by unknown authority"},
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.RecordRefusals(ctx, store.TenantScope("b"), "a", "s1", []Refusal{{Minute: at(1), ClientIP: "x", Reason: "r", Count: 1}}); !errors.Is(err, store.ErrForbidden) {
			t.Errorf("refusals of another tenant: got %v, want ErrForbidden", err)
		}

		all := store.AllTenants()
		checkAudit(t, st, []auditCase{
			{"everything of a, newest first", store.TenantScope("a"), AuditQuery{}, []string{
				"refused s1 198.51.100.7 tls_invalid_client_certificate 2",
				"accepted s2 m3",
				"refused s1 198.51.100.7 recipient_refused 6",
				"accepted s1 m2",
				"accepted s1 m1",
			}},
			{"every tenant", all, AuditQuery{Kind: AuditAccepted}, []string{"accepted s9 m4", "accepted s2 m3", "accepted s1 m2", "accepted s1 m1"}},
			{"time range", all, AuditQuery{Tenant: "a", From: at(2), To: at(3)}, []string{"refused s1 198.51.100.7 recipient_refused 6", "accepted s1 m2"}},
			{"sender substring, either From", all, AuditQuery{Sender: "ALICE@"}, []string{"accepted s9 m4", "accepted s1 m1"}},
			{"sender of a refusal", all, AuditQuery{Sender: "spam@"}, []string{"refused s1 198.51.100.7 recipient_refused 6"}},
			{"recipient exact, ignoring case", all, AuditQuery{Tenant: "a", Recipient: "ceo@EXAMPLE.com"}, []string{"accepted s1 m2", "accepted s1 m1"}},
			{"recipient of a refusal", all, AuditQuery{Recipient: "nobody@example.com"}, []string{"refused s1 198.51.100.7 recipient_refused 6"}},
			{"subject with wildcards", all, AuditQuery{Subject: "100% off_"}, []string{"accepted s1 m2"}},
			{"subject underscore is literal", all, AuditQuery{Subject: "report_"}, []string{}},
			{"message id with brackets", all, AuditQuery{MessageID: "<m3@mail.example>"}, []string{"accepted s2 m3"}},
			{"client", store.TenantScope("a"), AuditQuery{ClientIP: "192.0.2.1"}, []string{"accepted s2 m3", "accepted s1 m1"}},
			{"sensor", all, AuditQuery{SensorID: "s2"}, []string{"accepted s2 m3"}},
			{"verdict leaves refusals out", all, AuditQuery{Tenant: "a", Verdict: "clean"}, []string{"accepted s2 m3", "accepted s1 m2", "accepted s1 m1"}},
			{"reason leaves messages out", all, AuditQuery{Reason: "recipient_refused"}, []string{"refused s1 198.51.100.7 recipient_refused 6"}},
			{"refused only", all, AuditQuery{Kind: AuditRefused, Tenant: "a"}, []string{"refused s1 198.51.100.7 tls_invalid_client_certificate 2", "refused s1 198.51.100.7 recipient_refused 6"}},
			{"b sees its own only", store.TenantScope("b"), AuditQuery{}, []string{"accepted s9 m4"}},
		})

		// A refusal keeps what the first of its minute said.
		page, err := st.ListAudit(ctx, all, AuditQuery{Reason: "tls_invalid_client_certificate"})
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("%v, %v", page, err)
		}
		if r := page.Events[0].Refusal; !strings.Contains(r.Detail, "unknown authority") || !r.Minute.Equal(at(4)) || r.Count != 2 {
			t.Errorf("refusal: %+v", r)
		}
		if _, err := st.ListAudit(ctx, store.TenantScope("b"), AuditQuery{Tenant: "a"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b reads a's log: got %v, want ErrNotFound", err)
		}
		for _, q := range []AuditQuery{{Limit: -1}, {Kind: "deleted"}, {ClientIP: "not-an-ip"}, {PageToken: "junk"},
			{From: at(5), To: at(4)}, {Subject: strings.Repeat("x", 300)}, {SensorID: "S/1"}} {
			if _, err := st.ListAudit(ctx, all, q); err == nil {
				t.Errorf("query %+v: accepted", q)
			} else if _, ok := validate.AsErrors(err); !ok {
				t.Errorf("query %+v: got %v, want field errors", q, err)
			}
		}

		// Retention takes records, their recipients and refusals alike.
		if _, _, err := st.Sweep(ctx, all, at(10).Add(DefaultMessageRetention)); err != nil {
			t.Fatal(err)
		}
		if got := auditKeys(t, st, all, AuditQuery{}); len(got) != 0 {
			t.Errorf("after the retention: %v", got)
		}
		var rcpts int
		if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM message_rcpts`).Scan(&rcpts); err != nil || rcpts != 0 {
			t.Errorf("recipients left: %d, %v", rcpts, err)
		}
	})
}
