// Package disposition decides what a gateway does with a message once the
// central has scanned it: deliver it, deliver it tagged, quarantine it, or
// drop it with a notice. The decision is the central's, not the sensor's,
// because only the central knows which rules matched and the tenant's
// policy as it is now; the sensor gets it with the upload's answer and
// carries it out, and the message's record keeps it, so a retried upload
// is answered the same.
//
// Each finding proposes an action: every match of a detected message (a
// rule's own action, or the policy's for detected messages), an
// unscannable verdict (the policy's for its kind), a failed DMARC check
// whose domain publishes quarantine or reject (when the policy applies
// DMARC), a spam score at or above the policy's thresholds. The strongest
// proposal wins: drop over quarantine over tag over deliver; among equals,
// the first found. A message nothing proposes anything for is delivered.
package disposition

import (
	"fmt"
	"strings"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Input is what a decision looks at.
type Input struct {
	// Policy is the tenant's stored policy; nil means every default.
	Policy *ospreyv1.VerdictPolicy
	// Verdict is the scan's verdict; Matches its findings.
	Verdict string
	Matches []*ospreyv1.Match
	// RuleAction gives the action of a rule of the tenant by id, when it
	// has one; nil when no rule has.
	RuleAction func(id string) ospreyv1.VerdictAction
	// Auth is the sensor's sender authentication of the message, if any.
	Auth *ospreyv1.AuthResults
	// Spam is the spam engine's opinion, if one ran.
	Spam *ospreyv1.SpamResult
}

// proposal is one finding's action.
type proposal struct {
	action ospreyv1.VerdictAction
	reason string
	tag    string // the subject tag, for TAG
}

// Decide returns the disposition of a gateway's message.
func Decide(in Input) *ospreyv1.Disposition {
	p := validate.VerdictPolicy(in.Policy)
	var best *proposal
	propose := func(a ospreyv1.VerdictAction, tag, format string, args ...any) {
		if best != nil && Strength(a) <= Strength(best.action) {
			return
		}
		best = &proposal{action: a, reason: fmt.Sprintf(format, args...), tag: tag}
	}
	switch in.Verdict {
	case scan.VerdictDetected:
		for _, m := range in.Matches {
			a := ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED
			if m.GetEngine() == ioc.Name && in.RuleAction != nil {
				a = in.RuleAction(m.GetRuleId())
			}
			if a == ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED {
				a = p.GetDetected()
			}
			propose(a, p.GetSubjectTag(), "%s", matchReason(m))
		}
		if best == nil { // detected with no match kept: still detected
			propose(p.GetDetected(), p.GetSubjectTag(), "detected")
		}
	case scan.VerdictUnscannableLimit:
		propose(p.GetUnscannableLimit(), p.GetSubjectTag(), "not fully scanned: a bound of the scan was hit")
	case scan.VerdictUnscannableError:
		propose(p.GetUnscannableError(), p.GetSubjectTag(), "not fully scanned: an engine failed")
	}
	if a := in.Auth; p.GetApplyDmarcPolicy() && a.GetDmarc() == "fail" {
		switch a.GetDmarcPolicy() {
		case "reject":
			propose(p.GetDmarcReject(), p.GetSubjectTag(), "DMARC fail for %s, policy reject", a.GetFromDomain())
		case "quarantine":
			propose(p.GetDmarcQuarantine(), p.GetSubjectTag(), "DMARC fail for %s, policy quarantine", a.GetFromDomain())
		}
	}
	if s := in.Spam; s != nil && s.GetNotChecked() == "" {
		switch score := s.GetScore(); {
		case score >= p.GetSpamQuarantineScore():
			propose(ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, "", "spam score %.2f at or above %g", score, p.GetSpamQuarantineScore())
		case score >= p.GetSpamTagScore():
			propose(ospreyv1.VerdictAction_VERDICT_ACTION_TAG, p.GetSpamSubjectTag(), "spam score %.2f at or above %g", score, p.GetSpamTagScore())
		}
	}
	if best == nil {
		return &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER}
	}
	d := &ospreyv1.Disposition{Action: best.action, Reason: best.reason}
	if best.action == ospreyv1.VerdictAction_VERDICT_ACTION_TAG {
		d.SubjectTag = best.tag
		d.Headers = p.GetTagHeaders()
	}
	return d
}

// Strength orders actions: deliver, tag, quarantine, then the drops; an
// unknown action is as strong as quarantine, so that a value from a newer
// model is never weaker than what it most likely means.
func Strength(a ospreyv1.VerdictAction) int {
	switch a {
	case ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED:
		return 0
	case ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER:
		return 1
	case ospreyv1.VerdictAction_VERDICT_ACTION_TAG:
		return 2
	case ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_RECIPIENT, ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER:
		return 4
	default:
		return 3
	}
}

// matchReason names a match for people: "rule r1: sender evil@example.net".
func matchReason(m *ospreyv1.Match) string {
	what := m.GetWhat()
	if m.GetEngine() == ioc.Name {
		return fmt.Sprintf("rule %s: %s", m.GetRuleId(), what)
	}
	if what == "" {
		what = m.GetRuleId()
	}
	return strings.TrimSpace(m.GetEngine() + ": " + what)
}
