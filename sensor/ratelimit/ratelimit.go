// Package ratelimit bounds what one client may do on a gateway's listeners:
// connections, messages (MAIL) and recipients (RCPT) per minute, as
// Postfix's anvil(8) and its smtpd_client_*_rate_limit settings do, and the
// directory-harvest guard of Symantec Messaging Gateway: a client that
// names too many recipients that do not exist within a window is deferred
// for a while, its connections refused.
//
// # Design
//
// One Limiter serves every listener of a sensor, so a client is counted
// once whichever of them it reaches. Clients are counted by address, an
// IPv6 client by its /64: a host is given a /64 and can take any address
// in it, so counting it per /128 would let it step around every limit.
//
// Each count is a sliding window estimated from two fixed windows, the
// current one and the one before, weighted by how much of the one before
// still overlaps the sliding window (the estimate Cloudflare published for
// its rate limits): two integers a count, where a log of every event
// would grow with the limit. As with anvil, every attempt counts, the
// refused ones too ("regardless of whether or not Postfix actually accepts
// those recipients", postconf(5) on smtpd_client_recipient_rate_limit): a
// client that goes on hammering stays refused until it slows down.
//
// Memory is bounded: a client whose windows have all gone quiet is
// dropped by Run's sweep, and at most Options.MaxClients are kept. A new
// client past that bound takes the place of one found idle among a few
// looked at, or else of any of them not blocked by the harvest guard (when
// every client kept is blocked, the new one is counted for its one event
// only), so a flood from many addresses costs bounded memory and at worst
// forgets the counts of some clients, never a block.
//
// The Limiter only counts and says yes or no; which clients it applies to
// (not the gateway's outbound list) and what a refusal answers is the SMTP
// server's business (package smtpd).
package ratelimit

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Window is the length of the per-minute limits' window (Postfix's
// anvil_rate_time_unit).
const Window = time.Minute

// DefaultMaxClients is Options.MaxClients when it is zero.
const DefaultMaxClients = 100000

// evictScan bounds the clients looked at to make room for a new one.
const evictScan = 16

// Config is an applied configuration. Zero limits mean no limit; a zero
// HarvestUnknown turns the harvest guard off.
type Config struct {
	ConnectionsPerMinute int
	MessagesPerMinute    int
	RecipientsPerMinute  int
	// HarvestUnknown unknown recipients within HarvestWindow block a
	// client for HarvestBlock.
	HarvestUnknown int
	HarvestWindow  time.Duration
	HarvestBlock   time.Duration
}

// ConfigFrom translates a gateway's rate limits, defaults applied.
func ConfigFrom(l *ospreyv1.RateLimits) Config {
	l = validate.RateLimits(l)
	return Config{
		ConnectionsPerMinute: int(l.GetConnectionsPerMinute()),
		MessagesPerMinute:    int(l.GetMessagesPerMinute()),
		RecipientsPerMinute:  int(l.GetRecipientsPerMinute()),
		HarvestUnknown:       int(l.GetHarvestUnknownRecipients()),
		HarvestWindow:        time.Duration(l.GetHarvestWindowSeconds()) * time.Second,
		HarvestBlock:         time.Duration(l.GetHarvestBlockSeconds()) * time.Second,
	}
}

// Options configure a Limiter.
type Options struct {
	// Now is the clock of every window and block; nil means time.Now.
	Now func() time.Time
	// MaxClients bounds the clients counted at once; 0 means
	// DefaultMaxClients.
	MaxClients int
	// Registerer, when set, gets the Limiter's metrics.
	Registerer prometheus.Registerer
}

// Verdict is what the Limiter says of a connection.
type Verdict int

const (
	// Allowed: the client may connect.
	Allowed Verdict = iota
	// RateLimited: the client is over connections_per_minute.
	RateLimited
	// Blocked: the harvest guard defers the client.
	Blocked
)

// Limiter counts what clients do. It is safe for concurrent use; every
// method but Run returns at once.
type Limiter struct {
	now  func() time.Time
	max  int
	cfg  atomic.Pointer[Config]
	mu   sync.Mutex
	cl   map[netip.Prefix]*client
	hits atomic.Uint64 // clients the harvest guard blocked
}

// client is what is counted of one client.
type client struct {
	conns, msgs, rcpts, unknown window
	blockedUntil                time.Time
	seen                        time.Time // its last event
}

// New returns a Limiter that limits nothing until Apply.
func New(opts Options) *Limiter {
	l := &Limiter{now: opts.Now, max: opts.MaxClients, cl: map[netip.Prefix]*client{}}
	if l.now == nil {
		l.now = time.Now
	}
	if l.max <= 0 {
		l.max = DefaultMaxClients
	}
	l.cfg.Store(&Config{})
	if opts.Registerer != nil {
		// A second Limiter on one registry (tests) keeps the first's.
		_ = opts.Registerer.Register(collector{l})
	}
	return l
}

// Apply hands over a configuration; it applies to the next event. Counts
// and blocks are kept.
func (l *Limiter) Apply(cfg Config) { l.cfg.Store(&cfg) }

// Run drops the clients gone quiet, once a minute, until ctx ends.
func (l *Limiter) Run(ctx context.Context) error {
	t := time.NewTicker(Window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.Sweep()
		}
	}
}

// Sweep drops the clients whose windows have all gone quiet and who are
// not blocked.
func (l *Limiter) Sweep() {
	now, cfg := l.now(), l.cfg.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.cl {
		if c.idle(now, cfg) {
			delete(l.cl, k)
		}
	}
}

// Connect counts a connection of ip and says whether it may go on: not
// while the harvest guard blocks ip, nor past connections_per_minute.
func (l *Limiter) Connect(ip netip.Addr) Verdict {
	cfg := l.cfg.Load()
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(ip, now, cfg)
	if now.Before(c.blockedUntil) {
		return Blocked
	}
	if !c.conns.allow(now, Window, cfg.ConnectionsPerMinute) {
		return RateLimited
	}
	return Allowed
}

// Message counts a message (a MAIL command) of ip and reports whether it
// is within messages_per_minute.
func (l *Limiter) Message(ip netip.Addr) bool {
	return l.count(ip, func(c *client, now time.Time, cfg *Config) bool {
		return c.msgs.allow(now, Window, cfg.MessagesPerMinute)
	})
}

// Recipient counts a recipient (a RCPT command) of ip and reports whether
// it is within recipients_per_minute.
func (l *Limiter) Recipient(ip netip.Addr) bool {
	return l.count(ip, func(c *client, now time.Time, cfg *Config) bool {
		return c.rcpts.allow(now, Window, cfg.RecipientsPerMinute)
	})
}

// Unknown counts a recipient of ip that does not exist, and reports
// whether the harvest guard now blocks ip: the one that makes
// harvest_unknown_recipients within the window blocks it for the block
// time, and its count starts again.
func (l *Limiter) Unknown(ip netip.Addr) bool {
	blocked := false
	l.count(ip, func(c *client, now time.Time, cfg *Config) bool {
		if cfg.HarvestUnknown <= 0 || now.Before(c.blockedUntil) {
			return true
		}
		c.unknown.add(now, cfg.HarvestWindow)
		if c.unknown.estimate(now, cfg.HarvestWindow) >= float64(cfg.HarvestUnknown) {
			c.blockedUntil = now.Add(cfg.HarvestBlock)
			c.unknown = window{}
			blocked = true
			l.hits.Add(1)
		}
		return true
	})
	return blocked
}

// Blocked reports whether the harvest guard blocks ip, and until when.
func (l *Limiter) Blocked(ip netip.Addr) (time.Time, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.cl[key(ip)]
	if !ok || !now.Before(c.blockedUntil) {
		return time.Time{}, false
	}
	return c.blockedUntil, true
}

// Stats are the Limiter's counts.
type Stats struct {
	// Clients are the clients counted now, Blocked those the harvest guard
	// blocks now.
	Clients, Blocked int
	// Blocks counts the clients the harvest guard blocked since New.
	Blocks uint64
}

// Stats returns the Limiter's counts.
func (l *Limiter) Stats() Stats {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Clients: len(l.cl), Blocks: l.hits.Load()}
	for _, c := range l.cl {
		if now.Before(c.blockedUntil) {
			s.Blocked++
		}
	}
	return s
}

// count runs f on ip's counts, under the lock.
func (l *Limiter) count(ip netip.Addr, f func(c *client, now time.Time, cfg *Config) bool) bool {
	cfg := l.cfg.Load()
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return f(l.client(ip, now, cfg), now, cfg)
}

// client returns ip's counts, made room for when new. l.mu is held.
func (l *Limiter) client(ip netip.Addr, now time.Time, cfg *Config) *client {
	k := key(ip)
	c, ok := l.cl[k]
	if !ok {
		c = &client{}
		if len(l.cl) < l.max || l.evict(now, cfg) {
			l.cl[k] = c
		}
		// Otherwise every client kept is blocked: this one is counted
		// for this event only.
	}
	c.seen = now
	return c
}

// evict drops one client to make room: the first idle one among a few
// (Go's map iteration starts at random), or else the first not blocked.
// It reports whether it found one. l.mu is held.
func (l *Limiter) evict(now time.Time, cfg *Config) bool {
	var victim netip.Prefix
	found, n := false, 0
	for k, c := range l.cl {
		if c.idle(now, cfg) {
			victim, found = k, true
			break
		}
		if !found && !now.Before(c.blockedUntil) {
			victim, found = k, true
		}
		if n++; n == evictScan && found {
			break
		}
	}
	if found {
		delete(l.cl, victim)
	}
	return found
}

// idle reports whether c's windows have all gone quiet and it is not
// blocked: forgetting it changes no decision.
func (c *client) idle(now time.Time, cfg *Config) bool {
	quiet := 2 * max(Window, cfg.HarvestWindow)
	return now.Sub(c.seen) >= quiet && !now.Before(c.blockedUntil)
}

// key is what a client is counted under: its IPv4 address, or the /64 of
// its IPv6 address.
func key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil { // an invalid address: counted as one client
		return netip.Prefix{}
	}
	return p
}

// window counts events in a sliding window of a given length, estimated
// from two fixed windows: the events of the current one, and those of the
// one before weighted by how much of it the sliding window still covers.
type window struct {
	start     time.Time // when the current fixed window began
	cur, prev int
}

// roll moves the fixed windows up to now.
func (w *window) roll(now time.Time, length time.Duration) {
	switch d := now.Sub(w.start); {
	case w.start.IsZero() || d >= 2*length || d < 0:
		w.start, w.cur, w.prev = now, 0, 0
	case d >= length:
		w.start, w.prev, w.cur = w.start.Add(length), w.cur, 0
	}
}

func (w *window) add(now time.Time, length time.Duration) {
	w.roll(now, length)
	w.cur++
}

// estimate is the number of events in the sliding window that ends now.
func (w *window) estimate(now time.Time, length time.Duration) float64 {
	w.roll(now, length)
	overlap := 1 - float64(now.Sub(w.start))/float64(length)
	return float64(w.prev)*overlap + float64(w.cur)
}

// allow counts an event and reports whether the window holds at most
// limit events with it; a limit of 0 or less allows everything.
func (w *window) allow(now time.Time, length time.Duration, limit int) bool {
	if limit <= 0 {
		return true
	}
	w.add(now, length)
	return w.estimate(now, length) <= float64(limit)
}

// collector exports the Limiter's counts.
type collector struct{ l *Limiter }

var (
	clientsDesc = prometheus.NewDesc("osprey_ratelimit_clients",
		"Clients the gateway's rate limits count now (an IPv6 client per /64).", nil, nil)
	blockedDesc = prometheus.NewDesc("osprey_ratelimit_blocked_clients",
		"Clients the harvest guard defers now.", nil, nil)
	blocksDesc = prometheus.NewDesc("osprey_ratelimit_harvest_blocks_total",
		"Clients the harvest guard blocked for naming too many unknown recipients.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientsDesc
	ch <- blockedDesc
	ch <- blocksDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(clientsDesc, prometheus.GaugeValue, float64(s.Clients))
	ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.GaugeValue, float64(s.Blocked))
	ch <- prometheus.MustNewConstMetric(blocksDesc, prometheus.CounterValue, float64(s.Blocks))
}
