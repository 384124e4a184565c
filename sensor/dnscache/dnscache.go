// Package dnscache is the sensor's caching DNS stub resolver: it asks
// recursive servers (the sensor's --dns-server, or the nameservers of
// /etc/resolv.conf) with github.com/miekg/dns, keeps what they answer for
// the answer's TTL in a cache bounded in entries, and answers with the
// methods and errors of *net.Resolver (*net.DNSError with IsNotFound,
// IsTimeout or IsTemporary), which is what the SPF, DKIM and DMARC
// libraries and the gateway's delivery client expect.
//
// # Design
//
// Sender authentication asks the same few names for most messages (a
// sender domain's SPF record and its includes, a DKIM key, a DMARC
// record), so answers are cached. They are cached for their TTL, which
// only a resolver that reads the DNS messages knows: net.Resolver hides
// it, and a cache of fixed lifetime on top of it keeps a rotated DKIM key
// or a changed SPF record too long, or asks a 1-day record again every
// minute. Hence miekg/dns against the configured servers. TTLs are capped
// by Options.MaxTTL; a negative answer (NXDOMAIN, or a name without
// records of the type) is kept for the SOA's negative TTL (RFC 2308), and
// not at all without an SOA; a server failure or a timeout is kept for
// Options.FailureTTL, as RFC 2308 §7 allows, so that a DNS outage does not
// make every message wait out the timeout for the same name.
//
// Concurrent lookups of one name and type share one query (singleflight).
// The shared query is bounded by Options.Timeout, not by any caller's
// context; each caller waits for it only as long as its own context lets
// it (a message's time budget), and an answer that comes later is still
// cached. A query tries the servers in turn, each attempt bounded by
// Options.AttemptTimeout, until one answers or Timeout runs out; UDP
// first (EDNS0, 1232 bytes), TCP when the answer is truncated. A reply
// whose question is not the one asked is ignored.
package dnscache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Defaults of Options.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultAttemptTimeout = time.Second
	DefaultMaxEntries     = 10000
	DefaultMaxTTL         = time.Hour
	DefaultFailureTTL     = 5 * time.Second
	// ResolvConf is where the servers come from when Options.Servers is
	// empty.
	ResolvConf = "/etc/resolv.conf"
)

// Options configure a Resolver.
type Options struct {
	// Servers are the recursive servers asked, as host:port (a host
	// without a port means port 53), in order. Empty means the
	// nameservers of ResolvConf.
	Servers []string
	// Timeout bounds one query, all its attempts; 0 means DefaultTimeout.
	Timeout time.Duration
	// AttemptTimeout bounds one attempt at one server; 0 means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxEntries bounds the cache, the least recently used entry going
	// first; 0 means DefaultMaxEntries.
	MaxEntries int
	// MaxTTL caps how long an answer is cached; 0 means DefaultMaxTTL.
	MaxTTL time.Duration
	// FailureTTL is how long a server failure or a timeout is cached; 0
	// means DefaultFailureTTL, a negative value not at all.
	FailureTTL time.Duration
	// Now is the cache's clock; nil means time.Now.
	Now func() time.Time
}

// Resolver is a caching stub resolver. Its methods are safe for
// concurrent use.
type Resolver struct {
	servers []string
	opts    Options
	now     func() time.Time
	udp     *dns.Client
	tcp     *dns.Client
	flights singleflight.Group
	base    context.Context // of every query; cancelled by Close
	stop    context.CancelFunc
	running sync.WaitGroup // the queries under way

	mu      sync.Mutex
	closed  bool
	entries map[string]*list.Element // of *entry
	lru     list.List                // most recently used first
	stats   Stats
}

// Stats count the lookups a Resolver answered.
type Stats struct {
	// Hits were answered from the cache, Misses asked a server.
	Hits, Misses uint64
	// Entries is the cache's size now.
	Entries int
	// Failures are the questions no server answered (a timeout, a
	// refusal, SERVFAIL); LastFailure is when the last was, LastError
	// what it was, LastAnswer when a server last answered.
	Failures    uint64
	LastFailure time.Time
	LastError   string
	LastAnswer  time.Time
}

// entry is a cached answer: the records of the type asked (a CNAME chain
// left out), or the error a lookup returns.
type entry struct {
	key     string
	expires time.Time
	rrs     []dns.RR
	err     *net.DNSError
}

// New returns a resolver; it fails when no server is given and none can
// be read from ResolvConf, or when a server is not host:port.
func New(opts Options) (*Resolver, error) {
	servers := opts.Servers
	if len(servers) == 0 {
		cc, err := dns.ClientConfigFromFile(ResolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns servers: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns servers: none in %s", ResolvConf)
		}
	}
	var norm []string
	for _, s := range servers {
		a, err := ServerAddr(s)
		if err != nil {
			return nil, err
		}
		norm = append(norm, a)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.FailureTTL == 0 {
		opts.FailureTTL = DefaultFailureTTL
	}
	r := &Resolver{
		servers: norm,
		opts:    opts,
		now:     opts.Now,
		udp:     &dns.Client{Net: "udp", UDPSize: udpSize},
		tcp:     &dns.Client{Net: "tcp"},
		entries: map[string]*list.Element{},
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.base, r.stop = context.WithCancel(context.Background())
	return r, nil
}

// Close ends the queries under way, and waits for them; lookups fail from
// then on.
func (r *Resolver) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.running.Wait()
}

// ServerAddr checks a DNS server's address, host:port or a bare IP
// address (port 53), and returns it as host:port.
func ServerAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("dns server %q: want host:port or an IP address", s)
	}
	return s, nil
}

// Servers returns the servers the resolver asks, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Entries = len(r.entries)
	return s
}

// udpSize is the EDNS0 buffer size advertised (the DNS flag day 2020 value).
const udpSize = 1232

// LookupTXT returns the TXT records of name, the strings of each record
// joined, as net.Resolver does.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records of name, host names absolute (with the
// final dot), in the order the server gave.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the IPv4 and IPv6 addresses of host (host itself
// when it is an address). It fails only when neither family has one: with
// IsNotFound when neither exists, and otherwise with the failure.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []net.IPAddr{{IP: a.AsSlice(), Zone: a.Zone()}}, nil
	}
	type res struct {
		rrs []dns.RR
		err error
	}
	aaaa := make(chan res, 1)
	go func() {
		rrs, err := r.lookup(ctx, host, dns.TypeAAAA)
		aaaa <- res{rrs, err}
	}()
	rrs4, err4 := r.lookup(ctx, host, dns.TypeA)
	six := <-aaaa
	var out []net.IPAddr
	for _, rr := range rrs4 {
		out = append(out, net.IPAddr{IP: rr.(*dns.A).A})
	}
	for _, rr := range six.rrs {
		out = append(out, net.IPAddr{IP: rr.(*dns.AAAA).AAAA})
	}
	if len(out) > 0 {
		return out, nil
	}
	if err4 != nil && !isNotFound(err4) {
		return nil, err4
	}
	if six.err != nil && !isNotFound(six.err) {
		return nil, six.err
	}
	return nil, notFound(host)
}

// LookupAddr returns the names of an address (its PTR records).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rrs, err := r.lookup(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func notFound(name string) *net.DNSError {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// lookup returns the records of type qtype of name, from the cache or a
// query. Its error is a *net.DNSError, not wrapped (the libraries that use
// the resolver assert the type).
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || fqdn == "." || len(fqdn) > 254 {
		return nil, notFound(name)
	}
	key := dns.TypeToString[qtype] + " " + fqdn
	if e, ok := r.cached(key); ok {
		return answer(e, name)
	}
	ch := r.flights.DoChan(key, func() (any, error) {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return &entry{key: key, err: &net.DNSError{Err: "resolver closed", IsTemporary: true}}, nil
		}
		r.running.Add(1)
		r.mu.Unlock()
		defer r.running.Done()
		e := r.query(fqdn, qtype)
		r.store(e)
		return e, nil
	})
	select {
	case res := <-ch:
		return answer(res.Val.(*entry), name)
	case <-ctx.Done():
		return nil, &net.DNSError{Err: "lookup abandoned: " + context.Cause(ctx).Error(), Name: name, IsTimeout: true}
	}
}

// answer returns an entry's records, or its error naming name.
func answer(e *entry, name string) ([]dns.RR, error) {
	if e.err != nil {
		err := *e.err
		err.Name = name
		return nil, &err
	}
	return e.rrs, nil
}

// cached returns the live cache entry of key.
func (r *Resolver) cached(key string) (*entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.entries[key]
	if !ok {
		r.stats.Misses++
		return nil, false
	}
	e := el.Value.(*entry)
	if !r.now().Before(e.expires) {
		r.lru.Remove(el)
		delete(r.entries, key)
		r.stats.Misses++
		return nil, false
	}
	r.lru.MoveToFront(el)
	r.stats.Hits++
	return e, true
}

// store caches e until its expiry, when it has one.
func (r *Resolver) store(e *entry) {
	if e.expires.IsZero() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[e.key]; ok {
		el.Value = e
		r.lru.MoveToFront(el)
		return
	}
	r.entries[e.key] = r.lru.PushFront(e)
	for len(r.entries) > r.opts.MaxEntries {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.entries, old.Value.(*entry).key)
	}
}

// query asks the servers in turn until one answers or the query's time is
// up, and returns what to cache (expires zero: not to be cached).
func (r *Resolver) query(fqdn string, qtype uint16) *entry {
	key := dns.TypeToString[qtype] + " " + fqdn
	start := r.now()
	deadline := time.Now().Add(r.opts.Timeout)
	fail := func(de *net.DNSError) *entry {
		r.mu.Lock()
		r.stats.Failures++
		r.stats.LastFailure, r.stats.LastError = r.now(), de.Error()
		r.mu.Unlock()
		e := &entry{key: key, err: de}
		if r.opts.FailureTTL > 0 {
			e.expires = start.Add(r.opts.FailureTTL)
		}
		return e
	}
	// lastErr is the failure to report when no server answers: a timeout
	// unless a server said it failed.
	lastErr := &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	// Three rounds at most: a server that refuses at once (ICMP port
	// unreachable) must not be asked in a loop until the deadline.
	for i := 0; i < 3*len(r.servers) && time.Until(deadline) > 0 && r.base.Err() == nil; i++ {
		server := r.servers[i%len(r.servers)]
		until := time.Now().Add(r.opts.AttemptTimeout)
		if deadline.Before(until) {
			until = deadline
		}
		resp, err := r.exchange(fqdn, qtype, server, until)
		if err != nil {
			lastErr = &net.DNSError{Err: err.Error(), Server: server, IsTimeout: isTimeout(err), IsTemporary: true}
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			r.mu.Lock()
			r.stats.LastAnswer = r.now()
			r.mu.Unlock()
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			var rrs []dns.RR
			ttl := r.opts.MaxTTL
			for _, rr := range resp.Answer {
				ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
				if rr.Header().Rrtype == qtype {
					rrs = append(rrs, rr)
				}
			}
			if len(rrs) == 0 {
				return r.negative(key, resp, start, server)
			}
			e := &entry{key: key, rrs: rrs}
			if ttl > 0 {
				e.expires = start.Add(ttl)
			}
			return e
		case dns.RcodeNameError:
			return r.negative(key, resp, start, server)
		default:
			lastErr = &net.DNSError{Err: "server misbehaving: " + dns.RcodeToString[resp.Rcode], Server: server, IsTemporary: true}
		}
	}
	return fail(lastErr)
}

// negative is the entry of an answer without records: kept for the
// negative TTL of the SOA in its authority section (RFC 2308 §5), not at
// all without one.
func (r *Resolver) negative(key string, resp *dns.Msg, start time.Time, server string) *entry {
	e := &entry{key: key, err: &net.DNSError{Err: "no such host", Server: server, IsNotFound: true}}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			if ttl := min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, r.opts.MaxTTL); ttl > 0 {
				e.expires = start.Add(ttl)
			}
			break
		}
	}
	return e
}

// exchange sends one query to server: over UDP, and again over TCP when
// the answer is truncated.
func (r *Resolver) exchange(fqdn string, qtype uint16, server string, deadline time.Time) (*dns.Msg, error) {
	ctx, cancel := context.WithDeadline(r.base, deadline)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(udpSize, false)
	resp, _, err := r.udp.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || resp.Question[0].Qtype != qtype || !strings.EqualFold(resp.Question[0].Name, fqdn) {
		return nil, fmt.Errorf("answer to another question from %s", server)
	}
	return resp, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
