package sensorsvc_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestDeliveryReportsReachTheAuditLog: a sensor's report of delivery
// attempts on its stream becomes delivery events of its tenant, recorded
// once when the report comes twice.
func TestDeliveryReportsReachTheAuditLog(t *testing.T) {
	c := newCluster(t, 0)
	ctx := t.Context()
	id, cert := c.approvedSensor(t)
	s := connect(t, c.dial(t, cert.tls()), 0)

	started := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	next := started.Add(10 * time.Minute)
	report := &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Deliveries{Deliveries: &ospreyv1.DeliveryReport{Attempts: []*ospreyv1.DeliveryAttempt{{
		MessageId: "m1", Sender: "alice@partner.test", Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND,
		NextHop: "example.com", Host: "mx.example.com [192.0.2.25]:25", Tls: "TLS 1.3 TLS_AES_128_GCM_SHA256",
		Started: timestamppb.New(started), Took: durationpb.New(2 * time.Second),
		Recipients: []*ospreyv1.DeliveryRecipient{
			{Address: "bob@example.com", State: ospreyv1.QueueState_QUEUE_STATE_DELIVERED, Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4F"},
			{Address: "carol@example.com", State: ospreyv1.QueueState_QUEUE_STATE_DEFERRED, Code: 451, Enhanced: "4.2.0", Text: "mailbox busy",
				NextAttempt: timestamppb.New(next)},
		},
	}}}}}
	s.send(t, report)
	s.send(t, report)

	want := []sqlstore.Delivery{{
		MessageID: "m1", Sender: "alice@partner.test", Direction: "inbound", NextHop: "example.com",
		Host: "mx.example.com [192.0.2.25]:25", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Started: started, Took: 2 * time.Second,
		Recipients: []sqlstore.DeliveryRecipient{
			{Address: "bob@example.com", State: "delivered", Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4F"},
			{Address: "carol@example.com", State: "deferred", Code: 451, Enhanced: "4.2.0", Text: "mailbox busy", NextAttempt: next},
		},
	}}
	var got []sqlstore.Delivery
	var err error
	testwait.For(t, "the attempt in the audit log", func() bool {
		got, err = c.db.MessageDeliveries(ctx, store.TenantScope("acme"), "acme", id, "m1")
		if err != nil {
			t.Fatal(err)
		}
		return len(got) > 0
	})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("recorded attempts (-want +got):\n%s", d)
	}
	// The second report (a status after it shows both were read) added
	// nothing.
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Status{Status: &ospreyv1.SensorStatus{Counters: map[string]uint64{"after_reports": 1}}}})
	waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetCounters()["after_reports"] == 1 })
	page, err := c.db.ListAudit(ctx, store.AllTenants(), sqlstore.AuditQuery{Kind: sqlstore.AuditDelivery})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Tenant != "acme" || page.Events[0].SensorID != id || len(page.Events[0].Delivery.Recipients) != 2 {
		t.Errorf("audit log: %+v, want the one attempt of %s in acme", page.Events, id)
	}
}

// TestReportsAreAnswered: a sensor that asks for answers to its reports is
// told first that it gets them, and gets one for each numbered report once
// it is recorded.
func TestReportsAreAnswered(t *testing.T) {
	c := newCluster(t, 0)
	ctx := t.Context()
	id, cert := c.approvedSensor(t)
	s := connectWith(t, c.dial(t, cert.tls()), &ospreyv1.Hello{SoftwareVersion: "test", WantsReportAcks: true})
	if f := s.next(t).GetFeatures(); !f.GetReportAcks() {
		t.Fatalf("first message's features: %v, want report_acks", f)
	}
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Refusals{Refusals: &ospreyv1.RefusalReport{Seq: 7, Refusals: []*ospreyv1.Refusal{{
		Minute: timestamppb.New(time.Now().Truncate(time.Minute)), ClientIp: "192.0.2.9", Reason: "relay_denied", Count: 3,
		FirstAt: timestamppb.Now(), LastAt: timestamppb.Now(),
	}}}}})
	for {
		m := s.next(t)
		if m.GetConfig() != nil {
			continue
		}
		if ack := m.GetReportAck(); ack.GetSeq() != 7 || ack.GetError() != "" {
			t.Fatalf("answer: %v, want report 7 recorded", m)
		}
		break
	}
	page, err := c.db.ListAudit(ctx, store.TenantScope("acme"), sqlstore.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].SensorID != id {
		t.Errorf("audit log when the answer came: %+v, want the refusal", page.Events)
	}
}
