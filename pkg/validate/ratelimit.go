package validate

import (
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults and bounds of a gateway's rate limits (RateLimits); zero in a
// per-minute limit means no limit, zero in the harvest guard's window and
// block means the default.
const (
	MaxRatePerMinute            = 1000000
	MaxHarvestUnknownRecipients = 10000
	DefaultHarvestWindowSeconds = 300
	DefaultHarvestBlockSeconds  = 900
	MinHarvestSeconds           = 10
	MaxHarvestWindowSeconds     = 86400
	MaxHarvestBlockSeconds      = 7 * 86400
)

// RateLimits returns l with the harvest guard's window and block replaced
// by their defaults when zero; l may be nil. It does not check the values.
func RateLimits(l *ospreyv1.RateLimits) *ospreyv1.RateLimits {
	return &ospreyv1.RateLimits{
		ConnectionsPerMinute:     l.GetConnectionsPerMinute(),
		MessagesPerMinute:        l.GetMessagesPerMinute(),
		RecipientsPerMinute:      l.GetRecipientsPerMinute(),
		HarvestUnknownRecipients: l.GetHarvestUnknownRecipients(),
		HarvestWindowSeconds:     zeroOr(l.GetHarvestWindowSeconds(), DefaultHarvestWindowSeconds),
		HarvestBlockSeconds:      zeroOr(l.GetHarvestBlockSeconds(), DefaultHarvestBlockSeconds),
	}
}

// rateLimits checks a gateway's rate limits (field "gateway.rate_limits"):
//
//   - connections_per_minute, messages_per_minute, recipients_per_minute:
//     0 (no limit) to 1000000.
//   - harvest_unknown_recipients: 0 (off) to 10000; on, it needs recipient
//     verification in an enabled inbound gateway, which finds the unknown
//     recipients it counts.
//   - harvest_window_seconds: 10 to 86400 (0 for 300);
//     harvest_block_seconds: 10 to 7 days (0 for 900).
func rateLimits(r *report, f string, l *ospreyv1.RateLimits, verifies bool) {
	for _, p := range []struct {
		field string
		v     uint32
	}{
		{"connections_per_minute", l.GetConnectionsPerMinute()},
		{"messages_per_minute", l.GetMessagesPerMinute()},
		{"recipients_per_minute", l.GetRecipientsPerMinute()},
	} {
		if p.v > MaxRatePerMinute {
			r.add(f+p.field, "must be at most %d (0 for no limit)", MaxRatePerMinute)
		}
	}
	if n := l.GetHarvestUnknownRecipients(); n > MaxHarvestUnknownRecipients {
		r.add(f+"harvest_unknown_recipients", "must be at most %d (0 turns the guard off)", MaxHarvestUnknownRecipients)
	} else if n > 0 && !verifies {
		r.add(f+"harvest_unknown_recipients", "needs gateway.recipient_verification.enabled: the guard counts the recipients verification finds unknown")
	}
	between := func(field string, v, hi, def uint32) {
		if v != 0 && (v < MinHarvestSeconds || v > hi) {
			r.add(f+field, "must be %d to %d seconds (0 for %d)", MinHarvestSeconds, hi, def)
		}
	}
	between("harvest_window_seconds", l.GetHarvestWindowSeconds(), MaxHarvestWindowSeconds, DefaultHarvestWindowSeconds)
	between("harvest_block_seconds", l.GetHarvestBlockSeconds(), MaxHarvestBlockSeconds, DefaultHarvestBlockSeconds)
}
