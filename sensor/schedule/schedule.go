// Package schedule decides when each item of a work queue is tried next: the
// spooled messages the uploader hands to the central nodes, and the
// deliveries of a gateway's queue.
//
// Design note. Every item has its own next-try time and its own count of
// failures. A new item is due at once; an item that failed is due again after
// a backoff that grows with its own failures, so a message a peer keeps
// refusing waits longer and longer without slowing the others, and another
// item's success does not reset its backoff. A failure that is not the item's
// but its destination's (the central node is unreachable, a next hop is
// down) holds the item's group instead: every item of the group waits until
// the hold ends, none gains a failure of its own, and the group's hold grows
// with the group's failures in a row until one item of the group gets
// through, which lifts it. (Postfix's queue manager keeps the same two
// states: a message's deferral and a destination's.)
//
// Items are handed out earliest due first, ties by lowest key (the spool's
// ids sort oldest first), each to one worker at a time. Items wait in one
// heap per group, and the groups in a heap of their own ordered by when their
// first item may go, so a hold costs one heap fix however many items wait
// behind it. The scheduler has no goroutine: Next blocks the worker that
// calls it, and only one waiting worker, the leader, keeps a timer for the
// earliest item while the others wait for a signal (the leader/follower
// pattern), so an idle queue wakes no one and an arrival wakes one worker.
//
// The state lives in memory. A caller that must remember attempts across a
// restart (a delivery queue) stores them itself and gives them back to
// Restore.
package schedule

import (
	"cmp"
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is an exponential delay with a cap: Min after the first failure,
// doubling with each failure in a row up to Max, less up to half of it at
// random so that items failed together do not come back together.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the delay after the n-th failure in a row (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Max
	if n < 1 {
		n = 1
	}
	// Doubling Min n-1 times, stopping at Max before it can overflow.
	if shift := n - 1; shift < 62 && b.Min <= b.Max>>shift {
		d = b.Min << shift
	}
	if d <= 1 {
		return max(d, 0)
	}
	return d - rand.N(d/2)
}

// Options configures a Scheduler.
type Options struct {
	// Item is the backoff of an item after failures of its own; zero means
	// from a minute to an hour.
	Item Backoff
	// Group is the hold of a group after failures of its destination in a
	// row; zero means from 200 ms to 30 s.
	Group Backoff
}

// Ticket is an item handed to a worker by Next. The worker ends it with
// exactly one of Done, Failed, Unreachable, Release or Drop.
type Ticket[K cmp.Ordered] struct {
	Key   K
	Group string
	// Failures is the number of the item's own failures in a row before
	// this try.
	Failures int
}

// Stats counts a Scheduler's items.
type Stats struct {
	// Waiting counts the items not in a worker's hands, Deferred those of
	// them that failed before, and InFlight the items handed out.
	Waiting, Deferred, InFlight int
	// HeldGroups counts the groups whose hold has not ended.
	HeldGroups int
}

// Scheduler hands out items to workers when they are due. Its methods may be
// called from any goroutine.
type Scheduler[K cmp.Ordered] struct {
	opts Options

	mu       sync.Mutex
	items    map[K]*item[K]
	groups   map[string]*group[K]
	queue    groupHeap[K] // groups with waiting items
	inFlight int
	deferred int // waiting items with failures
	// leader, when set, is the waiting worker that keeps the timer for the
	// earliest item; followers wait in arrival order for a signal.
	leader    chan struct{}
	followers []chan struct{}
}

type item[K cmp.Ordered] struct {
	key      K
	g        *group[K]
	due      time.Time
	failures int
	index    int // in g.items; -1 while handed out
}

type group[K cmp.Ordered] struct {
	name     string
	items    itemHeap[K]
	hold     time.Time // no item goes before
	failures int       // of the destination, in a row
	n        int       // items, waiting or handed out
	index    int       // in the queue; -1 while no item waits
}

// ready is when the group's first item may go.
func (g *group[K]) ready() time.Time {
	if g.hold.After(g.items[0].due) {
		return g.hold
	}
	return g.items[0].due
}

// New returns an empty Scheduler.
func New[K cmp.Ordered](opts Options) *Scheduler[K] {
	if opts.Item == (Backoff{}) {
		opts.Item = Backoff{Min: time.Minute, Max: time.Hour}
	}
	if opts.Group == (Backoff{}) {
		opts.Group = Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second}
	}
	return &Scheduler[K]{
		opts:   opts,
		items:  map[K]*item[K]{},
		groups: map[string]*group[K]{},
	}
}

// Add queues key in the group named groupName, due now: after the items due before, before
// those that come later. It reports false, and changes nothing, when the
// scheduler has key already.
func (s *Scheduler[K]) Add(key K, groupName string) bool {
	return s.Restore(key, groupName, 0, time.Time{})
}

// Restore queues key in the group named groupName as it was before a restart: with failures of
// its own, due at due (at once if due has passed; zero means now). It reports false, and
// changes nothing, when the scheduler has key already.
func (s *Scheduler[K]) Restore(key K, groupName string, failures int, due time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[key]; ok {
		return false
	}
	g := s.groups[groupName]
	if g == nil {
		g = &group[K]{name: groupName, index: -1}
		s.groups[groupName] = g
	}
	if due.IsZero() {
		due = time.Now()
	}
	it := &item[K]{key: key, g: g, due: due, failures: max(failures, 0), index: -1}
	s.items[key] = it
	g.n++
	s.queueItem(it)
	return true
}

// Next waits until an item is due and hands it out, or until ctx ends.
func (s *Scheduler[K]) Next(ctx context.Context) (Ticket[K], error) {
	for {
		if err := ctx.Err(); err != nil {
			return Ticket[K]{}, err
		}
		s.mu.Lock()
		now := time.Now()
		if it, ok := s.take(now); ok {
			// Someone must watch what remains.
			if s.leader == nil && s.queue.Len() > 0 {
				s.signalFollower()
			}
			s.mu.Unlock()
			return Ticket[K]{Key: it.key, Group: it.g.name, Failures: it.failures}, nil
		}
		w := make(chan struct{}, 1)
		var timer *time.Timer
		var fire <-chan time.Time
		if s.leader == nil && s.queue.Len() > 0 {
			s.leader = w
			timer = time.NewTimer(s.queue[0].ready().Sub(now))
			fire = timer.C
		} else {
			s.followers = append(s.followers, w)
		}
		s.mu.Unlock()

		select {
		case <-w:
		case <-fire:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		s.mu.Lock()
		switch {
		case s.leader == w:
			s.leader = nil
			if ctx.Err() != nil {
				s.signalFollower() // to take over the timer
			}
		case ctx.Err() != nil && !s.dropFollower(w):
			// Signalled as ctx ended: pass the signal on.
			s.signalFollower()
		}
		s.mu.Unlock()
	}
}

// Done ends a ticket whose item succeeded: the scheduler forgets the item,
// and its group, which got through, is no longer held.
func (s *Scheduler[K]) Done(key K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.handedOut(key)
	if it == nil {
		return
	}
	g := it.g
	g.failures = 0
	if !g.hold.IsZero() {
		g.hold = time.Time{}
		s.fixGroup(g)
		s.wake()
	}
	s.forgetItem(it)
}

// Failed ends a ticket whose item failed for a reason of its own: the item
// waits for its backoff. It returns when the item is due again.
func (s *Scheduler[K]) Failed(key K) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.handedOut(key)
	if it == nil {
		return time.Time{}
	}
	it.failures++
	it.due = time.Now().Add(s.opts.Item.Delay(it.failures))
	s.queueItem(it)
	return it.due
}

// Unreachable ends a ticket whose item could not be tried because its
// destination failed: the item waits, with no failure of its own, until the
// group's hold ends. A failure while the group is held already (the other
// workers' tries that were under way) does not lengthen the hold. It returns
// when the hold ends, and whether this failure started it.
func (s *Scheduler[K]) Unreachable(key K) (until time.Time, started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.handedOut(key)
	if it == nil {
		return time.Time{}, false
	}
	g := it.g
	now := time.Now()
	if !g.hold.After(now) {
		g.failures++
		g.hold = now.Add(s.opts.Group.Delay(g.failures))
		started = true
		if g.index >= 0 {
			heap.Fix(&s.queue, g.index)
		}
	}
	s.queueItem(it)
	return g.hold, started
}

// Release ends a ticket whose item was not tried (the worker is stopping):
// the item is due again as it was, with nothing counted.
func (s *Scheduler[K]) Release(key K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.handedOut(key); it != nil {
		s.queueItem(it)
	}
}

// Drop forgets key, waiting or handed out: the item is gone.
func (s *Scheduler[K]) Drop(key K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		return
	}
	if it.index >= 0 {
		g := it.g
		heap.Remove(&g.items, it.index)
		if it.failures > 0 {
			s.deferred--
		}
		s.fixGroup(g)
	} else {
		s.inFlight--
	}
	s.forgetItem(it)
}

// Stats counts the items.
func (s *Scheduler[K]) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Waiting: len(s.items) - s.inFlight, Deferred: s.deferred, InFlight: s.inFlight}
	now := time.Now()
	for _, g := range s.groups {
		if g.hold.After(now) {
			st.HeldGroups++
		}
	}
	return st
}

// handedOut returns the item of a ticket, or nil if key is not handed out
// (a second end of the same ticket).
func (s *Scheduler[K]) handedOut(key K) *item[K] {
	it, ok := s.items[key]
	if !ok || it.index >= 0 {
		return nil
	}
	s.inFlight--
	return it
}

// take hands out the first item if it is due.
func (s *Scheduler[K]) take(now time.Time) (*item[K], bool) {
	if s.queue.Len() == 0 || s.queue[0].ready().After(now) {
		return nil, false
	}
	g := s.queue[0]
	it := heap.Pop(&g.items).(*item[K])
	if it.failures > 0 {
		s.deferred--
	}
	s.inFlight++
	s.fixGroup(g)
	return it, true
}

// queueItem puts an item among the waiting ones and wakes a worker.
func (s *Scheduler[K]) queueItem(it *item[K]) {
	heap.Push(&it.g.items, it)
	if it.failures > 0 {
		s.deferred++
	}
	s.fixGroup(it.g)
	s.wake()
}

func (s *Scheduler[K]) forgetItem(it *item[K]) {
	delete(s.items, it.key)
	g := it.g
	g.n--
	// A group is kept while it has items or a hold, so that its failures
	// in a row outlive its last item during an outage.
	if g.n == 0 && !g.hold.After(time.Now()) {
		delete(s.groups, g.name)
	}
}

// fixGroup puts g in the queue, moves it, or takes it out, after its first
// item or its hold changed.
func (s *Scheduler[K]) fixGroup(g *group[K]) {
	switch {
	case g.items.Len() == 0 && g.index >= 0:
		heap.Remove(&s.queue, g.index)
	case g.items.Len() == 0:
	case g.index < 0:
		heap.Push(&s.queue, g)
	default:
		heap.Fix(&s.queue, g.index)
	}
}

// wake tells a waiting worker that the queue changed: the leader, whose
// timer may now be late, or else the first follower.
func (s *Scheduler[K]) wake() {
	if s.leader != nil {
		s.leader <- struct{}{}
		s.leader = nil
		return
	}
	s.signalFollower()
}

func (s *Scheduler[K]) signalFollower() {
	if len(s.followers) == 0 {
		return
	}
	w := s.followers[0]
	s.followers = s.followers[1:]
	w <- struct{}{}
}

// dropFollower takes w out of the followers, and reports whether it was
// there (and so was not signalled).
func (s *Scheduler[K]) dropFollower(w chan struct{}) bool {
	for i, f := range s.followers {
		if f == w {
			s.followers = append(s.followers[:i], s.followers[i+1:]...)
			return true
		}
	}
	return false
}

// itemHeap orders a group's waiting items by due time, then key.
type itemHeap[K cmp.Ordered] []*item[K]

func (h itemHeap[K]) Len() int { return len(h) }
func (h itemHeap[K]) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].key < h[j].key
}
func (h itemHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *itemHeap[K]) Push(x any) {
	it := x.(*item[K])
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap[K]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// groupHeap orders the groups with waiting items by when their first item
// may go, then by that item's key.
type groupHeap[K cmp.Ordered] []*group[K]

func (h groupHeap[K]) Len() int { return len(h) }
func (h groupHeap[K]) Less(i, j int) bool {
	if c := h[i].ready().Compare(h[j].ready()); c != 0 {
		return c < 0
	}
	return h[i].items[0].key < h[j].items[0].key
}
func (h groupHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *groupHeap[K]) Push(x any) {
	g := x.(*group[K])
	g.index = len(*h)
	*h = append(*h, g)
}
func (h *groupHeap[K]) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	g.index = -1
	return g
}
