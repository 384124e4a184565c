package validate

import (
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults and bounds of a gateway's recipient verification
// (RecipientVerification); zero in the configuration means the default.
// The cache's lifetimes are Postfix's (address_verify_positive_expire_time,
// address_verify_positive_refresh_time, address_verify_negative_expire_time).
const (
	DefaultVerifyPositiveTTLSeconds     = 31 * 86400
	DefaultVerifyPositiveRefreshSeconds = 7 * 86400
	DefaultVerifyNegativeTTLSeconds     = 3 * 86400
	DefaultVerifyProbeTimeoutSeconds    = 30
	DefaultVerifyMaxProbesPerHost       = 4

	MinVerifyTTLSeconds          = 60
	MaxVerifyPositiveTTLSeconds  = 366 * 86400
	MaxVerifyNegativeTTLSeconds  = 31 * 86400
	MaxVerifyProbeTimeoutSeconds = 300
	MaxVerifyProbesPerHost       = 100
)

// RecipientVerification returns v with each zero field replaced by its
// default; v may be nil. It does not check the values.
func RecipientVerification(v *ospreyv1.RecipientVerification) *ospreyv1.RecipientVerification {
	return &ospreyv1.RecipientVerification{
		Enabled:                v.GetEnabled(),
		PositiveTtlSeconds:     zeroOr(v.GetPositiveTtlSeconds(), DefaultVerifyPositiveTTLSeconds),
		PositiveRefreshSeconds: zeroOr(v.GetPositiveRefreshSeconds(), DefaultVerifyPositiveRefreshSeconds),
		NegativeTtlSeconds:     zeroOr(v.GetNegativeTtlSeconds(), DefaultVerifyNegativeTTLSeconds),
		ProbeTimeoutSeconds:    zeroOr(v.GetProbeTimeoutSeconds(), DefaultVerifyProbeTimeoutSeconds),
		MaxProbesPerHost:       zeroOr(v.GetMaxProbesPerHost(), DefaultVerifyMaxProbesPerHost),
	}
}

func zeroOr(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// recipientVerification checks a gateway's recipient verification (field
// "gateway.recipient_verification"):
//
//   - positive_ttl_seconds: 60 to 366 days (0 for 31 days);
//     positive_refresh_seconds: 60 up to, not including, the positive TTL
//     (0 for 7 days); negative_ttl_seconds: 60 to 31 days (0 for 3 days).
//   - probe_timeout_seconds: 1 to 300 (0 for 30).
//   - max_probes_per_host: 1 to 100 (0 for 4).
func recipientVerification(r *report, f string, v *ospreyv1.RecipientVerification) {
	between := func(field string, v, lo, hi, def uint32, unit string) {
		if v != 0 && (v < lo || v > hi) {
			r.add(f+field, "must be %d to %d %s (0 for %d)", lo, hi, unit, def)
		}
	}
	between("positive_ttl_seconds", v.GetPositiveTtlSeconds(), MinVerifyTTLSeconds, MaxVerifyPositiveTTLSeconds, DefaultVerifyPositiveTTLSeconds, "seconds")
	between("positive_refresh_seconds", v.GetPositiveRefreshSeconds(), MinVerifyTTLSeconds, MaxVerifyPositiveTTLSeconds, DefaultVerifyPositiveRefreshSeconds, "seconds")
	between("negative_ttl_seconds", v.GetNegativeTtlSeconds(), MinVerifyTTLSeconds, MaxVerifyNegativeTTLSeconds, DefaultVerifyNegativeTTLSeconds, "seconds")
	between("probe_timeout_seconds", v.GetProbeTimeoutSeconds(), 1, MaxVerifyProbeTimeoutSeconds, DefaultVerifyProbeTimeoutSeconds, "seconds")
	between("max_probes_per_host", v.GetMaxProbesPerHost(), 1, MaxVerifyProbesPerHost, DefaultVerifyMaxProbesPerHost, "probes")
	inRange := func(v uint32) bool { return v == 0 || v >= MinVerifyTTLSeconds && v <= MaxVerifyPositiveTTLSeconds }
	if eff := RecipientVerification(v); (v.GetPositiveRefreshSeconds() != 0 || v.GetPositiveTtlSeconds() != 0) &&
		inRange(v.GetPositiveTtlSeconds()) && inRange(v.GetPositiveRefreshSeconds()) &&
		eff.GetPositiveRefreshSeconds() >= eff.GetPositiveTtlSeconds() {
		r.add(f+"positive_refresh_seconds", "must be shorter than positive_ttl_seconds (%d): a result is refreshed before it expires", eff.GetPositiveTtlSeconds())
	}
}
