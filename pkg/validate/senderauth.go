package validate

import (
	"net/netip"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults and bounds of a gateway's sender authentication
// (SenderAuthSettings); zero in the configuration means the default.
const (
	DefaultSenderAuthLookupTimeoutMs = 2000
	DefaultSenderAuthCheckTimeoutMs  = 5000
	MinSenderAuthTimeoutMs           = 100
	MaxSenderAuthLookupTimeoutMs     = 30000
	MaxSenderAuthCheckTimeoutMs      = 60000
)

// SenderAuth returns s with each zero field replaced by its default; s may
// be nil. It does not check the values.
func SenderAuth(s *ospreyv1.SenderAuthSettings) *ospreyv1.SenderAuthSettings {
	out := &ospreyv1.SenderAuthSettings{
		Enabled:         s.GetEnabled(),
		AuthservId:      s.GetAuthservId(),
		DmarcTemperror:  s.GetDmarcTemperror(),
		DmarcPermerror:  s.GetDmarcPermerror(),
		LookupTimeoutMs: s.GetLookupTimeoutMs(),
		CheckTimeoutMs:  s.GetCheckTimeoutMs(),
	}
	if out.DmarcTemperror == ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_UNSPECIFIED {
		out.DmarcTemperror = ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS
	}
	if out.DmarcPermerror == ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_UNSPECIFIED {
		out.DmarcPermerror = ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS
	}
	if out.LookupTimeoutMs == 0 {
		out.LookupTimeoutMs = DefaultSenderAuthLookupTimeoutMs
	}
	if out.CheckTimeoutMs == 0 {
		out.CheckTimeoutMs = DefaultSenderAuthCheckTimeoutMs
	}
	return out
}

// senderAuth checks a gateway's sender authentication (field
// "gateway.sender_auth"):
//
//   - authserv_id: a host name (RFC 8601 §2.5 recommends the gateway's);
//     empty means the gateway's HELO name.
//   - dmarc_temperror, dmarc_permerror: AS_IS, FAIL or NONE (0 for AS_IS).
//   - lookup_timeout_ms: 100 to 30000 (0 for 2000); check_timeout_ms: 100
//     to 60000 (0 for 5000), and not shorter than lookup_timeout_ms.
func senderAuth(r *report, f string, s *ospreyv1.SenderAuthSettings) {
	if id := s.GetAuthservId(); id != "" {
		if _, err := netip.ParseAddr(id); err == nil {
			r.add(f+"authserv_id", "must be a host name, not an address")
		} else {
			host(r, f+"authserv_id", id)
		}
	}
	for _, t := range []struct {
		field string
		v     ospreyv1.AuthErrorTreatment
	}{{"dmarc_temperror", s.GetDmarcTemperror()}, {"dmarc_permerror", s.GetDmarcPermerror()}} {
		if _, ok := ospreyv1.AuthErrorTreatment_name[int32(t.v)]; !ok {
			r.add(f+t.field, "must be AS_IS, FAIL or NONE")
		}
	}
	between := func(field string, v, max, def uint32) {
		if v != 0 && (v < MinSenderAuthTimeoutMs || v > max) {
			r.add(f+field, "must be %d to %d milliseconds (0 for %d)", MinSenderAuthTimeoutMs, max, def)
		}
	}
	between("lookup_timeout_ms", s.GetLookupTimeoutMs(), MaxSenderAuthLookupTimeoutMs, DefaultSenderAuthLookupTimeoutMs)
	between("check_timeout_ms", s.GetCheckTimeoutMs(), MaxSenderAuthCheckTimeoutMs, DefaultSenderAuthCheckTimeoutMs)
	if eff := SenderAuth(s); s.GetCheckTimeoutMs() != 0 && eff.GetCheckTimeoutMs() < eff.GetLookupTimeoutMs() {
		r.add(f+"check_timeout_ms", "must not be shorter than lookup_timeout_ms (%d)", eff.GetLookupTimeoutMs())
	}
}
