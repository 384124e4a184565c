// Package pipeline turns an uploaded message into a verdict and, when the
// scan found something, an alert: it is the sensorsvc.Scanner of a Central
// Node. It scans with the tenant's rules as they are now (a rule change
// applies to the next message, with no restart), and decides which
// outcomes are worth an alert:
//
//   - "detected": an alert with the matches, its severity the highest
//     among them;
//   - "unscannable: limit" (a bound of the walk was hit, as a zip bomb
//     does, and nothing matched): an alert of medium severity, since
//     hiding content past a scanner's bounds is an evasion technique;
//   - "unscannable: error" (an engine failed, clamd unreachable say, and
//     nothing matched): no alert, as an outage would raise one per
//     message; the verdict is on the message's record and the engine's
//     failures are counted in osprey_scan_engine_errors_total;
//   - "clean": no alert.
//
// A gateway's message (its envelope has a direction) also gets its
// disposition (package disposition) from the tenant's verdict policy as it
// is now: deliver, tag, quarantine or drop.
//
// With a spam check (WithSpam), Rspamd is asked about each message while
// it is scanned, and its opinion goes on the outcome, and into a gateway
// message's disposition; it raises no alert.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ospreysec/osprey/central/disposition"
	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/sensorsvc"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Rules gives a tenant's enabled rules and the revision they are at; a
// *store.RuleCache is one.
type Rules interface {
	Wait(ctx context.Context) error
	Rules(tenant string) ([]*ospreyv1.Rule, int64)
}

// Policies gives a tenant's verdict policy (nil: the defaults); a
// *store.PolicyCache is one.
type Policies interface {
	Policy(tenant string) *ospreyv1.VerdictPolicy
}

// Pipeline scans uploaded messages. It is safe for concurrent use.
type Pipeline struct {
	scanner  *scan.Scanner
	rules    Rules
	policies Policies
	log      *slog.Logger
	spam     *Spam // nil: no spam check

	mu       sync.Mutex
	compiled map[string]compiled // by tenant
}

type compiled struct {
	rev int64
	set *ioc.RuleSet
	// actions are the actions of the rules that have one, by rule id.
	actions map[string]ospreyv1.VerdictAction
}

// New returns a pipeline that scans with scanner and the rules of rules,
// and decides gateway messages' fate with the policies of policies (nil:
// every tenant has the defaults).
func New(scanner *scan.Scanner, rules Rules, policies Policies, logger *slog.Logger) *Pipeline {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{scanner: scanner, rules: rules, policies: policies, log: logger, compiled: map[string]compiled{}}
}

var _ sensorsvc.Scanner = (*Pipeline)(nil)

// Scan implements sensorsvc.Scanner.
func (p *Pipeline) Scan(ctx context.Context, rec *ospreyv1.MessageRecord, body sensorsvc.Body) (sensorsvc.Outcome, error) {
	spam := p.spam.start(ctx, rec, body) // beside the scan; see spam.go
	defer spam.stop()
	rules, err := p.ruleSet(ctx, rec.GetTenant())
	if err != nil {
		return sensorsvc.Outcome{}, err
	}
	out, err := p.scan(ctx, rec, body, rules.set)
	if err != nil {
		return out, err
	}
	out.Spam = spam.wait()
	if rec.GetEnvelope().GetDirection() != ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		in := disposition.Input{Verdict: out.Verdict, Auth: rec.GetEnvelope().GetAuth(), Spam: out.Spam}
		if p.policies != nil {
			in.Policy = p.policies.Policy(rec.GetTenant())
		}
		if out.Alert != nil {
			in.Matches = out.Alert.GetMatches()
		}
		if len(rules.actions) > 0 {
			in.RuleAction = func(id string) ospreyv1.VerdictAction { return rules.actions[id] }
		}
		out.Disposition = disposition.Decide(in)
	}
	return out, nil
}

// scan scans one message with a tenant's rules.
func (p *Pipeline) scan(ctx context.Context, rec *ospreyv1.MessageRecord, body sensorsvc.Body, rules *ioc.RuleSet) (sensorsvc.Outcome, error) {
	r, err := body.Open()
	if err != nil {
		return sensorsvc.Outcome{}, fmt.Errorf("open the uploaded message: %w", err)
	}
	defer r.Close()
	res, err := p.scanner.Scan(ctx, r, rec.GetEnvelope(), rules)
	if err != nil {
		return sensorsvc.Outcome{}, err
	}
	out := sensorsvc.Outcome{Verdict: res.Verdict, Headers: res.Headers}
	matches := res.Matches
	severity := res.Severity
	switch res.Verdict {
	case scan.VerdictDetected:
	case scan.VerdictUnscannableLimit:
		severity = ospreyv1.Severity_SEVERITY_MEDIUM
		matches = []*ospreyv1.Match{{
			Engine:   "structure",
			RuleId:   "unscannable-limit",
			Severity: severity,
			What:     "not fully scanned: a bound was hit (" + strings.Join(res.Limits, ", ") + ")",
		}}
	default:
		return out, nil
	}
	out.Alert = &ospreyv1.Alert{
		Source:      rec.GetSource(),
		Envelope:    rec.GetEnvelope(),
		Headers:     res.Headers,
		Severity:    severity,
		Matches:     matches,
		Attachments: res.Attachments,
		Verdict:     res.Verdict,
		Size:        rec.GetSize(),
		Sha256:      rec.GetSha256(),
	}
	return out, nil
}

// ruleSet returns the tenant's compiled rules, compiling them again when
// they changed.
func (p *Pipeline) ruleSet(ctx context.Context, tenant string) (compiled, error) {
	if err := p.rules.Wait(ctx); err != nil {
		return compiled{}, fmt.Errorf("load the scan rules: %w", err)
	}
	list, rev := p.rules.Rules(tenant)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.compiled[tenant]; ok && c.rev == rev {
		return c, nil
	}
	set, err := ioc.Compile(list)
	if err != nil {
		// The API validates rules before storing them; a rule that still
		// fails (written by an older version, say) is left out.
		p.log.Warn("scan rules left out", "tenant", tenant, "err", err)
	}
	c := compiled{rev: rev, set: set}
	for _, r := range list {
		if a := r.GetAction(); a != ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED {
			if c.actions == nil {
				c.actions = map[string]ospreyv1.VerdictAction{}
			}
			c.actions[ioc.MatchID(r)] = a
		}
	}
	p.compiled[tenant] = c
	return c, nil
}
