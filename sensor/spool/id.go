package spool

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

// idLen is the length of an id: 16 bytes in hex.
const idLen = 32

// idGen makes message ids: the Unix time in nanoseconds, big endian, then
// 8 random bytes, in lower-case hex. The time part grows strictly within a
// process even when the clock steps back, so ids sort in the order they
// were made.
type idGen struct {
	mu   sync.Mutex
	last int64
}

// next returns a new id for a message that arrives at now.
func (g *idGen) next(now time.Time) string {
	n := now.UnixNano()
	g.mu.Lock()
	if n <= g.last {
		n = g.last + 1
	}
	g.last = n
	g.mu.Unlock()
	var b [idLen / 2]byte
	binary.BigEndian.PutUint64(b[:8], uint64(n))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// advance makes every later id sort after id, which Open found on disk.
func (g *idGen) advance(id string) {
	if !validID(id) {
		return
	}
	b, _ := hex.DecodeString(id[:16])
	n := int64(binary.BigEndian.Uint64(b))
	g.mu.Lock()
	g.last = max(g.last, n)
	g.mu.Unlock()
}

// validID reports whether id has the form of an id, which also keeps a
// caller's id from naming a file outside the spool.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IDTime returns when the message of id was spooled, as its id says (the
// clock of the process that spooled it, made to grow strictly); false when
// id is not a spool id.
func IDTime(id string) (time.Time, bool) {
	if !validID(id) {
		return time.Time{}, false
	}
	b, _ := hex.DecodeString(id[:16])
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), true
}
