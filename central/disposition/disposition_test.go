package disposition_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/disposition"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	deliver    = ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER
	tag        = ospreyv1.VerdictAction_VERDICT_ACTION_TAG
	quarantine = ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	dropRcpt   = ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_RECIPIENT
	dropSender = ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER
)

func TestDecide(t *testing.T) {
	iocMatch := func(rule, what string) *ospreyv1.Match {
		return &ospreyv1.Match{Engine: "ioc", RuleId: rule, What: what}
	}
	eicar := &ospreyv1.Match{Engine: "eicar", RuleId: "Eicar-Test-Signature", What: "attachment eicar.com is the EICAR test file"}
	ruleActions := map[string]ospreyv1.VerdictAction{"tagme": tag, "dropme": dropSender, "letgo": deliver}
	byRule := func(id string) ospreyv1.VerdictAction { return ruleActions[id] }
	headers := []*ospreyv1.HeaderField{{Name: "X-Scanned", Value: "yes"}}

	tests := []struct {
		name string
		in   disposition.Input
		want *ospreyv1.Disposition
	}{
		{
			name: "clean is delivered",
			in:   disposition.Input{Verdict: "clean"},
			want: &ospreyv1.Disposition{Action: deliver},
		},
		{
			name: "detected is quarantined by default",
			in:   disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{eicar}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "eicar: attachment eicar.com is the EICAR test file"},
		},
		{
			name: "the tenant's action for detected",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{eicar},
				Policy: &ospreyv1.VerdictPolicy{Detected: tag, TagHeaders: headers}},
			want: &ospreyv1.Disposition{Action: tag, SubjectTag: "[Osprey detect]", Headers: headers,
				Reason: "eicar: attachment eicar.com is the EICAR test file"},
		},
		{
			name: "a rule's own action overrides the tenant's",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{iocMatch("tagme", "sender a@b.example")},
				RuleAction: byRule, Policy: &ospreyv1.VerdictPolicy{SubjectTag: "[x]"}},
			want: &ospreyv1.Disposition{Action: tag, SubjectTag: "[x]", Reason: "rule tagme: sender a@b.example"},
		},
		{
			name: "a rule that lets go does not outweigh another match",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{iocMatch("letgo", "url"), eicar},
				RuleAction: byRule},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "eicar: attachment eicar.com is the EICAR test file"},
		},
		{
			name: "a rule without an action takes the tenant's",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{iocMatch("plain", "hash")},
				RuleAction: byRule},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "rule plain: hash"},
		},
		{
			name: "the strongest wins: drop over quarantine",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{eicar, iocMatch("dropme", "sender")},
				RuleAction: byRule},
			want: &ospreyv1.Disposition{Action: dropSender, Reason: "rule dropme: sender"},
		},
		{
			name: "unscannable by a limit is delivered by default",
			in:   disposition.Input{Verdict: "unscannable: limit"},
			want: &ospreyv1.Disposition{Action: deliver, Reason: "not fully scanned: a bound of the scan was hit"},
		},
		{
			name: "unscannable by an error has its own action",
			in: disposition.Input{Verdict: "unscannable: error",
				Policy: &ospreyv1.VerdictPolicy{UnscannableError: quarantine, UnscannableLimit: dropRcpt}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "not fully scanned: an engine failed"},
		},
		{
			name: "DMARC reject is not applied unless the policy says so",
			in: disposition.Input{Verdict: "clean",
				Auth: &ospreyv1.AuthResults{Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "bank.example"}},
			want: &ospreyv1.Disposition{Action: deliver},
		},
		{
			name: "DMARC fail with policy reject, applied",
			in: disposition.Input{Verdict: "clean", Policy: &ospreyv1.VerdictPolicy{ApplyDmarcPolicy: true},
				Auth: &ospreyv1.AuthResults{Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "bank.example"}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "DMARC fail for bank.example, policy reject"},
		},
		{
			name: "DMARC fail with policy none changes nothing",
			in: disposition.Input{Verdict: "clean", Policy: &ospreyv1.VerdictPolicy{ApplyDmarcPolicy: true},
				Auth: &ospreyv1.AuthResults{Dmarc: "fail", DmarcPolicy: "none", FromDomain: "bank.example"}},
			want: &ospreyv1.Disposition{Action: deliver},
		},
		{
			name: "DMARC pass changes nothing",
			in: disposition.Input{Verdict: "clean", Policy: &ospreyv1.VerdictPolicy{ApplyDmarcPolicy: true, DmarcReject: dropSender},
				Auth: &ospreyv1.AuthResults{Dmarc: "pass", DmarcPolicy: "reject", FromDomain: "bank.example"}},
			want: &ospreyv1.Disposition{Action: deliver},
		},
		{
			name: "spam above the tag score is tagged as spam",
			in:   disposition.Input{Verdict: "clean", Spam: &ospreyv1.SpamResult{Score: 7.5}},
			want: &ospreyv1.Disposition{Action: tag, SubjectTag: "[SPAM]", Reason: "spam score 7.50 at or above 6"},
		},
		{
			name: "spam above the quarantine score is quarantined",
			in: disposition.Input{Verdict: "clean", Spam: &ospreyv1.SpamResult{Score: 12},
				Policy: &ospreyv1.VerdictPolicy{SpamTagScore: 5, SpamQuarantineScore: 10}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "spam score 12.00 at or above 10"},
		},
		{
			name: "a low spam score changes nothing",
			in:   disposition.Input{Verdict: "clean", Spam: &ospreyv1.SpamResult{Score: 1}},
			want: &ospreyv1.Disposition{Action: deliver},
		},
		{
			name: "a detection outweighs a spam tag",
			in:   disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{eicar}, Spam: &ospreyv1.SpamResult{Score: 8}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "eicar: attachment eicar.com is the EICAR test file"},
		},
		{
			name: "a spam quarantine outweighs a detection the tenant tags",
			in: disposition.Input{Verdict: "detected", Matches: []*ospreyv1.Match{eicar}, Spam: &ospreyv1.SpamResult{Score: 30},
				Policy: &ospreyv1.VerdictPolicy{Detected: tag}},
			want: &ospreyv1.Disposition{Action: quarantine, Reason: "spam score 30.00 at or above 15"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := disposition.Decide(tt.in)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}
