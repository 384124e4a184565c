package tests

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// deliveryEvents returns the delivery attempts of the audit log to rcpt,
// newest first, through the REST API.
func deliveryEvents(t *testing.T, c *api.Client, rcpt string) []api.AuditEvent {
	t.Helper()
	list, err := c.Audit(t.Context(), api.AuditQuery{Kind: api.AuditDelivery, Recipient: rcpt})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Events {
		if e.Kind != api.AuditDelivery || e.Delivery == nil || len(e.Delivery.Recipients) != 1 {
			t.Fatalf("event %+v: want a delivery attempt to one recipient", e)
		}
	}
	return list.Events
}

// TestGatewayDeliveriesInTheAuditLog: every attempt of the gateway to
// deliver a message is in the central's audit log, with the next hop,
// the host it reached and the reply: the internal server (smtp-sink)
// answers 4xx to RCPT, and the attempt shows as deferred with that reply;
// once it takes mail, the attempt at the retry shows as delivered with
// its 250. The REST API, the message's record and `osprey ctl audit list`
// agree.
func TestGatewayDeliveriesInTheAuditLog(t *testing.T) {
	next := loopbackPort(t)
	soft := runSink(t, next, "", "-r", "RCPT")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, inboundGateway(t, listen, "example.com", next))
	_, nextPort, _ := net.SplitHostPort(next)

	sendSubject(t, listen, "audited delivery")
	var events []api.AuditEvent
	testwait.For(t, "the deferred attempt in the audit log", func() bool {
		events = deliveryEvents(t, d.api, "bob@example.com")
		return len(events) > 0
	})
	deferred := events[0].Delivery
	r := deferred.Recipients[0]
	if r.State != "deferred" || r.Code < 400 || r.Code > 499 || r.NextAttempt.IsZero() {
		t.Errorf("first attempt's recipient: %+v, want deferred by the next hop's 4xx, with its next attempt", r)
	}
	if deferred.NextHop != "route:example.com" || !strings.Contains(deferred.Host, "[127.0.0.1]:"+nextPort) ||
		deferred.Sender != "alice@partner.test" || deferred.Direction != "inbound" || events[0].SensorID != "dev" {
		t.Errorf("first attempt: %+v of sensor %s, want inbound from alice@partner.test to route:example.com at %s", deferred, events[0].SensorID, next)
	}

	soft.stop()
	sink := runSink(t, next, t.TempDir())
	testwait.For(t, "the message delivered at its retry", func() bool { return len(sink.messages(t)) == 1 })
	testwait.For(t, "the delivered attempt in the audit log", func() bool {
		events = deliveryEvents(t, d.api, "bob@example.com")
		return len(events) > 0 && events[0].Delivery.Recipients[0].State == "delivered"
	})
	delivered := events[0].Delivery
	if r := delivered.Recipients[0]; r.Code != 250 || r.Address != "bob@example.com" || !r.NextAttempt.IsZero() {
		t.Errorf("delivered attempt's recipient: %+v, want the next hop's 250", r)
	}
	if delivered.MessageID != deferred.MessageID || delivered.NextHop != "route:example.com" || !strings.Contains(delivered.Host, "[127.0.0.1]:"+nextPort) ||
		!delivered.Started.After(deferred.Started) {
		t.Errorf("delivered attempt: %+v, want a later attempt at the same message and next hop as %+v", delivered, deferred)
	}
	// Newest first: the delivery, then the deferrals (one, or more when
	// a retry came before the next hop changed its mind); an attempt is
	// at the message the sensor accepted, as its record says.
	for i, e := range events {
		if r := e.Delivery.Recipients[0]; i > 0 && (r.State != "deferred" || r.Code != deferred.Recipients[0].Code) {
			t.Errorf("attempt %d to bob, newest first: %+v, want the delivery, then deferrals", i, r)
		}
	}
	recs := d.records(t)
	if len(recs) != 1 || recs[0].GetMessageId() != delivered.MessageID {
		t.Errorf("records %v, want the one of message %s", recs, delivered.MessageID)
	}

	// The same through ctl.
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]
	out := runOsprey(t, []string{"OSPREY_ADDRESS=" + base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword},
		"ctl", "audit", "list", "--kind", "delivery", "--recipient", "bob@example.com")
	if out.code != 0 {
		t.Fatalf("ctl audit list: exit %d: %s", out.code, out.stderr)
	}
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	ok := len(lines) == len(events)+1 && strings.Contains(lines[1], "delivered 250")
	for _, l := range lines[min(2, len(lines)):] {
		ok = ok && strings.Contains(l, fmt.Sprintf("deferred %d", r.Code))
	}
	if !ok {
		t.Errorf("ctl audit list:\n%s\nwant the header, the delivery with its 250, then %d deferrals", out.stdout, len(events)-1)
	}
}
