// Package scan runs scan engines over mail messages and gives each message
// a verdict.
//
// A Scanner reads a raw message once as a stream (package walk does the
// reading, decoding, hashing and archive expansion, within bounds), hands
// every body, attachment and archive member to each Engine as it is
// reached, then the message as a whole to the engines that also implement
// MessageEngine, and returns a Result: the verdict, the matches, the
// attachments and the header summary an alert needs.
//
// Verdicts, in order of precedence:
//
//   - VerdictDetected: at least one engine matched, whatever else happened.
//     A match found before a bound was hit still counts.
//   - VerdictUnscannableError: nothing matched and an engine failed on some
//     part (clamd unreachable, say), so the message was not fully scanned;
//     also when the walk or an engine panicked (a bug, counted in
//     osprey_scan_panics_total and logged with its stack), which costs the
//     message its scan but not the node.
//   - VerdictUnscannableLimit: nothing matched and a bound of walk.Limits
//     was hit (or an engine hit its own, such as clamd's stream limit), so
//     part of the message was not looked at.
//   - VerdictClean: nothing matched, everything was looked at.
//
// Malformed MIME does not change the verdict by itself: what can be read is
// scanned and Result.Notes says what was wrong.
package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/central/scan/eicar"
	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// MaxMatches bounds Result.Matches, so that an alert stays small; the
// verdict does not depend on it.
const MaxMatches = 500

// Verdicts.
const (
	VerdictClean            = "clean"
	VerdictDetected         = "detected"
	VerdictUnscannableLimit = "unscannable: limit"
	VerdictUnscannableError = "unscannable: error"
)

// Engine inspects each part of a message: every body, attachment, attached
// message and archive member, as the walk reaches it (a container after its
// members). The part's content can be read with p.Open during the call
// only. rules is the tenant's compiled rule set (nil for none); engines
// without rules ignore it.
//
// An error means the engine could not scan the part; it is recorded in the
// Result and makes the verdict VerdictUnscannableError unless something
// matched. An error wrapping walk.ErrLimit is a bound hit instead
// (VerdictUnscannableLimit). ScanPart is called from one goroutine per scan
// but from many scans at once.
type Engine interface {
	Name() string
	ScanPart(ctx context.Context, p *walk.Part, rules *ioc.RuleSet) ([]*ospreyv1.Match, error)
}

// MessageEngine is implemented by engines that also look at the message as
// a whole (senders, URLs) once all its parts have been walked.
type MessageEngine interface {
	Engine
	ScanMessage(ctx context.Context, m *walk.Message, env *ospreyv1.Envelope, rules *ioc.RuleSet) ([]*ospreyv1.Match, error)
}

// PartFunc adapts a function to a part engine; see NewEngine.
type PartFunc func(ctx context.Context, p *walk.Part, rules *ioc.RuleSet) ([]*ospreyv1.Match, error)

// NewEngine returns an Engine with the given name that calls f for each
// part.
func NewEngine(name string, f PartFunc) Engine { return funcEngine{name, f} }

type funcEngine struct {
	name string
	f    PartFunc
}

func (e funcEngine) Name() string { return e.name }
func (e funcEngine) ScanPart(ctx context.Context, p *walk.Part, rules *ioc.RuleSet) ([]*ospreyv1.Match, error) {
	return e.f(ctx, p, rules)
}

// DefaultEngines returns the engines that need no peer: structure, ioc and
// eicar. Append a ClamAV engine (package clamav) to use clamd.
func DefaultEngines() []Engine {
	return []Engine{ioc.Structure{}, ioc.Engine{}, eicar.Engine{}}
}

// Options configure a Scanner.
type Options struct {
	// Engines run in this order on each part. Nil means DefaultEngines().
	Engines []Engine
	// Limits bound each scan; zero fields take walk's defaults.
	Limits walk.Limits
	// TempDir is where large parts spill during a scan; "" means
	// os.TempDir().
	TempDir string
	// Registerer, if set, gets the scan metrics.
	Registerer prometheus.Registerer
	// Logger gets a debug line per scan; nil discards.
	Logger *slog.Logger
}

// Validate reports every problem of the options at once.
func (o Options) Validate() error {
	var errs []error
	if err := o.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	names := map[string]bool{}
	for i, e := range o.Engines {
		if e == nil {
			errs = append(errs, fmt.Errorf("engines[%d]: nil", i))
			continue
		}
		if e.Name() == "" || names[e.Name()] {
			errs = append(errs, fmt.Errorf("engines[%d]: name %q is empty or used twice", i, e.Name()))
		}
		names[e.Name()] = true
	}
	return errors.Join(errs...)
}

// Scanner scans messages. It is safe for concurrent use; each Scan is
// independent.
type Scanner struct {
	engines []Engine
	opts    walk.Options
	log     *slog.Logger
	m       *metrics
}

// New returns a Scanner, registering its metrics on opts.Registerer.
func New(opts Options) (*Scanner, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("scan options: %w", err)
	}
	s := &Scanner{
		engines: opts.Engines,
		opts:    walk.Options{Limits: opts.Limits, TempDir: opts.TempDir},
		log:     opts.Logger,
	}
	if s.engines == nil {
		s.engines = DefaultEngines()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// Result is the outcome of one scan.
type Result struct {
	// Verdict is one of the Verdict constants.
	Verdict string
	// Severity is the highest severity among Matches (unspecified if none).
	Severity ospreyv1.Severity
	// Matches found, one per engine, rule and part.
	Matches []*ospreyv1.Match
	// Attachments lists every attachment and archive member, in message
	// order.
	Attachments []*ospreyv1.Attachment
	Headers     *ospreyv1.HeaderSummary
	// URLs found in the bodies, normalized.
	URLs []string
	// Size and SHA256 of the raw message.
	Size   int64
	SHA256 string
	// Limits names the bounds hit (walk.Limit* names, or "<engine>" for an
	// engine's own bound).
	Limits []string
	// Errors are the engine failures, "<engine>: <part>: <error>".
	Errors []string
	// Notes say what was malformed and where bounds were hit.
	Notes []string
	// Duration is the time the scan took.
	Duration time.Duration
}

// Scan reads a message from r to its end and scans it with the engines.
// env is the envelope (MAIL FROM is matched by sender rules; may be nil);
// rules are the tenant's compiled rules (nil for none).
//
// It returns an error only when reading r fails or ctx ends: the caller
// must then not record a verdict. Everything else (malformed MIME, bounds,
// engine failures) is in the Result.
func (s *Scanner) Scan(ctx context.Context, r io.Reader, env *ospreyv1.Envelope, rules *ioc.RuleSet) (*Result, error) {
	start := time.Now()
	res := &Result{}
	engineTime := make([]time.Duration, len(s.engines))
	seen := map[matchKey]bool{}
	overflow := false
	add := func(ms []*ospreyv1.Match) {
		for _, m := range ms {
			k := matchKey{m.GetEngine(), m.GetRuleId(), m.GetPart()}
			switch {
			case seen[k]:
			case len(res.Matches) < MaxMatches:
				seen[k] = true
				res.Matches = append(res.Matches, m)
			case !overflow:
				overflow = true
				res.Notes = append(res.Notes, fmt.Sprintf("more than %d matches: the rest are not listed", MaxMatches))
			}
		}
	}
	engineErr := func(e Engine, where string, err error) {
		if errors.Is(err, walk.ErrLimit) {
			res.Limits = appendOnce(res.Limits, e.Name())
			res.Notes = append(res.Notes, fmt.Sprintf("%s: %s: %v", e.Name(), where, err))
			return
		}
		s.m.engineErrors.WithLabelValues(e.Name()).Inc()
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %s: %v", e.Name(), where, err))
	}
	visit := func(p *walk.Part) error {
		for i, e := range s.engines {
			t := time.Now()
			ms, err := e.ScanPart(ctx, p, rules)
			engineTime[i] += time.Since(t)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				engineErr(e, p.Where(), err)
			}
			add(ms)
		}
		return nil
	}
	var msg *walk.Message
	err := s.protect(ctx, func() (err error) {
		msg, err = walk.Walk(ctx, r, s.opts, visit)
		return err
	})
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		// What the walk had gathered is lost with it; the matches found
		// so far stand.
		res.Errors = append(res.Errors, "walk: "+pe.Error())
		msg = &walk.Message{}
	case err != nil:
		return nil, fmt.Errorf("scan: %w", err)
	}
	for i, e := range s.engines {
		me, ok := e.(MessageEngine)
		if !ok {
			continue
		}
		t := time.Now()
		var ms []*ospreyv1.Match
		err := s.protect(ctx, func() (err error) {
			ms, err = me.ScanMessage(ctx, msg, env, rules)
			return err
		})
		engineTime[i] += time.Since(t)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("scan: %w", ctx.Err())
		}
		if err != nil {
			engineErr(e, "message", err)
		}
		add(ms)
	}
	res.Headers = msg.Headers
	res.Attachments = msg.Attachments
	res.URLs = msg.URLs
	res.Size, res.SHA256 = msg.Size, msg.SHA256
	res.Limits = append(msg.Limits, res.Limits...)
	res.Notes = append(msg.Notes, res.Notes...)
	for _, m := range res.Matches {
		res.Severity = max(res.Severity, m.GetSeverity())
	}
	switch {
	case len(res.Matches) > 0:
		res.Verdict = VerdictDetected
	case len(res.Errors) > 0:
		res.Verdict = VerdictUnscannableError
	case len(res.Limits) > 0:
		res.Verdict = VerdictUnscannableLimit
	default:
		res.Verdict = VerdictClean
	}
	slices.SortStableFunc(res.Matches, func(a, b *ospreyv1.Match) int { return cmp.Compare(b.GetSeverity(), a.GetSeverity()) })
	res.Duration = time.Since(start)
	s.m.observe(res, s.engines, engineTime)
	s.log.DebugContext(ctx, "scanned", "verdict", res.Verdict, "matches", len(res.Matches),
		"size", res.Size, "parts", msg.Parts, "duration", res.Duration)
	return res, nil
}

// protect runs f and turns a panic into a *panicError. A message is
// hostile input: a bug that one trips must cost that message its verdict
// (it is recorded as unscannable), not the node — nor, as the sensor then
// uploads it to another node, every node in turn.
func (s *Scanner) protect(ctx context.Context, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.m.panics.Inc()
			s.log.ErrorContext(ctx, "scan panicked; the message is recorded as unscannable", "panic", v, "stack", string(debug.Stack()))
			err = &panicError{v}
		}
	}()
	return f()
}

// panicError is a panic caught by protect.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("internal error: %v", e.v) }

type matchKey struct{ engine, rule, part string }

func appendOnce(l []string, v string) []string {
	if slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}
