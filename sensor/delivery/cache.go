package delivery

import (
	"context"
	"sync"
	"time"
)

// cache keeps idle sessions for reuse, as Postfix's scache(8) does for
// smtp(8): a burst of messages to one next hop pays for one TCP connection,
// one EHLO and one TLS handshake instead of one each. A session is cached
// only between two transactions (after a completed DATA, or after RSET),
// for at most idleTime, and not after maxAge since it was opened; at most
// maxIdle sessions wait in all, perKey per next hop. It caches only while
// Client.Run runs, which owns the sweeping.
type cache struct {
	mu      sync.Mutex
	idle    map[string][]*session // by key, most recently used last
	n       int
	running bool

	now      func() time.Time
	idleTime time.Duration
	maxAge   time.Duration
	maxIdle  int
	perKey   int
}

// get returns a cached session for key, or nil. Sessions found expired on
// the way are closed.
func (c *cache) get(key string) *session {
	var expired []*session
	defer func() {
		for _, s := range expired {
			s.quit()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for ss := c.idle[key]; len(ss) > 0; ss = c.idle[key] {
		s := ss[len(ss)-1]
		c.remove(key, len(ss)-1)
		if c.expired(s, now) {
			expired = append(expired, s)
			continue
		}
		return s
	}
	return nil
}

// put caches s and reports whether it did; when it did not, the caller
// closes s.
func (c *cache) put(s *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.running || c.n >= c.maxIdle || len(c.idle[s.key]) >= c.perKey || now.Sub(s.born) >= c.maxAge {
		return false
	}
	s.idle = now
	c.idle[s.key] = append(c.idle[s.key], s)
	c.n++
	return true
}

func (c *cache) expired(s *session, now time.Time) bool {
	return now.Sub(s.idle) >= c.idleTime || now.Sub(s.born) >= c.maxAge
}

// remove drops the i-th session of key; c.mu is held.
func (c *cache) remove(key string, i int) {
	ss := c.idle[key]
	ss = append(ss[:i], ss[i+1:]...)
	if len(ss) == 0 {
		delete(c.idle, key)
	} else {
		c.idle[key] = ss
	}
	c.n--
}

// take removes and returns the sessions expired at now, or all of them.
func (c *cache) take(all bool) []*session {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []*session
	for key, ss := range c.idle {
		for i := len(ss) - 1; i >= 0; i-- {
			if all || c.expired(ss[i], now) {
				out = append(out, ss[i])
				c.remove(key, i)
			}
		}
	}
	return out
}

// run sweeps expired sessions until ctx ends, then closes every cached
// session and caches no more.
func (c *cache) run(ctx context.Context) {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	t := time.NewTicker(max(c.idleTime/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.running = false
			c.mu.Unlock()
			for _, s := range c.take(true) {
				s.quit()
			}
			return
		case <-t.C:
			for _, s := range c.take(false) {
				s.quit()
			}
		}
	}
}

// size returns the number of idle sessions.
func (c *cache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
