package queue

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ospreysec/osprey/sensor/delivery"
)

// The in-memory scheduler keeps the jobs due soon: a job is the
// recipients of one message that share a destination (one Request). The
// database's index on the next attempt is the rest of the queue, paged in
// by load. See the package's design note.

// maxWaiting bounds the jobs waiting in memory.
const maxWaiting = 10000

// loadBatch is the least room worth a load while jobs still wait.
const loadBatch = 1000

// lookahead is how far ahead load pages in jobs.
const lookahead = time.Minute

type jobKey struct{ msg, dest string }

type job struct {
	key   jobKey
	due   int64 // Unix µs
	d     *dest
	index int // in d.jobs; -1 while handed out
	// redue, when not 0, is when a write made the job due while it was
	// handed out (µs): its worker's finish may have read the rows before.
	redue int64
}

// dest is a destination's state: its waiting jobs, its concurrency, and
// its hold after failures to reach it.
type dest struct {
	name      string
	jobs      jobHeap
	inFlight  int
	limit     int // deliveries allowed at once, grows on success
	successes int // since limit last grew
	hold      int64
	failures  int // to reach it, in a row
	// reason is what the attempt that started the hold ended with: the
	// reply of the jobs pushed back while it lasts.
	reason delivery.RcptResult
	host   string
	index  int // in sched.ready; -1 when not there
	// deferrals counts the attempts in a row that delivered none of their
	// recipients and left some to try again, since deferringSince (µs);
	// lastDeferred is the last one's reply and deferredHost its host.
	deferrals      int
	deferringSince int64
	lastDeferred   delivery.RcptResult
	deferredHost   string
	lastDeferAt    int64
}

// cursor is a position in the index order (next_attempt, msg, dest):
// every schedulable recipient at or before it is in memory, in flight, or
// being written by someone who will schedule it.
type cursor struct {
	t         int64
	msg, dest string
}

// endOf is the cursor past every key at time t.
func endOf(t int64) cursor { return cursor{t, maxText, maxText} }

// maxText sorts after every id and destination (SQLite compares TEXT
// bytewise; U+10FFFF is the largest code point).
const maxText = "\U0010FFFF"

func (c cursor) less(o cursor) bool {
	if c.t != o.t {
		return c.t < o.t
	}
	if c.msg != o.msg {
		return c.msg < o.msg
	}
	return c.dest < o.dest
}

type sched struct {
	mu       sync.Mutex
	jobs     map[jobKey]*job
	byMsg    map[string][]*job
	dests    map[string]*dest
	ready    destHeap
	waiting  int
	inFlight int
	// inFlightDeferred counts the deferred recipients being tried: Stats
	// shows them active.
	inFlightDeferred int64
	cursor           cursor
	loading          bool
	lowered          *cursor // during a load
	pushback         []*job
	wake             chan struct{}
}

func (s *sched) init() {
	s.jobs = map[jobKey]*job{}
	s.byMsg = map[string][]*job{}
	s.dests = map[string]*dest{}
	s.cursor = cursor{t: math.MinInt64}
	s.wake = make(chan struct{}, 1)
}

// kick wakes the dispatcher.
func (q *Queue) kick() {
	select {
	case q.s.wake <- struct{}{}:
	default:
	}
}

// schedule makes job k due at due (µs) after a write made it so.
func (q *Queue) schedule(k jobKey, due int64) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	q.scheduleLocked(k, due)
}

func (q *Queue) scheduleLocked(k jobKey, due int64) {
	s := &q.s
	if j, ok := s.jobs[k]; ok {
		if j.index >= 0 && due < j.due {
			j.due = due
			heap.Fix(&j.d.jobs, j.index)
			s.fix(j.d)
			q.kick()
		}
		if j.index < 0 && s.inHand(j) && (j.redue == 0 || due < j.redue) {
			j.redue = due // for its worker's finish
		}
		return
	}
	c := cursor{due, k.msg, k.dest}
	if s.cursor.less(c) {
		// Load will find it, unless the load under way read before
		// this write: then it must read again from here.
		if s.loading {
			s.lower(endOf(due - 1))
		}
		return
	}
	if s.waiting >= maxWaiting {
		s.lower(endOf(due - 1))
		return
	}
	q.addLocked(k, due)
}

// lower moves the cursor back to c, so that load reads again from there.
func (s *sched) lower(c cursor) {
	if c.less(s.cursor) {
		s.cursor = c
	}
	if s.loading && (s.lowered == nil || c.less(*s.lowered)) {
		s.lowered = &c
	}
}

// addLocked puts a new job among the waiting ones, or among those to push
// back if its destination is held.
func (q *Queue) addLocked(k jobKey, due int64) {
	s := &q.s
	d := s.dests[k.dest]
	if d == nil {
		d = &dest{name: k.dest, index: -1, limit: min(InitialDestinationConcurrency, q.config().DestinationConcurrency)}
		s.dests[k.dest] = d
	}
	j := &job{key: k, due: due, d: d, index: -1}
	s.jobs[k] = j
	s.byMsg[k.msg] = append(s.byMsg[k.msg], j)
	if d.hold > due {
		s.pushback = append(s.pushback, j)
		q.kick()
		return
	}
	heap.Push(&d.jobs, j)
	s.waiting++
	s.fix(d)
	q.kick()
}

// forgetLocked removes a job that is not waiting.
func (s *sched) forgetLocked(j *job) {
	delete(s.jobs, j.key)
	js := s.byMsg[j.key.msg]
	for i, o := range js {
		if o == j {
			js = append(js[:i], js[i+1:]...)
			break
		}
	}
	if len(js) == 0 {
		delete(s.byMsg, j.key.msg)
	} else {
		s.byMsg[j.key.msg] = js
	}
}

// unschedule takes the waiting jobs of message id out of memory (it was
// held, quarantined or deleted); jobs in flight finish on their own.
func (q *Queue) unschedule(id string) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range append([]*job(nil), s.byMsg[id]...) {
		if j.index >= 0 {
			heap.Remove(&j.d.jobs, j.index)
			s.waiting--
			s.fix(j.d)
			s.forgetLocked(j)
		}
	}
}

// fix puts d in the ready heap, moves it, or takes it out, after its jobs,
// its hold or its deliveries under way changed.
func (s *sched) fix(d *dest) {
	eligible := d.jobs.Len() > 0 && d.inFlight < d.limit
	switch {
	case !eligible && d.index >= 0:
		heap.Remove(&s.ready, d.index)
	case !eligible:
	case d.index < 0:
		heap.Push(&s.ready, d)
	default:
		heap.Fix(&s.ready, d.index)
	}
}

// readyAt is when d's first job may go.
func (d *dest) readyAt() int64 { return max(d.jobs[0].due, d.hold) }

// take hands out the jobs that may go at now within the concurrency
// limits.
func (q *Queue) take(now int64, concurrency int) []*job {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*job
	for s.inFlight < concurrency && s.ready.Len() > 0 && s.ready[0].readyAt() <= now {
		d := s.ready[0]
		j := heap.Pop(&d.jobs).(*job)
		s.waiting--
		s.inFlight++
		d.inFlight++
		s.fix(d)
		out = append(out, j)
	}
	return out
}

// inHand reports whether j is handed out to a worker (rather than
// waiting to be pushed back).
func (s *sched) inHand(j *job) bool { return !slices.Contains(s.pushback, j) }

// finish ends a job handed out: it waits again at due (µs) if due > 0
// and it is within the cursor, or leaves memory.
func (q *Queue) finish(j *job, due int64) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.redue != 0 && (due == 0 || j.redue < due) {
		due = j.redue
	}
	s.inFlight--
	j.d.inFlight--
	s.forgetLocked(j)
	s.fix(j.d)
	if due > 0 {
		q.scheduleLocked(j.key, due)
	}
	s.gc(j.d, q.usNow(), q.config().MaxBackoff.Microseconds())
	q.kick()
}

// finishForce ends a job handed out whose rows stay due as they were
// (its outcome could not be read or stored): it waits in memory until due
// (µs), whatever the cursor, so that it is not lost behind it.
func (q *Queue) finishForce(j *job, due int64) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	j.d.inFlight--
	s.forgetLocked(j)
	s.fix(j.d)
	q.addLocked(j.key, due)
}

// gc forgets an idle destination, unless it failed lately: its failures
// in a row lengthen its next hold.
func (s *sched) gc(d *dest, now, keep int64) {
	if d.jobs.Len() == 0 && d.inFlight == 0 && (d.failures == 0 || d.hold+keep < now) && (d.deferrals == 0 || d.lastDeferAt+keep < now) {
		delete(s.dests, d.name)
	}
}

// destOutcome feeds back an attempt's outcome to its destination: a
// success grows its concurrency and lifts its failures and deferrals; an
// attempt that deferred its recipients counts as a deferral; a failure to
// reach it holds it until until (µs), drops its concurrency to the initial
// one, and pushes its waiting jobs back.
func (q *Queue) destOutcome(name string, ok, deferred, unreachable bool, until int64, reason delivery.RcptResult, host string) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dests[name]
	if d == nil {
		return
	}
	if deferred && !ok {
		now := q.usNow()
		if d.deferrals == 0 {
			d.deferringSince = now
		}
		d.deferrals++
		d.lastDeferred, d.deferredHost, d.lastDeferAt = reason, host, now
	}
	cfg := q.config()
	switch {
	case ok:
		d.deferrals = 0
		d.failures, d.hold = 0, 0
		if d.successes++; d.successes >= d.limit && d.limit < cfg.DestinationConcurrency {
			d.limit++
			d.successes = 0
		}
	case unreachable:
		if d.hold >= until {
			break
		}
		d.failures++
		d.hold = until
		d.reason, d.host = reason, host
		d.limit = min(InitialDestinationConcurrency, cfg.DestinationConcurrency)
		d.successes = 0
		for d.jobs.Len() > 0 {
			j := heap.Pop(&d.jobs).(*job)
			s.waiting--
			s.pushback = append(s.pushback, j)
		}
	}
	s.fix(d)
	q.kick()
}

// liftHolds ends the holds of the named destinations, or of all when
// names is nil.
func (q *Queue) liftHolds(names []string) {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dests {
		if names == nil || slices.Contains(names, d.name) {
			d.hold, d.failures = 0, 0
			s.fix(d)
		}
	}
	q.kick()
}

// jobHeap orders a destination's waiting jobs by due time, then message
// id (the spool's ids sort by arrival).
type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].key.msg < h[j].key.msg
}
func (h jobHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.index = -1
	return j
}

// destHeap orders the destinations that may start a delivery by when
// their first job may go.
type destHeap []*dest

func (h destHeap) Len() int           { return len(h) }
func (h destHeap) Less(i, j int) bool { return h[i].readyAt() < h[j].readyAt() }
func (h destHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *destHeap) Push(x any) {
	d := x.(*dest)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *destHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.index = -1
	return d
}

// usNow is the clock in µs.
func (q *Queue) usNow() int64 { return micros(q.now()) }

// Deferring is a destination whose last attempts deferred their mail.
type Deferring struct {
	Destination string
	// Attempts counts the attempts in a row that delivered nothing and
	// deferred, since Since.
	Attempts int
	Since    time.Time
	// LastReply is the last attempt's reply (a next hop's, or why none
	// was reached), at Host (empty when none was reached).
	LastReply string
	Host      string
	// HeldUntil, when set, is the end of the hold of a destination that
	// could not be reached: nothing is tried before.
	HeldUntil time.Time
}

// Deferring returns the destinations whose last attempts deferred their
// mail, most attempts first: what an operator looks at when mail waits.
// A destination is forgotten once it delivers, or has been idle for
// MaxBackoff.
func (q *Queue) Deferring() []Deferring {
	now := q.usNow()
	s := &q.s
	s.mu.Lock()
	var out []Deferring
	for _, d := range s.dests {
		if d.deferrals == 0 {
			continue
		}
		df := Deferring{Destination: d.name, Attempts: d.deferrals, Since: fromMicros(d.deferringSince),
			LastReply: diagnostic(d.lastDeferred), Host: hostName(d.deferredHost)}
		if d.hold > now {
			df.HeldUntil = fromMicros(d.hold)
		}
		out = append(out, df)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Deferring) int {
		if c := cmp.Compare(b.Attempts, a.Attempts); c != 0 {
			return c
		}
		return strings.Compare(a.Destination, b.Destination)
	})
	return out
}
