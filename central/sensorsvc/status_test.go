package sensorsvc

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestBoundStatus: a sensor's status is stored as sent when it is within
// the bounds, and cut to them otherwise, texts on a character boundary,
// without changing the message received.
func TestBoundStatus(t *testing.T) {
	small := &ospreyv1.SensorStatus{
		Counters: map[string]uint64{"smtp_accepted": 3},
		Problems: []string{"RISK: pop3 j@m:110: TLS is off"},
		Pop3:     &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING, LastError: "login: refused", Refusals: map[string]uint64{"too_large": 1}},
		Spool:    &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_OK},
	}
	if got := boundStatus(small); !proto.Equal(got, small) {
		t.Errorf("a status within the bounds changed: got %v, want %v", got, small)
	}

	long := strings.Repeat("é", maxStatusText) // 2 bytes each
	big := &ospreyv1.SensorStatus{
		Counters: map[string]uint64{},
		Smtp:     &ospreyv1.IntegrationStatus{LastError: long, Target: long, Problems: []string{long}, Refusals: map[string]uint64{strings.Repeat("r", 200): 1}},
		Spool:    &ospreyv1.SpoolStatus{Error: long},
	}
	for i := range 1000 {
		big.Counters[fmt.Sprintf("c%04d", i)] = uint64(i)
		big.Problems = append(big.Problems, long)
	}
	sent := proto.Clone(big)
	got := boundStatus(big)
	if !proto.Equal(big, sent) {
		t.Error("boundStatus changed the status it was given")
	}
	if len(got.GetCounters()) != maxStatusCounters || got.GetCounters()["c0000"] != 0 || len(got.GetProblems()) != maxStatusProblems {
		t.Errorf("got %d counters, %d problems; want %d and %d", len(got.GetCounters()), len(got.GetProblems()), maxStatusCounters, maxStatusProblems)
	}
	for _, s := range append(got.GetProblems(), got.GetSmtp().GetLastError(), got.GetSmtp().GetTarget(), got.GetSmtp().GetProblems()[0], got.GetSpool().GetError()) {
		if len(s) > maxStatusText+len("…") || !utf8.ValidString(s) || !strings.HasSuffix(s, "…") {
			t.Fatalf("a text of %d bytes (valid UTF-8 %v), want at most %d and cut on a character", len(s), utf8.ValidString(s), maxStatusText)
		}
	}
	if len(got.GetSmtp().GetRefusals()) != 0 {
		t.Errorf("refusals %v: want the over-long reason dropped", got.GetSmtp().GetRefusals())
	}
}
