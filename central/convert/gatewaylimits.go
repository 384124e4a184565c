package convert

import (
	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The gateway's recipient verification and rate limits: numbers and a
// switch, converted as they are (zero means the default, or no limit).

func recipientVerificationToProto(in *api.RecipientVerification) *ospreyv1.RecipientVerification {
	if in == nil {
		return nil
	}
	return nilIfEmpty(&ospreyv1.RecipientVerification{
		Enabled:                in.Enabled,
		PositiveTtlSeconds:     in.PositiveTTLSeconds,
		PositiveRefreshSeconds: in.PositiveRefreshSeconds,
		NegativeTtlSeconds:     in.NegativeTTLSeconds,
		ProbeTimeoutSeconds:    in.ProbeTimeoutSeconds,
		MaxProbesPerHost:       in.MaxProbesPerHost,
	})
}

func recipientVerificationFromProto(v *ospreyv1.RecipientVerification) *api.RecipientVerification {
	return &api.RecipientVerification{
		Enabled:                v.GetEnabled(),
		PositiveTTLSeconds:     v.GetPositiveTtlSeconds(),
		PositiveRefreshSeconds: v.GetPositiveRefreshSeconds(),
		NegativeTTLSeconds:     v.GetNegativeTtlSeconds(),
		ProbeTimeoutSeconds:    v.GetProbeTimeoutSeconds(),
		MaxProbesPerHost:       v.GetMaxProbesPerHost(),
	}
}

func rateLimitsToProto(in *api.RateLimits) *ospreyv1.RateLimits {
	if in == nil {
		return nil
	}
	return nilIfEmpty(&ospreyv1.RateLimits{
		ConnectionsPerMinute:     in.ConnectionsPerMinute,
		MessagesPerMinute:        in.MessagesPerMinute,
		RecipientsPerMinute:      in.RecipientsPerMinute,
		HarvestUnknownRecipients: in.HarvestUnknownRecipients,
		HarvestWindowSeconds:     in.HarvestWindowSeconds,
		HarvestBlockSeconds:      in.HarvestBlockSeconds,
	})
}

func rateLimitsFromProto(l *ospreyv1.RateLimits) *api.RateLimits {
	return &api.RateLimits{
		ConnectionsPerMinute:     l.GetConnectionsPerMinute(),
		MessagesPerMinute:        l.GetMessagesPerMinute(),
		RecipientsPerMinute:      l.GetRecipientsPerMinute(),
		HarvestUnknownRecipients: l.GetHarvestUnknownRecipients(),
		HarvestWindowSeconds:     l.GetHarvestWindowSeconds(),
		HarvestBlockSeconds:      l.GetHarvestBlockSeconds(),
	}
}
