package agent

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestRecvLimitFitsAcceptanceLists checks that a configuration with its
// three acceptance lists at their bounds (as many entries, and as many
// bytes, as a list may hold) fits in one message the agent receives.
func TestRecvLimitFitsAcceptanceLists(t *testing.T) {
	width := acceptlist.MaxBytes/acceptlist.MaxEntries - 1 // each entry and its line end
	entries := make([]string, acceptlist.MaxEntries)
	for i := range entries {
		entries[i] = fmt.Sprintf("h%0*d.example.com", width-len("h.example.com"), i)
	}
	cfg := &ospreyv1.SensorConfig{Smtp: &ospreyv1.SmtpIntegration{Enabled: true}}
	for _, kind := range []ospreyv1.AcceptanceListKind{
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH,
	} {
		cfg.Acceptance = append(cfg.Acceptance, &ospreyv1.AcceptanceList{Kind: kind, Entries: entries})
	}
	// Room for the rest of the configuration: 1 MiB.
	if n := proto.Size(cfg); n+1<<20 > maxRecvMsg {
		t.Errorf("a configuration with three full acceptance lists is %d bytes; the agent receives at most %d", n, maxRecvMsg)
	}
}
