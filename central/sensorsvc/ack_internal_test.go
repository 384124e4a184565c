package sensorsvc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ospreysec/osprey/central/sqlstore"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestAckReport: a report the store could not take for a while is answered
// with an error (the sensor sends it again); one it refused for what it
// holds, or took, is answered as done; an unnumbered one is not answered.
func TestAckReport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seq       uint64
		err       error
		answered  bool
		sendAgain bool
	}{
		{"recorded", 3, nil, true, false},
		{"store unavailable", 4, fmt.Errorf("sqlite record refusals: %w: disk I/O error", sqlstore.ErrUnavailable), true, true},
		{"store too slow", 5, fmt.Errorf("record: %w", context.DeadlineExceeded), true, true},
		{"refused for what it holds", 6, errors.New("a report of 20000 refusals: at most 10000"), true, false},
		{"unnumbered", 0, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replies := make(chan *ospreyv1.ConnectResponse, 1)
			if err := ackReport(t.Context(), replies, tc.seq, tc.err); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-replies:
				ack := m.GetReportAck()
				if !tc.answered || ack.GetSeq() != tc.seq || (ack.GetError() != "") != tc.sendAgain {
					t.Errorf("answer %v; want answered=%v, sent again=%v", ack, tc.answered, tc.sendAgain)
				}
			default:
				if tc.answered {
					t.Error("no answer")
				}
			}
		})
	}
}
