package smtpauth

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxTracked bounds the clients, and the user names, the throttle counts
// failures of; past it the windows that ended go first, then any. A flood
// from more addresses than this can make the throttle forget some of
// them, never grow without bound; the per-name limit still holds for the
// names it keeps.
const maxTracked = 100000

// window counts the failures since start.
type window struct {
	start time.Time
	n     int
}

// throttle counts failed checks per client and per user name.
type throttle struct {
	mu      sync.Mutex
	clients map[netip.Prefix]*window
	users   map[string]*window
}

func newThrottle() *throttle {
	return &throttle{clients: make(map[netip.Prefix]*window), users: make(map[string]*window)}
}

// limits are the throttle's settings.
type limits struct {
	perClient, perUser int
	window             time.Duration
}

// clientKey is what a client's failures are counted under: its address,
// or for IPv6 its /64, which one host (one customer of a provider) holds
// whole and can take any address of.
func clientKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}

// userKey is what a name's failures are counted under: directories
// compare names without case, and so does the throttle.
func userKey(user string) string { return strings.ToLower(user) }

// blocked returns nil, or why the client or the user name may not try
// now: it has had its limit of failures in a window that has not ended.
func (t *throttle) blocked(ip netip.Addr, user string, l limits, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.clients[clientKey(ip)]; over(w, l.perClient, l.window, now) {
		return &throttledError{who: "client " + clientKey(ip).String(), limit: l.perClient, window: l.window, until: w.start.Add(l.window)}
	}
	if w := t.users[userKey(user)]; over(w, l.perUser, l.window, now) {
		return &throttledError{who: "user name", limit: l.perUser, window: l.window, until: w.start.Add(l.window)}
	}
	return nil
}

// throttledError says who is throttled, and until when; it is ErrThrottled.
type throttledError struct {
	who    string
	limit  int
	window time.Duration
	until  time.Time
}

func (e *throttledError) Error() string {
	return fmt.Sprintf("%v: the %s failed %d times within %v; AUTH refused until %s",
		ErrThrottled, e.who, e.limit, e.window, e.until.UTC().Format(time.RFC3339))
}

func (e *throttledError) Unwrap() error { return ErrThrottled }

func over(w *window, limit int, d time.Duration, now time.Time) bool {
	return w != nil && w.n >= limit && now.Before(w.start.Add(d))
}

// fail counts a failed check of user from ip.
func (t *throttle) fail(ip netip.Addr, user string, l limits, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	count(t.clients, clientKey(ip), l.window, now)
	count(t.users, userKey(user), l.window, now)
}

// succeed forgets the failures of user: whoever knows the password is
// not guessing it. The client's failures stay: one good account must not
// let a client go on guessing others.
func (t *throttle) succeed(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.users, userKey(user))
}

func count[K comparable](m map[K]*window, k K, d time.Duration, now time.Time) {
	w := m[k]
	switch {
	case w != nil && now.Before(w.start.Add(d)):
		w.n++
		return
	case w != nil:
		w.start, w.n = now, 1
		return
	}
	if len(m) >= maxTracked {
		sweep(m, d, now)
		for k := range m {
			if len(m) < maxTracked {
				break
			}
			delete(m, k)
		}
	}
	m[k] = &window{start: now, n: 1}
}

// sweep drops the windows that ended.
func (t *throttle) sweep(d time.Duration, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sweep(t.clients, d, now)
	sweep(t.users, d, now)
}

func sweep[K comparable](m map[K]*window, d time.Duration, now time.Time) {
	for k, w := range m {
		if !now.Before(w.start.Add(d)) {
			delete(m, k)
		}
	}
}
