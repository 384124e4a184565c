package rcptverify

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ospreysec/osprey/sensor/delivery"
)

// When a next hop's failed probes are named in the status.
const (
	// troubleAfter failed probes in a row make a next hop's trouble.
	troubleAfter = 3
	// troubleFor is how long after its last failed probe a next hop that
	// nothing has probed since is still named.
	troubleFor = time.Hour
	// maxTroubled bounds the next hops named, and kept.
	maxTroubled = 5
	maxKept     = 100
)

// trouble follows the next hops whose probes fail: counted from the first
// failure, forgotten at the first answer.
type trouble struct {
	mu   sync.Mutex
	hops map[string]*hopTrouble // by next hop (delivery's destination)
}

type hopTrouble struct {
	fails       int
	since, last time.Time
	host, why   string
}

func (t *trouble) failed(hop string, r delivery.ProbeResult, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hops == nil {
		t.hops = map[string]*hopTrouble{}
	}
	h, ok := t.hops[hop]
	if !ok {
		if len(t.hops) >= maxKept {
			return
		}
		h = &hopTrouble{since: now}
		t.hops[hop] = h
	}
	h.fails++
	h.last = now
	h.host = r.Host
	h.why = fmt.Sprintf("%d %s %s", r.Reply.Code, r.Reply.Enhanced, r.Reply.Text)
}

func (t *trouble) answered(hop string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hops, hop)
}

// problems names the next hops in trouble at now, the most failures first.
func (t *trouble) problems(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	type named struct {
		hop string
		*hopTrouble
	}
	var hs []named
	for hop, h := range t.hops {
		switch {
		case now.Sub(h.last) > troubleFor:
			delete(t.hops, hop)
		case h.fails >= troubleAfter:
			hs = append(hs, named{hop, h})
		}
	}
	slices.SortFunc(hs, func(a, b named) int {
		if a.fails != b.fails {
			return b.fails - a.fails
		}
		return strings.Compare(a.hop, b.hop)
	})
	var out []string
	for i, h := range hs {
		if i == maxTroubled {
			out = append(out, fmt.Sprintf("WARNING: recipient verification: %d more next hops fail their probes", len(hs)-i))
			break
		}
		p := fmt.Sprintf("WARNING: recipient verification: next hop %s failed %d probes in a row since %s; last: %s",
			h.hop, h.fails, h.since.UTC().Format(time.RFC3339), h.why)
		if h.host != "" {
			p += " (from " + h.host + ")"
		}
		out = append(out, p+"; its recipients not in the cache get 450 until it answers")
	}
	return out
}
