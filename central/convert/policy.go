package convert

import (
	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// PolicyToProto converts a tenant's verdict policy from a write. A value
// equal to its default is stored as unset, as a policy never written holds
// it, so that a policy read and written back is the same and follows a
// default that changes.
func PolicyToProto(in *api.VerdictPolicy) (*ospreyv1.VerdictPolicy, error) {
	var fe fieldErrors
	action := func(field string, e enum[ospreyv1.VerdictAction, api.VerdictAction], a api.VerdictAction) ospreyv1.VerdictAction {
		v, err := e.toProto(a)
		fe.check(field, err)
		return v
	}
	def := validate.VerdictPolicy(nil)
	str := func(v, def string) string {
		if v == def {
			return ""
		}
		return v
	}
	num := func(v, def float64) float64 {
		if v == def {
			return 0
		}
		return v
	}
	p := &ospreyv1.VerdictPolicy{
		Detected:            action("detected", actionsDefaultQuarantine, in.Detected),
		UnscannableLimit:    action("unscannable_limit", actionsDefaultDeliver, in.UnscannableLimit),
		UnscannableError:    action("unscannable_error", actionsDefaultDeliver, in.UnscannableError),
		SubjectTag:          str(in.SubjectTag, def.GetSubjectTag()),
		ApplyDmarcPolicy:    in.ApplyDMARCPolicy,
		DmarcReject:         action("dmarc_reject", actionsDefaultQuarantine, in.DMARCReject),
		DmarcQuarantine:     action("dmarc_quarantine", actionsDefaultQuarantine, in.DMARCQuarantine),
		SpamTagScore:        num(in.SpamTagScore, def.GetSpamTagScore()),
		SpamQuarantineScore: num(in.SpamQuarantineScore, def.GetSpamQuarantineScore()),
		SpamSubjectTag:      str(in.SpamSubjectTag, def.GetSpamSubjectTag()),
	}
	for _, h := range in.TagHeaders {
		p.TagHeaders = append(p.TagHeaders, &ospreyv1.HeaderField{Name: h.Name, Value: h.Value})
	}
	return p, fe.err()
}

// PolicyFromProto converts a stored verdict policy for a read: every field
// with the value that applies, defaults included.
func PolicyFromProto(p *ospreyv1.VerdictPolicy) api.VerdictPolicy {
	eff := validate.VerdictPolicy(p)
	out := api.VerdictPolicy{
		Detected:            verdictActions.toAPI(eff.GetDetected()),
		UnscannableLimit:    verdictActions.toAPI(eff.GetUnscannableLimit()),
		UnscannableError:    verdictActions.toAPI(eff.GetUnscannableError()),
		SubjectTag:          eff.GetSubjectTag(),
		ApplyDMARCPolicy:    eff.GetApplyDmarcPolicy(),
		DMARCReject:         verdictActions.toAPI(eff.GetDmarcReject()),
		DMARCQuarantine:     verdictActions.toAPI(eff.GetDmarcQuarantine()),
		SpamTagScore:        eff.GetSpamTagScore(),
		SpamQuarantineScore: eff.GetSpamQuarantineScore(),
		SpamSubjectTag:      eff.GetSpamSubjectTag(),
	}
	for _, h := range eff.GetTagHeaders() {
		out.TagHeaders = append(out.TagHeaders, api.HeaderField{Name: h.GetName(), Value: h.GetValue()})
	}
	return out
}

// VerdictActionToProto converts the API name of an action ("" is the
// policy's: UNSPECIFIED).
func VerdictActionToProto(a api.VerdictAction) (ospreyv1.VerdictAction, error) {
	return verdictActions.toProto(a)
}

// VerdictActionFromProto returns the API name of an action ("" for
// UNSPECIFIED: the policy's).
func VerdictActionFromProto(a ospreyv1.VerdictAction) api.VerdictAction {
	return verdictActions.toAPI(a)
}
