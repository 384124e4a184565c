package sensor

import (
	"errors"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpd"
)

func TestAcceptanceProblems(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	gateway := func(mode ospreyv1.SmtpMode, acceptance ospreyv1.AcceptanceMode) *ospreyv1.SmtpIntegration {
		return &ospreyv1.SmtpIntegration{Enabled: true, Mode: mode, Gateway: &ospreyv1.SmtpGateway{InboundAcceptance: acceptance}}
	}
	listed, err := smtpd.CompileLists(&ospreyv1.SmtpIntegration{}, []*ospreyv1.AcceptanceList{
		{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND, Entries: []string{"192.0.2.0/24"}},
		{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, Entries: []string{"10.0.0.0/8"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	failed := smtpd.Stats{LookupFailures: 3, LastLookupFailure: now.Add(-time.Minute), LastLookupError: errors.New("SERVFAIL").Error()}
	tests := []struct {
		name  string
		st    smtpd.Stats
		cfg   *ospreyv1.SmtpIntegration
		lists smtpd.Lists
		want  []string // a word of each problem
	}{
		{"monitor", smtpd.Stats{}, &ospreyv1.SmtpIntegration{Enabled: true}, smtpd.Lists{}, nil},
		{"inbound, all", smtpd.Stats{}, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND, 0), smtpd.Lists{}, nil},
		{"inbound, listed, empty", smtpd.Stats{}, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND, ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED), smtpd.Lists{}, []string{"inbound acceptance list"}},
		{"outbound, empty", smtpd.Stats{}, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND, 0), smtpd.Lists{}, []string{"outbound acceptance list"}},
		{"both listed", smtpd.Stats{}, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND, ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED), listed, nil},
		{"disabled", smtpd.Stats{}, &ospreyv1.SmtpIntegration{Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND}, smtpd.Lists{}, nil},
		{"recent lookup failure", failed, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND, 0), listed, []string{"3 lookups of clients' names failed"}},
		{"old lookup failure", smtpd.Stats{LookupFailures: 3, LastLookupFailure: now.Add(-time.Hour)}, gateway(ospreyv1.SmtpMode_SMTP_MODE_INBOUND, 0), listed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := acceptanceProblems(tt.st, tt.cfg, tt.lists, now)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %d problems", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || !strings.HasPrefix(got[i], "WARNING: ") {
					t.Errorf("problem %q, want a warning with %q", got[i], w)
				}
			}
		})
	}
}
