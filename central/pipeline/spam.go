package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/sensorsvc"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The spam check asks rspamd about each message while the scan runs, from
// a reader of its own of the upload's body, and puts the answer on the
// outcome (Outcome.Spam), which the record keeps. It never fails an
// upload: when rspamd does not answer in time, or fails, the message is
// recorded without a spam result, the failure counted in
// osprey_spam_checks_total{result="error"} and shown in the node's health
// (Spam.Health). After spamPauseAfter failures in a row the check is left
// out (result "skipped") for spamPause, so an rspamd that hangs costs the
// uploads its timeout a few times, not on every message; the first
// message after the pause tries again.
const (
	spamPauseAfter = 3
	spamPause      = 10 * time.Second
	// spamFailingFor is how long after its last failed check rspamd counts
	// as failing in the node's health, even when it answers /ping.
	spamFailingFor = time.Minute
)

// Results of a spam check, the values of the metric's result label.
const (
	spamOK        = "ok"
	spamError     = "error"
	spamTooLarge  = "too_large"
	spamSkipped   = "skipped"
	spamCancelled = "cancelled"
)

// SpamOptions configure a Spam check.
type SpamOptions struct {
	// Client is the rspamd asked.
	Client *rspamd.Client
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives a warning when rspamd starts failing and a notice
	// when it answers again; nil discards them.
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Validate reports every problem at once.
func (o SpamOptions) Validate() error {
	if o.Client == nil {
		return errors.New("spam.client: nil")
	}
	return nil
}

// Spam is the spam check of a Pipeline (WithSpam). It is safe for
// concurrent use.
type Spam struct {
	client   *rspamd.Client
	log      *slog.Logger
	now      func() time.Time
	checks   *prometheus.CounterVec
	duration prometheus.Histogram

	mu          sync.Mutex
	failures    int // in a row
	lastFailure time.Time
	lastErr     error
	pausedUntil time.Time
}

// NewSpam returns a spam check.
func NewSpam(o SpamOptions) (*Spam, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Spam{
		client: o.Client,
		log:    o.Logger,
		now:    o.Now,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_spam_checks_total",
			Help: "Messages the spam engine (Rspamd) was asked about, by result: ok, error (recorded without a spam result), too_large (not sent), skipped (left out after errors in a row), cancelled (the upload ended first).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "osprey_spam_check_duration_seconds",
			Help:    "Time of one successful spam check, sending the message included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, r := range []string{spamOK, spamError, spamTooLarge, spamSkipped, spamCancelled} {
		s.checks.WithLabelValues(r)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.checks, s.duration} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register spam metrics: %w", err)
			}
		}
	}
	return s, nil
}

// WithSpam has p ask s about every message it scans, and returns p.
func (p *Pipeline) WithSpam(s *Spam) *Pipeline {
	p.spam = s
	return p
}

// Health says whether rspamd works: it answers /ping, and no check failed
// within spamFailingFor (or one succeeded since).
func (s *Spam) Health(ctx context.Context) error {
	if err := s.client.Ping(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 && s.now().Sub(s.lastFailure) < spamFailingFor {
		return fmt.Errorf("%d spam checks in a row failed, the last at %s: %w", s.failures, s.lastFailure.UTC().Format(time.RFC3339), s.lastErr)
	}
	return nil
}

// spamCall is one spam check running beside a scan.
type spamCall struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    *ospreyv1.SpamResult
}

// start starts the check of one message; nil when there is no spam check
// configured. A message too large, or one that comes while the checks are
// paused, gets a call that is done at once and says why.
func (s *Spam) start(ctx context.Context, rec *ospreyv1.MessageRecord, body sensorsvc.Body) *spamCall {
	if s == nil {
		return nil
	}
	if body.Size() > s.client.MaxSize() {
		s.checks.WithLabelValues(spamTooLarge).Inc()
		return notChecked(notCheckedTooLarge)
	}
	s.mu.Lock()
	paused := s.now().Before(s.pausedUntil)
	s.mu.Unlock()
	if paused {
		s.checks.WithLabelValues(spamSkipped).Inc()
		return notChecked(notCheckedPaused)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &spamCall{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.res = s.check(ctx, rec, body)
	}()
	return c
}

// Why a message has no spam score: SpamResult.not_checked.
const (
	notCheckedError    = "error"
	notCheckedTooLarge = "too_large"
	notCheckedPaused   = "paused"
)

// notChecked returns a call that is done, with a result saying why the
// message was not checked.
func notChecked(why string) *spamCall {
	c := &spamCall{cancel: func() {}, done: make(chan struct{}), res: &ospreyv1.SpamResult{NotChecked: why}}
	close(c.done)
	return c
}

// wait returns the check's result: nil when there was no check or the
// upload ended first, a result with not_checked when the check failed.
func (c *spamCall) wait() *ospreyv1.SpamResult {
	if c == nil {
		return nil
	}
	<-c.done
	return c.res
}

// stop ends the check, if it still runs, and waits for it.
func (c *spamCall) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

// check asks rspamd, and counts and remembers how it went.
func (s *Spam) check(ctx context.Context, rec *ospreyv1.MessageRecord, body sensorsvc.Body) *ospreyv1.SpamResult {
	r, err := body.Open()
	if err != nil {
		// Not rspamd's failure; the scan, which opens the body too, fails
		// the upload.
		s.checks.WithLabelValues(spamCancelled).Inc()
		return nil
	}
	defer r.Close()
	start := s.now()
	res, err := s.client.Check(ctx, r, body.Size(), spamEnvelope(rec))
	switch {
	case err == nil:
		s.checks.WithLabelValues(spamOK).Inc()
		s.duration.Observe(s.now().Sub(start).Seconds())
		s.succeeded()
		return res
	case errors.Is(err, rspamd.ErrTooLarge):
		s.checks.WithLabelValues(spamTooLarge).Inc()
		return &ospreyv1.SpamResult{NotChecked: notCheckedTooLarge}
	case ctx.Err() != nil:
		// The upload ended (the sensor went away, the node stops): not
		// rspamd's failure, and nothing is recorded.
		s.checks.WithLabelValues(spamCancelled).Inc()
		return nil
	default:
		s.checks.WithLabelValues(spamError).Inc()
		s.failed(err)
		return &ospreyv1.SpamResult{NotChecked: notCheckedError}
	}
}

func (s *Spam) succeeded() {
	s.mu.Lock()
	failed := s.failures
	s.failures, s.lastErr, s.pausedUntil = 0, nil, time.Time{}
	s.mu.Unlock()
	if failed > 0 {
		s.log.Info("rspamd answers again", "failed_checks", failed)
	}
}

func (s *Spam) failed(err error) {
	s.mu.Lock()
	s.failures++
	s.lastFailure, s.lastErr = s.now(), err
	first, pause := s.failures == 1, s.failures >= spamPauseAfter
	if pause {
		s.pausedUntil = s.lastFailure.Add(spamPause)
	}
	s.mu.Unlock()
	if first {
		s.log.Warn("rspamd failed: messages are recorded without a spam result until it answers", "err", err)
	}
}

// spamEnvelope is what rspamd is told of a message's envelope. An SMTP
// message without a sender had the null sender; a polled one has none.
func spamEnvelope(rec *ospreyv1.MessageRecord) rspamd.Envelope {
	env := rec.GetEnvelope()
	e := rspamd.Envelope{
		From: env.GetMailFrom(), Rcpt: env.GetRcptTo(), IP: env.GetClientAddr(), Helo: env.GetHelo(),
		QueueID: rec.GetMessageId(), TLSVersion: env.GetTlsVersion(), TLSCipher: env.GetTlsCipher(),
		User: env.GetAuthUser(), // rspamd scores mail of authenticated users as outbound
	}
	if e.From == "" && rec.GetSource() == ospreyv1.MailSource_MAIL_SOURCE_SMTP {
		e.From = "<>"
	}
	return e
}
