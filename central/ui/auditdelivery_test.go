package ui_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
)

// deliver records a gateway's delivery attempts, as a sensor's report does.
func (e *env) deliver(tenant, sensor string, ds ...sqlstore.Delivery) {
	e.t.Helper()
	if err := e.db.RecordDeliveries(e.t.Context(), store.AllTenants(), tenant, sensor, ds); err != nil {
		e.t.Fatal(err)
	}
}

// TestAuditLogShowsDeliveries: a gateway's attempts at a message are rows
// of the log, whose details give the next hop, the host, the TLS and each
// recipient's reply and state, and steps of the message's timeline.
func TestAuditLogShowsDeliveries(t *testing.T) {
	e := newEnv(t)
	e.record(auditMessage("default", "s1", "m1", auditT0, "alice@partner.example", "Quarterly report", "bob@example.com", "carol@example.com"), nil)
	first, second := auditT0.Add(time.Minute), auditT0.Add(11*time.Minute)
	e.deliver("default", "s1",
		sqlstore.Delivery{MessageID: "m1", Sender: "alice@partner.example", Direction: "inbound", NextHop: "example.com",
			Host: "mx.example.com [192.0.2.25]:25", Started: first, Took: 320 * time.Millisecond,
			Recipients: []sqlstore.DeliveryRecipient{
				{Address: "bob@example.com", State: "delivered", Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4F"},
				{Address: "carol@example.com", State: "deferred", Code: 451, Enhanced: "4.2.0", Text: "4.2.0 mailbox busy", NextAttempt: second},
			}},
		sqlstore.Delivery{MessageID: "m1", Sender: "alice@partner.example", Direction: "inbound", NextHop: "example.com",
			Host: "mx.example.com [192.0.2.25]:25", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Started: second, Took: 2 * time.Second,
			Recipients: []sqlstore.DeliveryRecipient{{Address: "carol@example.com", State: "delivered", Code: 250, Enhanced: "2.0.0", Text: "Ok"}}},
	)
	key := func(at time.Time) string { return fmt.Sprintf("delivery s1/m1/%d/example.com", at.UnixMicro()) }

	b := e.signedIn("alice")
	p := b.get("/audit")
	if d := cmp.Diff([]string{key(second), key(first), "accepted s1/m1"}, auditRows(t, p)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	table := text(byID(p.doc(t), "audit-table"))
	for _, want := range []string{
		"2026-02-28 09:01:00 UTC delivery inbound sensor-s1 — alice@partner.example bob@example.com, carol@example.com — delivered deferred to example.com at mx.example.com [192.0.2.25]:25",
		"Next hop example.com Host mx.example.com [192.0.2.25]:25 TLS none Started 2026-02-28 09:01:00 UTC Took 320ms",
		"bob@example.com delivered 250 2.0.0 Ok: queued as 4F —",
		"carol@example.com deferred 451 4.2.0 mailbox busy 2026-02-28 09:11:00 UTC",
		"TLS TLS 1.3 TLS_AES_128_GCM_SHA256",
	} {
		if !strings.Contains(squash(table), squash(want)) {
			t.Errorf("the audit table lacks %q:\n%s", want, table)
		}
	}
	// Each attempt's detail row spans every column, and its button names it.
	cols := strings.Count(p.body, `<th scope="col"`) - 2*4 // less the columns of the two recipient tables
	spans := regexp.MustCompile(`<tr class="delivery-detail" id="(delivery-\d+)">\s*<td colspan="(\d+)">`).FindAllStringSubmatch(p.body, -1)
	if len(spans) != 2 {
		t.Fatalf("%d delivery detail rows, want 2", len(spans))
	}
	for _, m := range spans {
		if m[2] != fmt.Sprint(cols) || !strings.Contains(p.body, `aria-controls="`+m[1]+`"`) {
			t.Errorf("the attempt's detail row %s spans %s columns of %d, or no button names it", m[1], m[2], cols)
		}
	}

	// The kind filter, and the Message-ID that finds the message and its
	// attempts.
	for query, want := range map[string][]string{
		"kind=delivery":                      {key(second), key(first)},
		"message_id=m1%40mail.example":       {key(second), key(first), "accepted s1/m1"},
		"kind=delivery&client_ip=192.0.2.10": {},
	} {
		p := b.get("/audit?" + query)
		if p.status != http.StatusOK {
			t.Fatalf("?%s: got %d", query, p.status)
		}
		if d := cmp.Diff(append([]string{}, want...), auditRows(t, p)); d != "" {
			t.Errorf("?%s (-want +got):\n%s", query, d)
		}
	}
	if got := filterValue(t, b.get("/audit?kind=delivery"), "au-kind"); got != "delivery" {
		t.Errorf("the kind filter shows %q, want delivery", got)
	}

	// The message's timeline ends with its attempts, oldest first.
	d := b.get("/audit/default/s1/m1")
	if d.status != http.StatusOK {
		t.Fatalf("got %d\n%s", d.status, d.body)
	}
	doc := d.doc(t)
	for id, want := range map[string]string{
		"step-attempt-0": "2026-02-28 09:01:00 UTC Delivery attempt to example.com: delivered deferred Next hop example.com Host mx.example.com [192.0.2.25]:25 TLS none",
		"step-attempt-1": "2026-02-28 09:11:00 UTC Delivery attempt to example.com: delivered Next hop example.com Host mx.example.com [192.0.2.25]:25 TLS TLS 1.3 TLS_AES_128_GCM_SHA256",
	} {
		if got := text(byID(doc, id)); !strings.Contains(squash(got), squash(want)) {
			t.Errorf("#%s:\n got %q\nwant it to contain %q", id, got, want)
		}
	}
	if !strings.Contains(squash(text(byID(doc, "step-attempt-1"))), squash("carol@example.com delivered 250 2.0.0 Ok")) {
		t.Errorf("the second attempt lacks carol's reply: %s", text(byID(doc, "step-attempt-1")))
	}
	// Another tenant sees none of it.
	if rows := auditRows(t, e.signedIn("bob").get("/audit?kind=delivery")); len(rows) != 0 {
		t.Errorf("bob sees %v", rows)
	}
}
