package rcptverify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
)

// Status is what verification found of a recipient.
type Status int

const (
	// TempFail: the next hop could not be asked (or answered 4xx); the
	// client should try later.
	TempFail Status = iota
	// Exists: the next hop takes mail for the recipient.
	Exists
	// Unknown: the next hop refused the recipient.
	Unknown
)

func (s Status) String() string {
	switch s {
	case Exists:
		return "exists"
	case Unknown:
		return "unknown"
	}
	return "tempfail"
}

// Result is the answer of Verify.
type Result struct {
	Status Status
	// Reply is the next hop's reply to RCPT (its text, without codes) for
	// Exists and Unknown, or why the probe failed for TempFail.
	Reply string
	// Cached says the answer came from the cache, without a probe.
	Cached bool
}

// Config is an applied configuration.
type Config struct {
	PositiveTTL, PositiveRefresh, NegativeTTL time.Duration
	// ProbeTimeout bounds one probe, its waits for a slot included.
	ProbeTimeout time.Duration
	// MaxProbesPerHost bounds the probes at once to one next-hop address.
	MaxProbesPerHost int
	// Delivery is the gateway's routing, as its delivery client has it
	// (gateway.DeliveryConfig).
	Delivery delivery.Config
}

// ConfigFrom translates a gateway's recipient verification, defaults
// applied, with the gateway's routing dc.
func ConfigFrom(v *ospreyv1.RecipientVerification, dc delivery.Config) Config {
	v = validate.RecipientVerification(v)
	sec := func(n uint32) time.Duration { return time.Duration(n) * time.Second }
	return Config{
		PositiveTTL:      sec(v.GetPositiveTtlSeconds()),
		PositiveRefresh:  sec(v.GetPositiveRefreshSeconds()),
		NegativeTTL:      sec(v.GetNegativeTtlSeconds()),
		ProbeTimeout:     sec(v.GetProbeTimeoutSeconds()),
		MaxProbesPerHost: int(v.GetMaxProbesPerHost()),
		Delivery:         dc,
	}
}

// Validate reports the problems of c, each with its field, without side
// effects.
func (c Config) Validate() error {
	var errs validate.Errors
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"positive_ttl", c.PositiveTTL}, {"positive_refresh", c.PositiveRefresh}, {"negative_ttl", c.NegativeTTL}, {"probe_timeout", c.ProbeTimeout}} {
		if d.v <= 0 {
			errs = append(errs, validate.FieldError{Field: d.field, Message: "must be positive"})
		}
	}
	if c.MaxProbesPerHost <= 0 {
		errs = append(errs, validate.FieldError{Field: "max_probes_per_host", Message: "must be positive"})
	}
	if err := c.Delivery.Validate(); err != nil {
		errs = append(errs, validate.FieldError{Field: "delivery", Message: err.Error()})
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Defaults of Options.
const (
	DefaultMaxEntries = 100000
	// refreshQueue bounds the background refreshes waiting; past it a
	// stale result is refreshed at a later lookup.
	refreshQueue = 256
	// maintenance is how often Run deletes expired results.
	maintenance = 10 * time.Minute
)

// Options configure a Verifier.
type Options struct {
	// Dir holds the cache's database; required.
	Dir string
	// Resolver and Dialer reach the next hops, as delivery's Options; nil
	// means the system's.
	Resolver delivery.Resolver
	Dialer   delivery.Dialer
	// Hostname is the HELO name when the configuration gives none; nil
	// means os.Hostname.
	Hostname func() (string, error)
	// Now is the clock of the cache's lifetimes; nil means time.Now.
	Now func() time.Time
	// MaxEntries bounds the results kept; 0 means DefaultMaxEntries.
	MaxEntries int
	Logger     *slog.Logger
	// Registerer, when set, gets the Verifier's metrics.
	Registerer prometheus.Registerer
}

// Verifier verifies recipients with their next hops and caches the
// answers. Open it, Apply a configuration, Run it, Close it after Run
// returned. Verify is safe for concurrent use.
type Verifier struct {
	log    *slog.Logger
	now    func() time.Time
	client *delivery.Client
	// cache is nil while it cannot be opened (a full disk): every lookup
	// probes then, and Run tries again every minute.
	cache    atomic.Pointer[cache]
	dir      string
	max      int
	cacheErr atomic.Pointer[error] // why the cache is not open
	cfg      atomic.Pointer[Config]
	group    singleflight.Group
	m        *metrics
	trbl     trouble

	// life is the context of every probe, cancelled when Run ends.
	life context.Context
	stop context.CancelFunc

	refresh chan string  // recipients to probe again in the background
	asking  atomic.Int64 // lookups waiting for a probe

	mu      sync.Mutex
	slots   map[string]chan struct{} // per next-hop address
	pending map[string]bool          // cache keys waiting in refresh
	waiting int                      // probes waiting for a slot
}

// Open opens (or creates) the cache in opts.Dir. The Verifier answers
// TempFail until the first Apply.
func Open(ctx context.Context, opts Options) (*Verifier, error) {
	if opts.Dir == "" {
		return nil, errors.New("open recipient verification: Dir is required")
	}
	v := &Verifier{
		log:     opts.Logger,
		now:     opts.Now,
		refresh: make(chan string, refreshQueue),
		slots:   map[string]chan struct{}{},
		pending: map[string]bool{},
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.log = v.log.With("component", "rcptverify")
	if v.now == nil {
		v.now = time.Now
	}
	v.life, v.stop = context.WithCancel(context.Background())
	v.client = delivery.New(delivery.Options{Logger: v.log, Resolver: opts.Resolver, Dialer: opts.Dialer,
		Hostname: opts.Hostname, CacheSize: -1})
	v.dir, v.max = opts.Dir, opts.MaxEntries
	if v.max <= 0 {
		v.max = DefaultMaxEntries
	}
	// A cache that cannot be opened does not stop the sensor, which must
	// go on taking mail: Run tries again.
	if err := v.openCache(ctx); err != nil {
		v.log.Warn("recipient verification: the cache cannot be opened; trying again", "err", err)
	}
	v.m = newMetrics(v, opts.Registerer)
	return v, nil
}

// openCache opens the cache, unless it is open.
func (v *Verifier) openCache(ctx context.Context) error {
	if v.cache.Load() != nil {
		return nil
	}
	c, err := openCache(ctx, v.dir, v.max, v.log)
	if err != nil {
		v.cacheErr.Store(&err)
		return err
	}
	v.cache.Store(c)
	v.cacheErr.Store(nil)
	return nil
}

// Close closes the cache; Run must have returned.
func (v *Verifier) Close() error {
	v.stop()
	return v.cache.Load().close()
}

// Apply hands over a configuration; lookups from now on follow it. It
// changes nothing when cfg is invalid.
func (v *Verifier) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("recipient verification: %w", err)
	}
	if err := v.client.Apply(cfg.Delivery); err != nil {
		return fmt.Errorf("recipient verification: %w", err)
	}
	v.cfg.Store(&cfg)
	return nil
}

// Run refreshes stale results in the background and deletes expired ones
// (opening the cache first when Open could not) until ctx ends; then it
// cancels the probes in flight.
func (v *Verifier) Run(ctx context.Context) error {
	defer v.stop()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	v.expire(ctx)
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if v.cache.Load() == nil {
				if err := v.openCache(ctx); err != nil {
					continue
				}
				v.log.Info("recipient verification: cache open")
			}
			if tick%int(maintenance/time.Minute) == 0 {
				v.expire(ctx)
			}
		case rcpt := <-v.refresh:
			key := cacheKey(rcpt)
			v.mu.Lock()
			delete(v.pending, key)
			v.mu.Unlock()
			if cfg := v.cfg.Load(); cfg != nil {
				v.shared(key, func() Result { return v.probe(cfg, rcpt, key) })
			}
		}
	}
}

// expire deletes the expired results and the slots of next hops no probe
// uses.
func (v *Verifier) expire(ctx context.Context) {
	if cfg := v.cfg.Load(); cfg != nil {
		if n, err := v.cache.Load().expire(ctx, v.now(), cfg.PositiveTTL, cfg.NegativeTTL); err != nil {
			v.log.Warn("recipient verification: expired results not deleted", "err", err)
		} else if n > 0 {
			v.log.Debug("expired results deleted", "results", n)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for addr, s := range v.slots {
		if len(s) == 0 {
			delete(v.slots, addr)
		}
	}
}

// Verify says whether rcpt, a recipient of a local domain, exists: from
// the cache while its result is fresh, otherwise by a probe of its next
// hop, which concurrent lookups of the same recipient share. It returns
// TempFail when ctx ends first (the probe goes on, and its result is
// cached).
func (v *Verifier) Verify(ctx context.Context, rcpt string) Result {
	cfg := v.cfg.Load()
	if cfg == nil {
		v.m.count(TempFail, false)
		return Result{Status: TempFail, Reply: "recipient verification is not configured yet"}
	}
	key := cacheKey(rcpt)
	now := v.now()
	e, ok, err := v.cache.Load().get(ctx, key)
	if err != nil {
		// A cache that cannot be read costs a probe, not the answer.
		v.log.Warn("recipient verification: cache not read", "err", err)
	}
	if ok {
		age := now.Sub(e.checked)
		switch {
		case e.found && age < cfg.PositiveTTL:
			if age >= cfg.PositiveRefresh {
				v.requestRefresh(rcpt, key)
			}
			v.m.count(Exists, true)
			return Result{Status: Exists, Reply: e.reply, Cached: true}
		case !e.found && age < cfg.NegativeTTL:
			v.m.count(Unknown, true)
			return Result{Status: Unknown, Reply: e.reply, Cached: true}
		}
	}
	v.asking.Add(1)
	defer v.asking.Add(-1)
	ch := v.group.DoChan(key, func() (any, error) { return v.probe(cfg, rcpt, key), nil })
	select {
	case r := <-ch:
		res := r.Val.(Result)
		v.m.count(res.Status, false)
		return res
	case <-ctx.Done():
		v.m.count(TempFail, false)
		return Result{Status: TempFail, Reply: "verification interrupted: " + context.Cause(ctx).Error()}
	}
}

// shared runs probe f for key unless one runs already, and waits for it.
func (v *Verifier) shared(key string, f func() Result) Result {
	r, _, _ := v.group.Do(key, func() (any, error) { return f(), nil })
	return r.(Result)
}

// requestRefresh asks Run to probe rcpt again, once.
func (v *Verifier) requestRefresh(rcpt, key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending[key] {
		return
	}
	select {
	case v.refresh <- rcpt:
		v.pending[key] = true
	default: // full: a later lookup asks again
	}
}

// probe asks rcpt's next hop, caches what it answers about the recipient,
// and notes the trouble of a next hop that does not answer.
func (v *Verifier) probe(cfg *Config, rcpt, key string) Result {
	ctx, cancel := context.WithTimeout(v.life, cfg.ProbeTimeout)
	defer cancel()
	r := v.client.Probe(ctx, rcpt, v.gate(cfg.MaxProbesPerHost))
	// Counted once its result is cached: whoever sees the count sees the
	// result too.
	defer v.m.probed(r.Took)
	hop := v.client.Destination(rcpt)
	if !r.AtRcpt || r.Reply.Code < 200 || (r.Reply.Code >= 300 && r.Reply.Code < 500) {
		v.trbl.failed(hop, r, v.now())
		v.log.Info("recipient not verified: the next hop could not be asked", "rcpt", rcpt, "next_hop", hop, "host", r.Host,
			"code", r.Reply.Code, "status", r.Reply.Enhanced, "reply", r.Reply.Text)
		return Result{Status: TempFail, Reply: fmt.Sprintf("%d %s %s", r.Reply.Code, r.Reply.Enhanced, r.Reply.Text)}
	}
	v.trbl.answered(hop)
	found := r.Reply.Code < 300
	if err := v.cache.Load().put(v.life, key, found, r.Reply.Text, v.now()); err != nil {
		v.log.Warn("recipient verification: result not cached", "rcpt", rcpt, "err", err)
	}
	if found {
		return Result{Status: Exists, Reply: r.Reply.Text}
	}
	return Result{Status: Unknown, Reply: r.Reply.Text}
}

// gate bounds the probes at once to one next-hop address to max; a probe
// waits for a slot within its timeout.
func (v *Verifier) gate(max int) delivery.Gate {
	return func(ctx context.Context, addr string) (func(), error) {
		v.mu.Lock()
		slot, ok := v.slots[addr]
		if !ok || cap(slot) != max {
			// A new bound takes effect for the probes that start now;
			// those running give their slot back to the one they took.
			slot = make(chan struct{}, max)
			v.slots[addr] = slot
		}
		v.mu.Unlock()
		select {
		case slot <- struct{}{}:
			return func() { <-slot }, nil
		default:
		}
		v.setWaiting(1)
		defer v.setWaiting(-1)
		select {
		case slot <- struct{}{}:
			return func() { <-slot }, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%d probes already run: %w", max, context.Cause(ctx))
		}
	}
}

func (v *Verifier) setWaiting(d int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.waiting += d
}

// Stats are the Verifier's counts since Open.
type Stats struct {
	// Lookups by what they found: from the cache (CacheGood, CacheBad),
	// by a probe, their own or shared (ProbeGood, ProbeBad), or nothing
	// (TempFail).
	CacheGood, CacheBad, ProbeGood, ProbeBad, TempFail uint64
	// Probes counts the probes made (callouts to a next hop), each once
	// its result is cached.
	Probes uint64
	// Asking is the lookups waiting for a probe now, Waiting the probes
	// waiting for a slot; Entries the results cached.
	Asking  int64
	Waiting int
	Entries int64
}

// Stats returns the Verifier's counts.
func (v *Verifier) Stats() Stats {
	s := v.m.stats()
	v.mu.Lock()
	s.Waiting = v.waiting
	v.mu.Unlock()
	s.Entries = v.cache.Load().len()
	s.Asking = v.asking.Load()
	return s
}

// Problems names the next hops whose probes keep failing, and a cache that
// cannot be opened, for the sensor's status.
func (v *Verifier) Problems() []string {
	out := v.trbl.problems(v.now())
	if err := v.cacheErr.Load(); err != nil {
		out = append(out, fmt.Sprintf("WARNING: recipient verification: its cache in %s cannot be opened (%v): every recipient is probed and none remembered; trying again every minute", v.dir, *err))
	}
	return out
}

// cacheKey is the cache's key of a recipient.
func cacheKey(rcpt string) string { return strings.ToLower(rcpt) }
