package smtpauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// maxCached bounds the entries of the cache; past it the expired ones go
// first, then any.
const maxCached = 10000

// digest is the HMAC of a name and a password.
type digest [sha256.Size]byte

// cache remembers the successful checks, by the digest of their name and
// password, until their expiry.
type cache struct {
	mu   sync.Mutex
	mac  hash.Hash // HMAC-SHA256 under a key of this process; guarded by mu
	seen map[digest]time.Time
}

func newCache() *cache {
	key := make([]byte, sha256.Size)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24)
	return &cache{mac: hmac.New(sha256.New, key), seen: make(map[digest]time.Time)}
}

// sum returns the digest of user and password. The name's length comes
// first, so that no two pairs make the same input. c.mu is held.
func (c *cache) sum(user, password string) digest {
	c.mac.Reset()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	c.mac.Write(n[:])
	c.mac.Write([]byte(user))
	c.mac.Write([]byte(password))
	var d digest
	c.mac.Sum(d[:0])
	return d
}

// hit reports whether user and password were found good less than their
// time to live ago.
func (c *cache) hit(user, password string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.sum(user, password)
	exp, ok := c.seen[d]
	if ok && !now.Before(exp) {
		delete(c.seen, d)
		return false
	}
	return ok
}

// add remembers user and password until exp.
func (c *cache) add(user, password string, exp time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.sum(user, password)
	if _, ok := c.seen[d]; !ok && len(c.seen) >= maxCached {
		c.sweepLocked(now)
		for k := range c.seen {
			if len(c.seen) < maxCached {
				break
			}
			delete(c.seen, k)
		}
	}
	c.seen[d] = exp
}

// forget drops every entry: the source changed.
func (c *cache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.seen)
}

// sweep drops the expired entries.
func (c *cache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
}

func (c *cache) sweepLocked(now time.Time) {
	for k, exp := range c.seen {
		if !now.Before(exp) {
			delete(c.seen, k)
		}
	}
}
