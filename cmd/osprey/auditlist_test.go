package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

// TestAuditRowOfADelivery: a delivery attempt is a line a recipient, in
// the columns of the other events, with the attempt's own on its first.
func TestAuditRowOfADelivery(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	e := api.AuditEvent{Kind: api.AuditDelivery, Time: at, Tenant: "default", SensorID: "dev", Delivery: &api.AuditDeliveryAttempt{
		MessageID: "m1", Sender: "alice@partner.test", NextHop: "example.com", Host: "mx.example.com [192.0.2.25]:25",
		TLS: "TLS 1.3", Started: at, TookMS: 12,
		Recipients: []api.AuditDeliveryRecipient{
			{Address: "bob@example.com", State: "delivered", Code: 250, Enhanced: "2.0.0", Text: "Ok: queued"},
			{Address: "carol@example.com", State: "deferred", Code: 451, Enhanced: "4.2.0", Text: "busy"},
		},
	}}
	var got [][]string
	for line := range strings.SplitSeq(auditRow(e), "\n") {
		got = append(got, strings.Split(line, "\t"))
	}
	want := [][]string{
		{"2026-03-04 05:06:07", "delivery", "default", "dev", "mx.example.com [192.0.2.25]:25", "alice@partner.test", "bob@example.com",
			"example.com (TLS 1.3)", "delivered 250 2.0.0 Ok: queued", "1"},
		{"", "", "", "", "", "", "carol@example.com", "", "deferred 451 4.2.0 busy", ""},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("audit list columns (-want +got):\n%s", d)
	}
}
