package ui

import (
	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
)

// A gateway's recipient verification and rate limits in the SMTP form
// (docs/configuration.md, "Recipient verification" and "Rate limits"): a
// switch and numbers, shown as the other limits are.

// verifyForm is recipient verification in the SMTP form.
type verifyForm struct {
	Enabled bool
	Limits  []limitField
}

var verifyDefs = []limitDef[api.RecipientVerification]{
	{"positive_ttl_seconds", "A recipient found is good for", "seconds", validate.DefaultVerifyPositiveTTLSeconds,
		func(v *api.RecipientVerification) *uint32 { return &v.PositiveTTLSeconds }},
	{"positive_refresh_seconds", "and asked again in the background after", "seconds", validate.DefaultVerifyPositiveRefreshSeconds,
		func(v *api.RecipientVerification) *uint32 { return &v.PositiveRefreshSeconds }},
	{"negative_ttl_seconds", "A recipient refused stays refused for", "seconds", validate.DefaultVerifyNegativeTTLSeconds,
		func(v *api.RecipientVerification) *uint32 { return &v.NegativeTTLSeconds }},
	{"probe_timeout_seconds", "Each question within", "seconds", validate.DefaultVerifyProbeTimeoutSeconds,
		func(v *api.RecipientVerification) *uint32 { return &v.ProbeTimeoutSeconds }},
	{"max_probes_per_host", "Questions at once to one mail server", "", validate.DefaultVerifyMaxProbesPerHost,
		func(v *api.RecipientVerification) *uint32 { return &v.MaxProbesPerHost }},
}

var rateDefs = []limitDef[api.RateLimits]{
	{"connections_per_minute", "Connections per minute", "", 0, func(l *api.RateLimits) *uint32 { return &l.ConnectionsPerMinute }},
	{"messages_per_minute", "Messages per minute", "", 0, func(l *api.RateLimits) *uint32 { return &l.MessagesPerMinute }},
	{"recipients_per_minute", "Recipients per minute", "", 0, func(l *api.RateLimits) *uint32 { return &l.RecipientsPerMinute }},
	{"harvest_unknown_recipients", "Unknown recipients that defer a client", "", 0,
		func(l *api.RateLimits) *uint32 { return &l.HarvestUnknownRecipients }},
	{"harvest_window_seconds", "counted within", "seconds", validate.DefaultHarvestWindowSeconds,
		func(l *api.RateLimits) *uint32 { return &l.HarvestWindowSeconds }},
	{"harvest_block_seconds", "Defer such a client for", "seconds", validate.DefaultHarvestBlockSeconds,
		func(l *api.RateLimits) *uint32 { return &l.HarvestBlockSeconds }},
}

// addLimitFields adds the paths of recipient verification and the rate
// limits to the SMTP form's.
func addLimitFields(m map[string]formField) {
	m["gateway.recipient_verification.enabled"] = formField{"Verify recipients", "smtp-gw-rv-enabled"}
	for _, l := range limitFields("gateway.recipient_verification", verifyDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
	for _, l := range limitFields("gateway.rate_limits", rateDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
}

func verifyFormFrom(v *api.RecipientVerification) verifyForm {
	f := verifyForm{Limits: limitFields("gateway.recipient_verification", verifyDefs, v)}
	if v != nil {
		f.Enabled = v.Enabled
	}
	return f
}

// readVerify reads recipient verification from the SMTP form: what it
// shows again, and what is written.
func readVerify(fr *formReader) (verifyForm, *api.RecipientVerification) {
	v := &api.RecipientVerification{Enabled: fr.checked("gw_rv_enabled")}
	return verifyForm{Enabled: v.Enabled, Limits: readLimits(fr, "gateway.recipient_verification", verifyDefs, v)}, v
}

// readRates reads the rate limits from the SMTP form.
func readRates(fr *formReader) ([]limitField, *api.RateLimits) {
	l := &api.RateLimits{}
	return readLimits(fr, "gateway.rate_limits", rateDefs, l), l
}
