package auth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Throttle limits password guessing, through the web UI's sign-in form and
// the API's HTTP Basic alike. Each failed sign-in takes a token from two buckets: one
// of the user name tried, one of the client's address. An attempt is refused,
// without checking the password, while either bucket is empty; the buckets
// refill slowly. Guessing one user's password from many addresses is bound by
// the name's bucket, spraying many names from one address by the address's.
// A success empties nothing and refills the name's bucket, so a user who
// mistyped a few times is not held back once in.
//
// The price is that someone who knows a user name can slow that user's
// sign-ins down to one a minute; the rates below keep that a nuisance.
type bucketRate struct {
	burst float64       // failures allowed in a row
	every time.Duration // one more allowed after each such interval
}

var (
	nameRate = bucketRate{burst: 5, every: time.Minute}
	addrRate = bucketRate{burst: 20, every: 10 * time.Second}
)

// maxBuckets bounds the throttle's memory; past it, full buckets are dropped
// and, if that is not enough, attempts from new keys are refused.
const maxBuckets = 20000

type bucket struct {
	tokens float64
	last   time.Time
}

// Throttle is the state of the buckets: one per node, shared by the UI and
// the API through the Authenticator. It is safe for concurrent use.
type Throttle struct {
	now func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

// NewThrottle returns a Throttle on the clock now (nil means time.Now).
func NewThrottle(now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{now: now, buckets: map[string]*bucket{}}
}

// keys returns the bucket keys and rates of an attempt.
func throttleKeys(name, addr string) ([2]string, [2]bucketRate) {
	return [2]string{"name:" + strings.ToLower(name), "addr:" + addr}, [2]bucketRate{nameRate, addrRate}
}

// level returns the tokens in key's bucket now.
func (t *Throttle) level(key string, rate bucketRate, now time.Time) float64 {
	b, ok := t.buckets[key]
	if !ok {
		return rate.burst
	}
	return min(rate.burst, b.tokens+float64(now.Sub(b.last))/float64(rate.every))
}

// Allow reports whether a sign-in as name from addr may be tried now.
func (t *Throttle) Allow(name, addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	keys, rates := throttleKeys(name, addr)
	for i, k := range keys {
		if t.level(k, rates[i], now) < 1 {
			return false
		}
	}
	return true
}

// Failed records a failed sign-in as name from addr.
func (t *Throttle) Failed(name, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweepLocked(now)
	keys, rates := throttleKeys(name, addr)
	for i, k := range keys {
		level := t.level(k, rates[i], now)
		if _, ok := t.buckets[k]; !ok && len(t.buckets) >= maxBuckets {
			continue // allow refuses nothing for lack of memory; the other key still counts
		}
		t.buckets[k] = &bucket{tokens: max(0, level-1), last: now}
	}
}

// Succeeded forgets the failures of name.
func (t *Throttle) Succeeded(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys, _ := throttleKeys(name, "")
	delete(t.buckets, keys[0])
}

// sweepLocked drops buckets that have refilled, at most once a minute.
func (t *Throttle) sweepLocked(now time.Time) {
	if now.Sub(t.lastSweep) < time.Minute {
		return
	}
	t.lastSweep = now
	for k := range t.buckets {
		rate := addrRate
		if strings.HasPrefix(k, "name:") {
			rate = nameRate
		}
		if t.level(k, rate, now) >= rate.burst {
			delete(t.buckets, k)
		}
	}
}

// ClientAddr is the address a sign-in is throttled by: the peer's IP, or its
// /64 for IPv6, where one host easily has many addresses. Headers such as
// X-Forwarded-For are not trusted: anyone can send them.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
