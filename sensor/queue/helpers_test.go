package queue

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/sensor/delivery"
)

// clock is a settable clock for the queue's backoffs and lifetimes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testDeliverer routes by domain and answers each recipient by its local
// part: "ok…" 250, "temp…" 451, "perm…" 550, anything else 250; a
// destination in down fails as a connection refused would. It records
// every request, and can block deliveries until released.
type testDeliverer struct {
	mu       sync.Mutex
	reqs     []recorded
	down     map[string]bool
	inFlight map[string]int
	maxDest  map[string]int
	total    int
	maxTotal int
	gate     chan struct{} // when set, each delivery takes a token
	// routes, when it names a recipient, is its destination (a changed
	// configuration); otherwise its domain is.
	routes map[string]string
}

type recorded struct {
	delivery.Request
	body string
}

func newTestDeliverer() *testDeliverer {
	return &testDeliverer{down: map[string]bool{}, inFlight: map[string]int{}, maxDest: map[string]int{}, routes: map[string]string{}}
}

func (d *testDeliverer) Destination(rcpt string) string {
	d.mu.Lock()
	route, ok := d.routes[rcpt]
	d.mu.Unlock()
	if ok {
		return route
	}
	_, domain, _ := strings.Cut(rcpt, "@")
	return strings.ToLower(domain)
}

func (d *testDeliverer) Deliver(ctx context.Context, r delivery.Request) delivery.Result {
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	d.reqs = append(d.reqs, recorded{r, string(body)})
	d.inFlight[r.Destination]++
	d.maxDest[r.Destination] = max(d.maxDest[r.Destination], d.inFlight[r.Destination])
	d.total++
	d.maxTotal = max(d.maxTotal, d.total)
	gate, down := d.gate, d.down[r.Destination]
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inFlight[r.Destination]--
		d.total--
		d.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return failAll(r, 451, "4.4.2", "stopped")
		}
	}
	if down {
		return failAll(r, 451, "4.4.1", "connect to "+r.Destination+": connection refused")
	}
	res := delivery.Result{Host: "mx." + r.Destination + " [192.0.2.1]:25"}
	for _, rc := range r.Rcpts {
		rr := delivery.RcptResult{Rcpt: rc, Code: 250, Enhanced: "2.0.0", Text: "ok"}
		switch {
		case strings.HasPrefix(rc, "temp"):
			rr = delivery.RcptResult{Rcpt: rc, Code: 451, Enhanced: "4.2.0", Text: "try again later"}
		case strings.HasPrefix(rc, "perm"):
			rr = delivery.RcptResult{Rcpt: rc, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
		}
		res.Rcpts = append(res.Rcpts, rr)
	}
	return res
}

func failAll(r delivery.Request, code int, enh, text string) delivery.Result {
	var res delivery.Result
	for _, rc := range r.Rcpts {
		res.Rcpts = append(res.Rcpts, delivery.RcptResult{Rcpt: rc, Code: code, Enhanced: enh, Text: text})
	}
	return res
}

// requests returns the requests so far, those with a predicate only.
func (d *testDeliverer) requests(keep func(recorded) bool) []recorded {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []recorded
	for _, r := range d.reqs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func to(rcpt string) func(recorded) bool {
	return func(r recorded) bool {
		for _, rc := range r.Rcpts {
			if rc == rcpt {
				return true
			}
		}
		return false
	}
}

// harness is a queue on a temporary directory with a test deliverer and
// a settable clock, run until the test ends.
type harness struct {
	t     *testing.T
	dir   string
	q     *Queue
	d     *testDeliverer
	clock *clock
	reg   *prometheus.Registry
	mu    sync.Mutex
	atts  []Attempt
	stop  func()
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), d: newTestDeliverer(), clock: newClock()}
	h.open(cfg)
	return h
}

func (h *harness) open(cfg Config) {
	h.t.Helper()
	h.reg = prometheus.NewRegistry()
	q, err := Open(h.t.Context(), Options{
		Dir: h.dir, Deliverer: h.d, Now: h.clock.Now, Registerer: h.reg,
		OnAttempt: func(a Attempt) {
			h.mu.Lock()
			h.atts = append(h.atts, a)
			h.mu.Unlock()
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := q.Apply(cfg); err != nil {
		h.t.Fatal(err)
	}
	h.q = q
	h.t.Cleanup(func() { h.close() })
}

// run starts Run, stopped and waited for by close.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.q.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
}

func (h *harness) close() {
	if h.q == nil {
		return
	}
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
	h.checkCounts()
	if err := h.q.Close(); err != nil {
		h.t.Errorf("Close: %v", err)
	}
	h.q = nil
}

// advance moves the clock on and wakes the dispatcher.
func (h *harness) advance(d time.Duration) {
	h.clock.advance(d)
	h.q.kick()
}

var msgSeq struct {
	sync.Mutex
	n int
}

// enqueue adds a message from from to rcpts and returns its id.
func (h *harness) enqueue(from string, rcpts ...string) string {
	h.t.Helper()
	msgSeq.Lock()
	msgSeq.n++
	id := fmt.Sprintf("m%06d", msgSeq.n)
	msgSeq.Unlock()
	added, err := h.q.Enqueue(h.t.Context(), Message{
		ID: id, From: from, Rcpts: rcpts, Direction: Inbound, Verdict: "clean",
		Body: []byte("Subject: test " + id + "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nHello.\r\n"),
	})
	if err != nil || !added {
		h.t.Fatalf("Enqueue(%s): %v, %v", id, added, err)
	}
	return id
}

// get returns message id's entry, or false when it left the queue.
func (h *harness) get(id string) (Entry, bool) {
	h.t.Helper()
	e, err := h.q.Get(h.t.Context(), id)
	if err != nil {
		if strings.Contains(err.Error(), ErrNotFound.Error()) {
			return Entry{}, false
		}
		h.t.Fatal(err)
	}
	return e, true
}

func (h *harness) waitGone(id string) {
	h.t.Helper()
	testwait.For(h.t, id+" to leave the queue", func() bool { _, ok := h.get(id); return !ok })
}

// rcptState returns the state of rcpt in message id, "" when the message
// is gone.
func (h *harness) rcptState(id, rcpt string) (RcptEntry, bool) {
	h.t.Helper()
	e, ok := h.get(id)
	if !ok {
		return RcptEntry{}, false
	}
	for _, r := range e.Rcpts {
		if r.Rcpt == rcpt {
			return r, true
		}
	}
	h.t.Fatalf("%s has no recipient %s", id, rcpt)
	return RcptEntry{}, false
}

func (h *harness) waitState(id, rcpt string, want State, attempts int) RcptEntry {
	h.t.Helper()
	var r RcptEntry
	testwait.For(h.t, fmt.Sprintf("%s of %s to be %s after %d attempts", rcpt, id, want, attempts), func() bool {
		var ok bool
		r, ok = h.rcptState(id, rcpt)
		return ok && r.State == want && r.Attempts == attempts
	})
	return r
}

// checkCounts checks the depths the queue keeps against a count of its
// rows.
func (h *harness) checkCounts() {
	h.t.Helper()
	var want [numCounts]int64
	rows, err := h.q.db.Query("SELECT state, count(*) FROM rcpts GROUP BY state")
	if err != nil {
		h.t.Fatal(err)
	}
	for rows.Next() {
		var st int
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			h.t.Fatal(err)
		}
		want[st] = n
	}
	rows.Close()
	if err := h.q.db.QueryRow("SELECT count(*) FROM messages").Scan(&want[countMessages]); err != nil {
		h.t.Fatal(err)
	}
	var stored [numCounts]int64
	rows, err = h.q.db.Query("SELECT state, n FROM counts")
	if err != nil {
		h.t.Fatal(err)
	}
	for rows.Next() {
		var st int
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			h.t.Fatal(err)
		}
		stored[st] = n
	}
	rows.Close()
	h.q.countsMu.Lock()
	mem := h.q.counts
	h.q.countsMu.Unlock()
	if stored != want || mem != want {
		h.t.Errorf("counts: stored %v, in memory %v; the rows say %v", stored, mem, want)
	}
}
