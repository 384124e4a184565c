package sensor

import (
	"fmt"
	"time"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpd"
)

// acceptanceProblems are the status's warnings about a gateway's
// acceptance lists: a listener that no client can reach for want of
// entries, and the lookups of clients' names that failed lately (a client
// listed by its domain is refused while they fail).
func acceptanceProblems(st smtpd.Stats, cfg *ospreyv1.SmtpIntegration, lists smtpd.Lists, now time.Time) []string {
	var out []string
	if cfg.GetEnabled() {
		g := cfg.GetGateway()
		if validate.Inbound(cfg.GetMode()) && g.GetInboundAcceptance() == ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED && lists.Inbound.Len() == 0 {
			out = append(out, "WARNING: acceptance lists: the inbound listeners take mail only from the inbound acceptance list, which is empty: every client is refused")
		}
		if validate.Outbound(cfg.GetMode()) && lists.Outbound.Len() == 0 {
			out = append(out, "WARNING: acceptance lists: the outbound acceptance list is empty: the outbound listeners refuse every client and nothing is relayed")
		}
	}
	if st.LookupFailures > 0 && now.Sub(st.LastLookupFailure) <= dnsTrouble {
		out = append(out, fmt.Sprintf("WARNING: acceptance lists: %d lookups of clients' names failed since the sensor started, the last at %s (%s): a client listed by its domain is refused while they fail",
			st.LookupFailures, st.LastLookupFailure.UTC().Format(time.RFC3339), st.LastLookupError))
	}
	return out
}
