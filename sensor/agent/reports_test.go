package agent

import (
	"fmt"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/deliveries"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
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
