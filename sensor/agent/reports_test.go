package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/internal/testwait"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/deliveries"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
	"github.com/ospreysec/osprey/sensor/quarantine"
	"github.com/ospreysec/osprey/sensor/queue"
)

// TestDeliveryReports: the delivery attempts waiting when a status goes
// follow it in reports of bounded size, oldest first, each attempt once.
func TestDeliveryReports(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	log := deliveries.New(deliveries.Options{})
	const attempts = 2*deliveries.MaxReport + 500
	for i := range attempts {
		log.Attempted(queue.Attempt{ID: fmt.Sprintf("m%05d", i), Destination: "example.com", Started: time.Now(),
			Rcpts: []queue.AttemptRcpt{{Rcpt: "bob@example.com", State: queue.StateDelivered, Reply: delivery.RcptResult{Code: 250}}}})
	}
	startAgent(t, Options{DataDir: dir, Applier: &recorder{}, StatusInterval: time.Hour, Deliveries: log})
	st := srv.NextStream(t)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	st.Next(t) // the ack, with a status after it
	var sizes []int
	next := 0
	for next < attempts {
		m := st.Next(t).GetDeliveries()
		if m == nil {
			t.Fatal("a message other than a delivery report after the status")
		}
		sizes = append(sizes, len(m.GetAttempts()))
		for _, a := range m.GetAttempts() {
			if want := fmt.Sprintf("m%05d", next); a.GetMessageId() != want || a.GetRecipients()[0].GetState() != ospreyv1.QueueState_QUEUE_STATE_DELIVERED {
				t.Fatalf("attempt %d: %v, want message %s delivered", next, a, want)
			}
			next++
		}
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{deliveries.MaxReport, deliveries.MaxReport, 500}) || log.Len() != 0 {
		t.Errorf("reports of %v attempts, %d left; want %d, %d, 500 and none", sizes, log.Len(), deliveries.MaxReport, deliveries.MaxReport)
	}
}

// blockingHandler answers every request once release is closed, counting
// how many it held at once.
type blockingHandler struct {
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func (h *blockingHandler) HandleRequest(ctx context.Context, req *ospreyv1.SensorRequest) *ospreyv1.SensorReply {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
	}()
	select {
	case <-h.release:
		return &ospreyv1.SensorReply{}
	case <-ctx.Done():
		return &ospreyv1.SensorReply{Error: &ospreyv1.SensorError{Code: ospreyv1.SensorError_CODE_UNAVAILABLE, Message: "timed out"}}
	}
}

// TestRequestsWaitTheirTurn: a burst of operators' requests (a bulk
// release from the UI) is answered in full, maxRequests at a time, instead
// of the ones past maxRequests being refused as busy.
func TestRequestsWaitTheirTurn(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	h := &blockingHandler{release: make(chan struct{})}
	startAgent(t, Options{DataDir: dir, Applier: &recorder{}, StatusInterval: time.Hour, Requests: h})
	st := srv.NextStream(t)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	st.Next(t) // the ack
	const burst = 5 * maxRequests
	for i := range burst {
		st.SendRequest(t, &ospreyv1.SensorRequest{Id: fmt.Sprintf("r%02d", i)})
	}
	testwait.For(t, "the first requests to be taken", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.now == maxRequests
	})
	close(h.release)
	answered := map[string]bool{}
	for len(answered) < burst {
		rep := st.Next(t).GetReply()
		if rep == nil {
			continue // a status or a delivery report
		}
		if rep.GetError() != nil {
			t.Fatalf("request %s refused: %v", rep.GetId(), rep.GetError())
		}
		answered[rep.GetId()] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.most != maxRequests {
		t.Errorf("%d requests handled at once, want %d", h.most, maxRequests)
	}
}

// TestReportsWaitForTheirAnswer: with a central that answers reports, a
// report whose answer never came (the stream ended) goes again on the
// next stream, one the central could not record goes again with the next
// status, and an answered one is done.
func TestReportsWaitForTheirAnswer(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	events := quarantine.NewEvents(nil)
	events.Add("m1", ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED)
	events.Add("m2", ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED)
	changed := make(chan struct{}, 1)
	startAgent(t, Options{DataDir: dir, Applier: &recorder{}, StatusInterval: time.Hour, StatusChanged: changed, Quarantine: events})
	features := &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Features{Features: &ospreyv1.StreamFeatures{ReportAcks: true}}}
	nextReport := func(st *centraltest.Stream) *ospreyv1.QuarantineReport {
		t.Helper()
		for {
			if r := st.Next(t).GetQuarantine(); r != nil {
				return r
			}
		}
	}
	ids := func(r *ospreyv1.QuarantineReport) string {
		var s []string
		for _, e := range r.GetEvents() {
			s = append(s, e.GetMessageId())
		}
		return strings.Join(s, ",")
	}

	st := srv.NextStream(t)
	st.Send(t, features)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	if r := nextReport(st); ids(r) != "m1,m2" || r.GetSeq() == 0 {
		t.Fatalf("first report: %v, want m1,m2 numbered", r)
	}
	st.End(status.Error(codes.Unavailable, "node going away")) // before answering it

	st = srv.NextStream(t)
	st.Send(t, features)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	r := nextReport(st)
	if ids(r) != "m1,m2" {
		t.Fatalf("report on the next stream: %v, want m1,m2 again", r)
	}
	st.Send(t, &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_ReportAck{ReportAck: &ospreyv1.ReportAck{Seq: r.GetSeq(), Error: "message store unavailable"}}})
	testwait.For(t, "the report to be given back", func() bool { return events.Len() == 2 })
	changed <- struct{}{}
	r = nextReport(st)
	if ids(r) != "m1,m2" {
		t.Fatalf("report after the central could not record it: %v, want m1,m2 again", r)
	}
	st.Send(t, &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_ReportAck{ReportAck: &ospreyv1.ReportAck{Seq: r.GetSeq()}}})
	events.Add("m3", ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED)
	changed <- struct{}{}
	if r := nextReport(st); ids(r) != "m3" {
		t.Fatalf("report after the answer: %v, want m3 alone", r)
	}
}
