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
// With a spam check (WithSpam), Rspamd is asked about each message while
// it is scanned, and its opinion goes on the outcome; it raises no alert.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

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

// Pipeline scans uploaded messages. It is safe for concurrent use.
type Pipeline struct {
	scanner *scan.Scanner
	rules   Rules
	log     *slog.Logger
	spam    *Spam // nil: no spam check

	mu       sync.Mutex
	compiled map[string]compiled // by tenant
}

type compiled struct {
	rev int64
	set *ioc.RuleSet
}

// New returns a pipeline that scans with scanner and the rules of rules.
func New(scanner *scan.Scanner, rules Rules, logger *slog.Logger) *Pipeline {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{scanner: scanner, rules: rules, log: logger, compiled: map[string]compiled{}}
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
	r, err := body.Open()
	if err != nil {
		return sensorsvc.Outcome{}, fmt.Errorf("open the uploaded message: %w", err)
	}
	defer r.Close()
	res, err := p.scanner.Scan(ctx, r, rec.GetEnvelope(), rules)
	if err != nil {
		return sensorsvc.Outcome{}, err
	}
	out := sensorsvc.Outcome{Verdict: res.Verdict, Headers: res.Headers, Spam: spam.wait()}
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
func (p *Pipeline) ruleSet(ctx context.Context, tenant string) (*ioc.RuleSet, error) {
	if err := p.rules.Wait(ctx); err != nil {
		return nil, fmt.Errorf("load the scan rules: %w", err)
	}
	list, rev := p.rules.Rules(tenant)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.compiled[tenant]; ok && c.rev == rev {
		return c.set, nil
	}
	set, err := ioc.Compile(list)
	if err != nil {
		// The API validates rules before storing them; a rule that still
		// fails (written by an older version, say) is left out.
		p.log.Warn("scan rules left out", "tenant", tenant, "err", err)
	}
	p.compiled[tenant] = compiled{rev: rev, set: set}
	return set, nil
}
