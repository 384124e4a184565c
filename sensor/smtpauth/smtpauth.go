package smtpauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The answers of Authenticate besides nil. Match them with errors.Is: the
// errors returned wrap them with what happened.
var (
	// ErrInvalid: the source refused the name or the password (SMTP 535
	// 5.7.8). Also the answer to an empty name or password, which no
	// source is asked about: an LDAP bind with an empty password is an
	// unauthenticated bind, which many directories let through.
	ErrInvalid = errors.New("invalid credentials")
	// ErrThrottled: the client or the name failed too often lately, and
	// the source was not asked (SMTP 454 4.7.0).
	ErrThrottled = errors.New("too many failed authentications")
	// ErrUnavailable: the source could not answer (unreachable, TLS
	// failed, timed out, misconfigured), or no source is configured (SMTP
	// 454 4.7.0).
	ErrUnavailable = errors.New("authentication source unavailable")
)

// Probe intervals of Run: while the source answers, and while it fails
// (so that its recovery shows soon).
const (
	DefaultProbeInterval = time.Minute
	failingProbeInterval = 15 * time.Second
)

// Options configure an Authenticator.
type Options struct {
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Hostname is the name said in EHLO to an SMTP forwarding source;
	// empty means "localhost".
	Hostname string
	// Now is the clock of the cache, the throttle and the status; nil
	// means time.Now. (Network timeouts use the real time.)
	Now func() time.Time
	// ProbeInterval is how often Run checks the source while it answers;
	// 0 means DefaultProbeInterval. (While it fails, every 15 s, or this
	// interval when shorter.)
	ProbeInterval time.Duration
	// Registerer, when set, gets the Authenticator's Prometheus
	// collector.
	Registerer prometheus.Registerer
}

// source is where credentials are checked.
type source interface {
	// authenticate returns nil, an error wrapping ErrInvalid, or another
	// error when the source could not answer.
	authenticate(ctx context.Context, user, password string) error
	// probe checks that the source can be reached.
	probe(ctx context.Context) error
	// close releases what the source holds; it may not be used after.
	close()
	String() string
}

// config is one applied configuration.
type config struct {
	src      source // nil: no source (the listener is off)
	settings *ospreyv1.SubmissionSettings
	limits   limits
	ttl      time.Duration // 0: no cache
}

// Authenticator checks SMTP AUTH credentials against the configured
// source, behind a throttle of failures and a cache of successes. Apply
// hands it each configuration; Run probes the source and cleans up.
// Authenticate may be called at any time, concurrently.
type Authenticator struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	cache    *cache
	throttle *throttle
	wake     chan struct{} // Apply changed the source
	stats    stats

	mu     sync.Mutex // guards cfg and health
	cfg    *config
	health health
}

// health is what the last contact with the source found.
type health struct {
	source  string // the source it is about
	failing bool
	since   time.Time // of the failure
	last    time.Time // of the last failed contact
	err     error
}

// Stats are the Authenticator's counters since New.
type Stats struct {
	// CacheHits counts the checks the cache answered.
	CacheHits uint64
	// SourceOK, SourceInvalid and SourceErrors count the checks asked of
	// the source, by what it answered.
	SourceOK, SourceInvalid, SourceErrors uint64
}

// Stats returns the counters.
func (a *Authenticator) Stats() Stats {
	return Stats{CacheHits: a.stats.cacheHits.Load(), SourceOK: a.stats.source[0].Load(),
		SourceInvalid: a.stats.source[1].Load(), SourceErrors: a.stats.source[2].Load()}
}

// stats are the atomics behind Stats.
type stats struct {
	cacheHits atomic.Uint64
	source    [3]atomic.Uint64 // by sourceResults
}

var sourceResults = [...]string{"ok", "invalid", "error"}

// New returns an Authenticator without a source: Apply a configuration,
// and Run it.
func New(opts Options) *Authenticator {
	a := &Authenticator{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		cache:    newCache(),
		throttle: newThrottle(),
		wake:     make(chan struct{}, 1),
		cfg:      &config{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.opts.Hostname == "" {
		a.opts.Hostname = "localhost"
	}
	if a.opts.ProbeInterval <= 0 {
		a.opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(collector{a}); err != nil {
			a.log.Warn("SMTP AUTH metrics not registered", "err", err)
		}
	}
	return a
}

// Check reports whether Apply would take s, without applying it.
func (a *Authenticator) Check(s *ospreyv1.SubmissionSettings) error {
	src, err := a.compile(s)
	if src != nil {
		src.close()
	}
	return err
}

// Apply hands s over: a disabled or nil s turns the Authenticator off
// (every check is ErrUnavailable). A source whose settings changed
// replaces the one before (its pooled connections are closed) and
// empties the cache; the throttle's counts stay. Apply does no I/O.
func (a *Authenticator) Apply(s *ospreyv1.SubmissionSettings) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.cfg
	eff := validate.Submission(s)
	next := &config{
		settings: eff,
		limits: limits{perClient: int(eff.GetMaxFailuresPerClient()), perUser: int(eff.GetMaxFailuresPerUser()),
			window: time.Duration(eff.GetFailureWindowSeconds()) * time.Second},
	}
	if !eff.GetDisableCache() {
		next.ttl = time.Duration(eff.GetCacheSeconds()) * time.Second
	}
	if sameSource(old.settings, eff) {
		next.src = old.src
	} else {
		src, err := a.compile(s)
		if err != nil {
			return err
		}
		next.src = src
		if old.src != nil {
			old.src.close()
		}
		a.cache.forget()
		a.health = health{}
		if src != nil {
			a.health.source = src.String()
		}
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	if next.ttl == 0 {
		a.cache.forget()
	}
	a.cfg = next
	return nil
}

// sameSource reports whether a and b name the same source with the same
// settings (nil for an Authenticator never applied).
func sameSource(a, b *ospreyv1.SubmissionSettings) bool {
	if a == nil || a.GetEnabled() != b.GetEnabled() || a.GetSource() != b.GetSource() {
		return false
	}
	return proto.Equal(a.GetLdap(), b.GetLdap()) && proto.Equal(a.GetSmtpForward(), b.GetSmtpForward())
}

// compile makes the source s configures; nil when s is disabled.
func (a *Authenticator) compile(s *ospreyv1.SubmissionSettings) (source, error) {
	s = validate.Submission(s)
	if !s.GetEnabled() {
		return nil, nil
	}
	switch s.GetSource() {
	case ospreyv1.AuthSource_AUTH_SOURCE_LDAP:
		return newLDAPSource(s.GetLdap())
	case ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD:
		return newForwardSource(s.GetSmtpForward(), a.opts.Hostname)
	}
	return nil, fmt.Errorf("submission source %v: want LDAP or SMTP_FORWARD", s.GetSource())
}

func (a *Authenticator) config() *config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Authenticate checks that user may log in with password, coming from
// client: nil when the source says so (or said so less than
// cache_seconds ago); an error wrapping ErrInvalid, ErrThrottled or
// ErrUnavailable otherwise. The errors name the user and the source,
// never the password.
func (a *Authenticator) Authenticate(ctx context.Context, client netip.Addr, user, password string) error {
	cfg := a.config()
	if cfg.src == nil {
		return fmt.Errorf("%w: no authentication source is configured", ErrUnavailable)
	}
	now := a.now()
	if err := a.throttle.blocked(client, user, cfg.limits, now); err != nil {
		return err
	}
	if user == "" || password == "" {
		a.throttle.fail(client, user, cfg.limits, now)
		return fmt.Errorf("%w: an empty user name or password", ErrInvalid)
	}
	if cfg.ttl > 0 && a.cache.hit(user, password, now) {
		a.stats.cacheHits.Add(1)
		return nil
	}
	err := cfg.src.authenticate(ctx, user, password)
	now = a.now()
	switch {
	case err == nil:
		a.stats.source[0].Add(1)
		a.contact(cfg.src, nil)
		a.throttle.succeed(user)
		if cfg.ttl > 0 {
			a.cache.add(user, password, now.Add(cfg.ttl), now)
		}
		return nil
	case errors.Is(err, ErrInvalid):
		a.stats.source[1].Add(1)
		a.contact(cfg.src, nil)
		a.throttle.fail(client, user, cfg.limits, now)
		return err
	case ctx.Err() != nil:
		// The session ended (the client went away, the server stops):
		// nothing to say about the source.
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	a.stats.source[2].Add(1)
	a.contact(cfg.src, err)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// contact records what a check or a probe of src found: err nil when the
// source answered (a refused password is an answer).
func (a *Authenticator) contact(src source, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.src != src {
		return // replaced meanwhile
	}
	h := &a.health
	now := a.now()
	switch {
	case err == nil && h.failing:
		a.log.Info("SMTP AUTH source answers again", "source", src.String(), "failing_since", h.since)
		h.failing, h.err = false, nil
	case err != nil && !h.failing:
		a.log.Warn("SMTP AUTH source fails: AUTH answers 454 (try later)", "source", src.String(), "err", err)
		h.failing, h.since = true, now
		fallthrough
	case err != nil:
		h.last, h.err = now, err
	}
}

// Problem returns the warning for the sensor's status while the source
// fails: "" when it answers, or when the listener is off.
func (a *Authenticator) Problem() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.health
	if !h.failing || a.cfg.src == nil {
		return ""
	}
	return fmt.Sprintf("WARNING: submission: the %s fails since %s (last at %s): %v; AUTH is answered 454 4.7.0 (try later) until it answers",
		h.source, h.since.UTC().Format(time.RFC3339), h.last.UTC().Format(time.RFC3339), h.err)
}

// Run probes the source every ProbeInterval (more often while it fails,
// and at once after Apply changed it), closes the connections that idled
// too long and forgets the expired entries of the cache and the throttle,
// until ctx ends. It then closes the source's connections and returns
// nil.
func (a *Authenticator) Run(ctx context.Context) error {
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.cfg.src != nil {
			a.cfg.src.close()
		}
		a.cfg = &config{}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-t.C:
		}
		cfg := a.config()
		if cfg.src != nil {
			a.contact(cfg.src, cfg.src.probe(ctx))
			if l, ok := cfg.src.(*ldapSource); ok {
				l.users.drain(maxLDAPIdle)
				l.searches.drain(maxLDAPIdle)
			}
		}
		now := a.now()
		a.cache.sweep(now)
		a.throttle.sweep(cfg.limits.window, now)
		next := a.opts.ProbeInterval
		if a.Problem() != "" {
			next = min(next, failingProbeInterval)
		}
		t.Reset(next)
	}
}

// collector exports the Authenticator's counters.
type collector struct{ a *Authenticator }

var (
	cacheHitsDesc = prometheus.NewDesc("osprey_smtp_auth_cache_hits_total",
		"SMTP AUTH checks answered by the cache of successful checks, without asking the source.", nil, nil)
	sourceChecksDesc = prometheus.NewDesc("osprey_smtp_auth_source_checks_total",
		"SMTP AUTH checks asked of the source, by result: ok, invalid (the name or password refused), error (no answer).", []string{"result"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- sourceChecksDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(c.a.stats.cacheHits.Load()))
	for i, r := range sourceResults {
		ch <- prometheus.MustNewConstMetric(sourceChecksDesc, prometheus.CounterValue, float64(c.a.stats.source[i].Load()), r)
	}
}

// certPool reads PEM certificates.
func certPool(pemText string) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM([]byte(pemText)) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}
