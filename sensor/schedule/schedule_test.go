package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/internal/testwait"
)

// The tests run in a synctest bubble: time moves only when every goroutine
// waits, so a backoff of an hour takes no time, and "nothing is handed out
// before the hour" is checked at the instant before it, not by sleeping.

// fixed is a backoff without jitter's lower half: tests that need exact
// instants use Min == Max.
var fixed = Options{
	Item:  Backoff{Min: time.Minute, Max: time.Minute},
	Group: Backoff{Min: 10 * time.Second, Max: 10 * time.Second},
}

// worker calls Next in a goroutine and reports what it got.
type worker struct {
	got  chan Ticket[string]
	stop context.CancelFunc
	done chan error
}

func startWorker(ctx context.Context, s *Scheduler[string]) *worker {
	ctx, cancel := context.WithCancel(ctx)
	w := &worker{got: make(chan Ticket[string], 1), stop: cancel, done: make(chan error, 1)}
	go func() {
		t, err := s.Next(ctx)
		if err != nil {
			w.done <- err
			return
		}
		w.got <- t
	}()
	return w
}

// ticket returns what w got, failing if it got nothing yet; callers call
// synctest.Wait first.
func (w *worker) ticket(t *testing.T) Ticket[string] {
	t.Helper()
	select {
	case tk := <-w.got:
		return tk
	default:
		t.Fatal("the worker got nothing")
		return Ticket[string]{}
	}
}

func (w *worker) idle(t *testing.T) {
	t.Helper()
	select {
	case tk := <-w.got:
		t.Fatalf("the worker got %+v, want nothing yet", tk)
	case err := <-w.done:
		t.Fatalf("the worker stopped: %v", err)
	default:
	}
}

// next takes the item that is due now.
func next(t *testing.T, s *Scheduler[string]) Ticket[string] {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := startWorker(ctx, s)
	synctest.Wait()
	return w.ticket(t)
}

func TestOrderAndOneWorkerPerItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		for _, k := range []string{"b", "a", "c"} {
			if !s.Add(k, "") {
				t.Fatalf("Add(%q) = false", k)
			}
		}
		if s.Add("a", "") {
			t.Error("a second Add of a = true, want false")
		}
		// Added in the same instant: the lowest key first.
		var got []string
		for range 3 {
			got = append(got, next(t, s).Key)
		}
		if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
		// All three are handed out: a fourth worker waits.
		w := startWorker(t.Context(), s)
		synctest.Wait()
		w.idle(t)
		if got, want := s.Stats(), (Stats{InFlight: 3}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
		// An item added later goes after those added before it, whatever
		// its key.
		time.Sleep(time.Second)
		s.Release("c")
		s.Add("0", "")
		synctest.Wait()
		if got := w.ticket(t).Key; got != "c" {
			t.Errorf("after Release(c) and Add(0): got %q, want c", got)
		}
		if got := next(t, s).Key; got != "0" {
			t.Errorf("then got %q, want 0", got)
		}
	})
}

func TestFailedItemBacksOffAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		s.Add("bad", "")
		tk := next(t, s)
		if tk.Failures != 0 {
			t.Errorf("first try: Failures = %d, want 0", tk.Failures)
		}
		start := time.Now()
		due := s.Failed("bad")
		if got := due.Sub(start); got < 30*time.Second || got > time.Minute {
			t.Errorf("Failed: due in %v, want between 30s and 1m", got)
		}
		if got, want := s.Stats(), (Stats{Waiting: 1, Deferred: 1}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
		// Another item is not held back by it, and its success does not
		// bring the failed one back early.
		s.Add("good", "")
		if got := next(t, s).Key; got != "good" {
			t.Fatalf("got %q, want good", got)
		}
		s.Done("good")
		w := startWorker(t.Context(), s)
		time.Sleep(time.Until(due) - time.Nanosecond)
		synctest.Wait()
		w.idle(t)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		tk = w.ticket(t)
		if tk.Key != "bad" || tk.Failures != 1 {
			t.Errorf("at its due time got %+v, want bad with 1 failure", tk)
		}
		s.Done("bad")
		if got, want := s.Stats(), (Stats{}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
	})
}

func TestBackoffGrowsWithTheItemsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](Options{Item: Backoff{Min: time.Minute, Max: 4 * time.Minute}})
		s.Add("m", "")
		for i, wantMax := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
			tk := next(t, s)
			if tk.Failures != i {
				t.Fatalf("try %d: Failures = %d, want %d", i+1, tk.Failures, i)
			}
			delay := time.Until(s.Failed("m"))
			if delay < wantMax/2 || delay > wantMax {
				t.Errorf("after failure %d: due in %v, want between %v and %v", i+1, delay, wantMax/2, wantMax)
			}
			time.Sleep(delay)
		}
	})
}

func TestUnreachableHoldsTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		for _, k := range []string{"a1", "a2", "a3"} {
			s.Add(k, "a")
		}
		s.Add("b1", "b")
		a1, a2 := next(t, s), next(t, s)
		start := time.Now()
		until, started := s.Unreachable(a1.Key)
		if !started || until.Sub(start) < 5*time.Second || until.Sub(start) > 10*time.Second {
			t.Fatalf("Unreachable(a1) = %v after now, %v; want a new hold of 5s to 10s", until.Sub(start), started)
		}
		// The other try under way fails too: same hold, not a longer one.
		time.Sleep(time.Second)
		if u, started := s.Unreachable(a2.Key); u != until || started {
			t.Errorf("Unreachable(a2) = %v, %v; want the hold that runs, %v, false", u, started, until)
		}
		if got, want := s.Stats(), (Stats{Waiting: 4, HeldGroups: 1}); got != want {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
		// Group b goes; group a waits for the hold.
		if got := next(t, s).Key; got != "b1" {
			t.Fatalf("got %q, want b1", got)
		}
		w := startWorker(t.Context(), s)
		time.Sleep(time.Until(until) - time.Nanosecond)
		synctest.Wait()
		w.idle(t)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		// a1 and a2 have no failures of their own.
		if tk := w.ticket(t); tk.Key != "a1" || tk.Failures != 0 {
			t.Errorf("after the hold got %+v, want a1 with no failures", tk)
		}
	})
}

func TestGroupHoldGrowsUntilAnItemGetsThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](Options{Group: Backoff{Min: 10 * time.Second, Max: 40 * time.Second}})
		s.Add("m1", "central")
		s.Add("m2", "central")
		for i, wantMax := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
			tk := next(t, s)
			until, _ := s.Unreachable(tk.Key)
			if d := time.Until(until); d < wantMax/2 || d > wantMax {
				t.Errorf("hold %d: %v, want between %v and %v", i+1, d, wantMax/2, wantMax)
			}
			time.Sleep(time.Until(until))
		}
		// m1 failed each time; m2 now gets through, which starts the count
		// again.
		m1, m2 := next(t, s), next(t, s)
		if m1.Key != "m1" || m2.Key != "m2" {
			t.Fatalf("got %q and %q, want m1 and m2", m1.Key, m2.Key)
		}
		s.Done(m2.Key)
		if until, started := s.Unreachable(m1.Key); !started || time.Until(until) > 10*time.Second {
			t.Errorf("hold after a success: %v, %v; want a new one of at most the first, 10s", time.Until(until), started)
		}
	})
}

func TestDoneLiftsTheHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		s.Add("a-slow", "c")
		s.Add("b-held", "c")
		slow, m := next(t, s), next(t, s)
		// m fails on an outage while slow's upload, under way since before
		// it, still gets through.
		s.Unreachable(m.Key)
		w := startWorker(t.Context(), s)
		synctest.Wait()
		w.idle(t)
		s.Done(slow.Key)
		synctest.Wait()
		if got := w.ticket(t).Key; got != "b-held" {
			t.Errorf("got %q, want b-held at once", got)
		}
	})
}

func TestLeaderCancelledPassesTheTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		s.Add("m", "")
		next(t, s)
		due := s.Failed("m")
		first := startWorker(t.Context(), s) // the leader, with the timer
		synctest.Wait()
		second := startWorker(t.Context(), s) // a follower
		synctest.Wait()
		first.stop()
		synctest.Wait()
		if err := <-first.done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Next: %v, want context.Canceled", err)
		}
		time.Sleep(time.Until(due))
		synctest.Wait()
		if got := second.ticket(t).Key; got != "m" {
			t.Errorf("got %q, want m", got)
		}
	})
}

func TestSignalledFollowerCancelledPassesTheSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		ctx, cancel := context.WithCancel(t.Context())
		first := startWorker(ctx, s)
		synctest.Wait()
		second := startWorker(t.Context(), s)
		synctest.Wait()
		// The signal of the Add and the end of first's context race; either
		// way second gets the item.
		cancel()
		s.Add("m", "")
		synctest.Wait()
		select {
		case tk := <-first.got:
			if tk.Key != "m" {
				t.Errorf("first got %q, want m", tk.Key)
			}
			second.idle(t)
		case <-first.done:
			if got := second.ticket(t).Key; got != "m" {
				t.Errorf("second got %q, want m", got)
			}
		}
	})
}

func TestDropAndRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](fixed)
		s.Add("waiting", "")
		s.Add("out", "")
		if got := next(t, s).Key; got != "out" {
			t.Fatalf("got %q, want out", got)
		}
		s.Drop("waiting")
		s.Drop("out")
		s.Drop("unknown")
		if got, want := s.Stats(), (Stats{}); got != want {
			t.Errorf("after Drop: Stats() = %+v, want %+v", got, want)
		}
		// Ending a dropped ticket is a no-op.
		s.Done("out")
		if !s.Add("out", "") {
			t.Error("Add after Drop = false")
		}
		s.Drop("out")

		due := time.Now().Add(time.Hour)
		s.Restore("later", "", 3, due)
		s.Restore("overdue", "", 1, time.Now().Add(-time.Hour))
		if got, want := s.Stats(), (Stats{Waiting: 2, Deferred: 2}); got != want {
			t.Errorf("after Restore: Stats() = %+v, want %+v", got, want)
		}
		if tk := next(t, s); tk.Key != "overdue" || tk.Failures != 1 {
			t.Errorf("got %+v, want overdue with 1 failure", tk)
		}
		w := startWorker(t.Context(), s)
		time.Sleep(time.Until(due))
		synctest.Wait()
		if tk := w.ticket(t); tk.Key != "later" || tk.Failures != 3 {
			t.Errorf("got %+v, want later with 3 failures", tk)
		}
	})
}

// Many workers and items, some failing: each item is in one worker's hands
// at a time, and every item ends done.
func TestConcurrentWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New[string](Options{
			Item:  Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
			Group: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		})
		const items, workers = 500, 16
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		holding := map[string]bool{}
		tries := map[string]int{}
		done := map[string]bool{}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					tk, err := s.Next(ctx)
					if err != nil {
						return
					}
					mu.Lock()
					if holding[tk.Key] {
						t.Errorf("%s handed to two workers", tk.Key)
					}
					holding[tk.Key] = true
					tries[tk.Key]++
					n := tries[tk.Key]
					mu.Unlock()
					time.Sleep(time.Millisecond)
					mu.Lock()
					holding[tk.Key] = false
					if n == 3 {
						done[tk.Key] = true
					}
					mu.Unlock()
					switch n {
					case 1:
						s.Failed(tk.Key)
					case 2:
						s.Unreachable(tk.Key)
					default:
						s.Done(tk.Key)
					}
				}
			})
		}
		for i := range items {
			s.Add(fmt.Sprintf("m%04d", i), fmt.Sprint(i%3))
		}
		// The bubble's clock moves while testwait sleeps between checks:
		// the backoffs run out.
		testwait.For(t, "every item done", func() bool { return s.Stats() == (Stats{}) })
		cancel()
		wg.Wait()
		if len(done) != items {
			t.Errorf("%d items done, want %d", len(done), items)
		}
	})
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Hour}
	for _, tc := range []struct {
		n        int
		lo, high time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{13, 30 * time.Minute, time.Hour},
		{64, 30 * time.Minute, time.Hour},
		{1 << 30, 30 * time.Minute, time.Hour},
	} {
		for range 100 {
			if d := b.Delay(tc.n); d < tc.lo || d > tc.high {
				t.Fatalf("Delay(%d) = %v, want between %v and %v", tc.n, d, tc.lo, tc.high)
			}
		}
	}
	if d := (Backoff{}).Delay(3); d != 0 {
		t.Errorf("zero Backoff: Delay = %v, want 0", d)
	}
}
