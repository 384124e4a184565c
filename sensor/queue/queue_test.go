package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/internal/testwait"
)

// TestTransitions checks what one attempt does to each recipient: a 2xx
// delivers, a 5xx bounces with a failure notice to the sender (none to the
// null sender), a 4xx defers within the backoff.
func TestTransitions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		from   string
		rcpts  []string
		want   map[string]State // after the first attempt; "" = gone
		notice []string         // recipients the failure notice names
	}{
		{name: "delivered", from: "s@example.org", rcpts: []string{"ok@a.test"}, want: map[string]State{"ok@a.test": StateDelivered}},
		{name: "bounced", from: "s@example.org", rcpts: []string{"perm@a.test"}, want: map[string]State{"perm@a.test": StateBounced}, notice: []string{"perm@a.test"}},
		{name: "bounced null sender", from: "", rcpts: []string{"perm@a.test"}, want: map[string]State{"perm@a.test": StateBounced}},
		{name: "deferred", from: "s@example.org", rcpts: []string{"temp@a.test"}, want: map[string]State{"temp@a.test": StateDeferred}},
		{name: "mixed", from: "s@example.org", rcpts: []string{"ok@a.test", "temp@a.test", "perm@a.test"},
			want:   map[string]State{"ok@a.test": StateDelivered, "temp@a.test": StateDeferred, "perm@a.test": StateBounced},
			notice: []string{"perm@a.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{MinBackoff: 10 * time.Minute, MaxBackoff: time.Hour, ReportingMTA: "gw.example.net"}
			h := newHarness(t, cfg)
			h.run()
			start := h.clock.Now()
			id := h.enqueue(tc.from, tc.rcpts...)
			testwait.For(t, "the attempt's outcome", func() bool {
				h.mu.Lock()
				defer h.mu.Unlock()
				return len(h.atts) > 0
			})
			testwait.For(t, "the attempt's end", func() bool { return h.q.Stats().InFlight == 0 })
			deferred := slices.ContainsFunc(tc.rcpts, func(r string) bool { return tc.want[r] == StateDeferred })
			e, ok := h.get(id)
			if !deferred {
				h.waitGone(id)
			} else {
				if !ok {
					t.Fatalf("%s left the queue with a deferred recipient", id)
				}
				got := map[string]State{}
				for _, r := range e.Rcpts {
					got[r.Rcpt] = r.State
					if r.State == StateDeferred {
						if r.Attempts != 1 || r.LastCode != 451 || r.LastEnhanced != "4.2.0" || !strings.HasPrefix(r.LastHost, "mx.a.test") {
							t.Errorf("deferred %s: %+v", r.Rcpt, r)
						}
						if lo, hi := start.Add(cfg.MinBackoff/2), start.Add(cfg.MinBackoff); r.NextAttempt.Before(lo) || r.NextAttempt.After(hi) {
							t.Errorf("%s: next attempt %v, want within [%v, %v]", r.Rcpt, r.NextAttempt, lo, hi)
						}
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("states (-want +got):\n%s", diff)
				}
			}
			h.mu.Lock()
			a := h.atts[0]
			h.mu.Unlock()
			gotAtt := map[string]State{}
			codes := map[State]int{StateDelivered: 250, StateDeferred: 451, StateBounced: 550}
			for _, r := range a.Rcpts {
				gotAtt[r.Rcpt] = r.State
				if r.Reply.Rcpt != r.Rcpt || r.Reply.Code != codes[r.State] {
					t.Errorf("attempt's reply for %s (%s): %+v, want the next hop's %d", r.Rcpt, r.State, r.Reply, codes[r.State])
				}
			}
			if diff := cmp.Diff(tc.want, gotAtt); diff != "" || a.ID != id || a.Destination != "a.test" {
				t.Errorf("attempt %s to %s (-want +got):\n%s", a.ID, a.Destination, diff)
			}
			if tc.notice == nil {
				if n := h.d.requests(to(tc.from)); tc.from != "" && len(n) > 0 {
					t.Errorf("a notice went to %s: %+v", tc.from, n)
				}
				if st := h.q.Stats(); st.Messages != boolInt(deferred) {
					t.Errorf("Stats: %+v, want %d messages", st, boolInt(deferred))
				}
				return
			}
			testwait.For(t, "the failure notice's delivery", func() bool { return len(h.d.requests(to(tc.from))) > 0 })
			n := h.d.requests(to(tc.from))[0]
			if n.From != "" || !strings.Contains(n.body, "multipart/report") || !strings.Contains(n.body, "Subject: test "+id) {
				t.Errorf("notice from %q:\n%s", n.From, n.body)
			}
			for _, r := range tc.notice {
				if !strings.Contains(n.body, "Final-Recipient: rfc822; "+r) {
					t.Errorf("the notice does not name %s:\n%s", r, n.body)
				}
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestVerdictHeader checks the header delivered messages carry.
func TestVerdictHeader(t *testing.T) {
	h := newHarness(t, Config{})
	h.run()
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{ID: "v1", From: "s@x.test", Rcpts: []string{"ok1@a.test"}, Direction: Inbound, Verdict: "clean", Body: []byte("A: b\r\n\r\nx")}, "X-Osprey-Verdict: clean\r\nA: b\r\n\r\nx"},
		{Message{ID: "v2", From: "s@x.test", Rcpts: []string{"ok2@a.test"}, Direction: Outbound, Unscanned: true, Body: []byte("A: b\r\n\r\nx")}, "X-Osprey-Verdict: unscanned\r\nA: b\r\n\r\nx"},
	} {
		if _, err := h.q.Enqueue(t.Context(), tc.m); err != nil {
			t.Fatal(err)
		}
		rcpt := tc.m.Rcpts[0]
		testwait.For(t, "the delivery to "+rcpt, func() bool { return len(h.d.requests(to(rcpt))) > 0 })
		if got := h.d.requests(to(rcpt))[0].body; got != tc.want {
			t.Errorf("delivered %q, want %q", got, tc.want)
		}
	}
}

// TestBackoffLifetime follows one recipient that is always deferred: the
// backoff doubles up to its cap, one delay notice goes out after
// DelayWarning, and it bounces once MaxLifetime is past.
func TestBackoffLifetime(t *testing.T) {
	cfg := Config{MinBackoff: 10 * time.Minute, MaxBackoff: 40 * time.Minute, DelayWarning: time.Hour, MaxLifetime: 3 * time.Hour}
	h := newHarness(t, cfg)
	h.run()
	id := h.enqueue("s@example.org", "temp@a.test")
	arrival := h.clock.Now()
	var attempts int
	for attempts = 1; ; attempts++ {
		if h.clock.Now().Sub(arrival) >= cfg.MaxLifetime {
			break
		}
		r := h.waitState(id, "temp@a.test", StateDeferred, attempts)
		step := min(cfg.MinBackoff<<(attempts-1), cfg.MaxBackoff)
		if lo, hi := h.clock.Now().Add(step/2), h.clock.Now().Add(step); r.NextAttempt.Before(lo) || r.NextAttempt.After(hi) {
			t.Errorf("attempt %d: next attempt in %v, want within [%v, %v]", attempts, r.NextAttempt.Sub(h.clock.Now()), step/2, step)
		}
		h.advance(r.NextAttempt.Sub(h.clock.Now()))
	}
	h.waitGone(id)
	// The failure notice is queued by the bounce's transaction and
	// delivered after it.
	var delays, failures []recorded
	testwait.For(t, "the failure notice delivered", func() bool {
		failures = h.d.requests(func(r recorded) bool { return strings.Contains(r.body, "Action: failed") })
		return len(failures) > 0
	})
	delays = h.d.requests(func(r recorded) bool { return strings.Contains(r.body, "Action: delayed") })
	if len(delays) != 1 || len(failures) != 1 {
		t.Fatalf("%d delay and %d failure notices, want one each", len(delays), len(failures))
	}
	if !strings.Contains(failures[0].body, "Status: 4.2.0") || !strings.Contains(delays[0].body, "Will-Retry-Until:") {
		t.Errorf("notices:\n%s\n%s", delays[0].body, failures[0].body)
	}
	if got := len(h.d.requests(to("temp@a.test"))); got != attempts {
		t.Errorf("%d attempts, want %d", got, attempts)
	}
}

// TestEnqueueIdempotent enqueues a message twice, across a reopen, and
// checks that a later verdict quarantines what is not delivered yet.
func TestEnqueueIdempotent(t *testing.T) {
	h := newHarness(t, Config{})
	m := Message{ID: "dup", From: "s@example.org", Rcpts: []string{"a@a.test", "b@b.test", "a@a.test"}, Direction: Outbound, Unscanned: true, Body: []byte("S: x\r\n\r\n")}
	for i, want := range []bool{true, false} {
		added, err := h.q.Enqueue(t.Context(), m)
		if err != nil || added != want {
			t.Fatalf("Enqueue %d: %v, %v; want %v", i, added, err, want)
		}
	}
	h.close()
	h.open(Config{})
	if added, err := h.q.Enqueue(t.Context(), m); err != nil || added {
		t.Fatalf("Enqueue after reopen: %v, %v; want false", added, err)
	}
	if st := h.q.Stats(); st != (Stats{Messages: 1, Active: 2}) {
		t.Errorf("Stats: %+v, want 1 message, 2 active recipients", st)
	}
	m.Unscanned, m.Verdict, m.Quarantine = false, "detected", true
	if added, err := h.q.Enqueue(t.Context(), m); err != nil || added {
		t.Fatalf("Enqueue with the verdict: %v, %v", added, err)
	}
	e, _ := h.get("dup")
	if e.Verdict != "detected" || e.Unscanned || len(e.Rcpts) != 2 || e.Rcpts[0].State != StateQuarantined || e.Rcpts[1].State != StateQuarantined {
		t.Errorf("after the verdict: %+v", e)
	}
	if st := h.q.Stats(); st != (Stats{Messages: 1, Quarantined: 2}) {
		t.Errorf("Stats: %+v, want 2 quarantined", st)
	}
	h.run()
	if err := h.q.Release(t.Context(), "dup"); err != nil {
		t.Fatal(err)
	}
	h.waitGone("dup")
	if n := len(h.d.requests(nil)); n != 2 {
		t.Errorf("%d requests, want 2 (one per destination)", n)
	}
}

// TestEnqueueInvalid checks that a message lacking what delivery needs is
// refused.
func TestEnqueueInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	for _, m := range []Message{
		{From: "a@b", Rcpts: []string{"c@d"}, Direction: Inbound},
		{ID: "x", From: "a@b", Direction: Inbound},
		{ID: "x", From: "a@b", Rcpts: []string{"c@d"}, Direction: "sideways"},
	} {
		if _, err := h.q.Enqueue(t.Context(), m); err == nil {
			t.Errorf("Enqueue(%+v) took it", m)
		}
	}
}

// TestGrouping checks that recipients sharing a destination go in one
// request, one per destination.
func TestGrouping(t *testing.T) {
	h := newHarness(t, Config{})
	h.run()
	id := h.enqueue("s@example.org", "a1@a.test", "b1@b.test", "a2@a.test", "A3@A.TEST")
	h.waitGone(id)
	got := map[string][]string{}
	for _, r := range h.d.requests(nil) {
		got[r.Destination] = append(got[r.Destination], r.Rcpts...)
		if r.ID != id || r.From != "s@example.org" || r.Size != int64(len(r.body)) {
			t.Errorf("request %+v", r.Request)
		}
	}
	want := map[string][]string{"a.test": {"A3@A.TEST", "a1@a.test", "a2@a.test"}, "b.test": {"b1@b.test"}}
	if diff := cmp.Diff(want, got); diff != "" || len(h.d.requests(nil)) != 2 {
		t.Errorf("requests per destination (-want +got):\n%s", diff)
	}
}

// TestConcurrency checks the limits: per destination and in all, and
// that a destination's limit starts at the initial one and grows.
func TestConcurrency(t *testing.T) {
	h := newHarness(t, Config{DestinationConcurrency: 7, Concurrency: 12})
	h.d.gate = make(chan struct{})
	var ids []string
	for i := range 60 {
		dom := []string{"a.test", "b.test"}[i%2]
		ids = append(ids, h.enqueue("s@example.org", "ok@"+dom))
	}
	h.run()
	inFlight := func(dest string) int {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		return h.d.inFlight[dest]
	}
	// Both destinations start at the initial limit.
	testwait.For(t, "both destinations at their initial limit", func() bool {
		return inFlight("a.test") == InitialDestinationConcurrency && inFlight("b.test") == InitialDestinationConcurrency
	})
	// Let deliveries through, one at a time: the destinations' limits
	// grow, so the 12 in all are reached (beyond the 2 × 5 initial
	// ones), never more.
	for range 30 {
		h.d.gate <- struct{}{}
	}
	testwait.For(t, "12 deliveries under way", func() bool { return inFlight("a.test")+inFlight("b.test") == 12 })
	close(h.d.gate)
	for _, id := range ids {
		h.waitGone(id)
	}
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if h.d.maxTotal > 12 || h.d.maxDest["a.test"] > 7 || h.d.maxDest["b.test"] > 7 {
		t.Errorf("at most %d deliveries at once, %v per destination; want 12, 7", h.d.maxTotal, h.d.maxDest)
	}
}

// TestDeadDestination checks that a destination that cannot be reached
// is held: its other messages wait without an attempt of their own, and
// go once it is back.
func TestDeadDestination(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	h.d.down["down.test"] = true
	var ids []string
	for range 20 {
		ids = append(ids, h.enqueue("s@example.org", "ok@down.test"))
	}
	h.run()
	testwait.For(t, "every recipient deferred", func() bool { st := h.q.Stats(); return st.Deferred == 20 && st.InFlight == 0 })
	tried := len(h.d.requests(nil))
	if tried > InitialDestinationConcurrency {
		t.Errorf("%d attempts, want at most %d (those under way when it was found down)", tried, InitialDestinationConcurrency)
	}
	if st := h.q.Stats(); st.HeldDestinations != 1 {
		t.Errorf("Stats: %+v, want one held destination", st)
	}
	var suspended int
	for _, id := range ids {
		e, _ := h.get(id)
		r := e.Rcpts[0]
		if r.Attempts == 0 {
			suspended++
			if !strings.HasPrefix(r.LastText, "delivery temporarily suspended: connect to down.test") || r.LastEnhanced != "4.4.1" {
				t.Errorf("%s: %+v", id, r)
			}
		}
	}
	if suspended != 20-tried {
		t.Errorf("%d waiting without an attempt, want %d", suspended, 20-tried)
	}
	df := h.q.Deferring()
	if len(df) != 1 || df[0].Destination != "down.test" || df[0].Attempts < 1 || df[0].Host != "" ||
		!strings.Contains(df[0].LastReply, "connection refused") || df[0].HeldUntil.IsZero() {
		t.Errorf("Deferring: %+v, want down.test, held, unreachable", df)
	}
	h.d.mu.Lock()
	h.d.down["down.test"] = false
	h.d.mu.Unlock()
	h.advance(10 * time.Minute)
	for _, id := range ids {
		h.waitGone(id)
	}
	if df := h.q.Deferring(); len(df) != 0 {
		t.Errorf("Deferring after the destination delivered: %+v, want none", df)
	}
}

// TestDeferringNextHop: a next hop that answers 4xx is named by Deferring
// with its reply and host, and is not held (it answered); the other
// destination, which delivers, is not named.
func TestDeferringNextHop(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	h.run()
	slow := h.enqueue("s@example.org", "temp1@slow.test")
	h.waitState(slow, "temp1@slow.test", StateDeferred, 1)
	h.waitGone(h.enqueue("s@example.org", "ok@fast.test"))
	h.enqueue("s@example.org", "temp2@slow.test")
	h.waitState(slow, "temp1@slow.test", StateDeferred, 1)
	testwait.For(t, "two deferrals at slow.test", func() bool {
		df := h.q.Deferring()
		return len(df) == 1 && df[0].Attempts == 2
	})
	df := h.q.Deferring()[0]
	if df.Destination != "slow.test" || df.LastReply != "451 4.2.0 try again later" || df.Host != "mx.slow.test" || !df.HeldUntil.IsZero() {
		t.Errorf("Deferring: %+v, want slow.test's 451 from mx.slow.test, not held", df)
	}
}

// TestRestartResumes enqueues without Run, reopens, and checks that Run
// delivers everything.
func TestRestartResumes(t *testing.T) {
	h := newHarness(t, Config{})
	var ids []string
	for range 50 {
		ids = append(ids, h.enqueue("s@example.org", "ok@a.test", "ok@b.test"))
	}
	h.close()
	h.open(Config{})
	if st := h.q.Stats(); st.Messages != 50 || st.Active != 100 {
		t.Fatalf("Stats after reopen: %+v", st)
	}
	h.run()
	for _, id := range ids {
		h.waitGone(id)
	}
	if n := len(h.d.requests(nil)); n != 100 {
		t.Errorf("%d requests, want 100", n)
	}
	// A message is gone from the database when its transaction commits;
	// the counts and the jobs in flight follow just after, in the
	// commit's callbacks.
	testwait.For(t, "the queue's counts to be empty", func() bool { return h.q.Stats() == (Stats{}) })
}

func TestApplyInvalid(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: time.Minute})
	err := h.q.Apply(Config{MinBackoff: time.Hour, MaxBackoff: time.Minute, Concurrency: -1})
	if err == nil || !strings.Contains(err.Error(), "max_backoff") || !strings.Contains(err.Error(), "concurrency") {
		t.Errorf("Apply: %v, want both problems", err)
	}
	if got := h.q.config().MinBackoff; got != time.Minute {
		t.Errorf("MinBackoff %v after a refused Apply, want 1m", got)
	}
}

func TestClosed(t *testing.T) {
	h := newHarness(t, Config{})
	q := h.q
	h.close()
	if _, err := q.Enqueue(t.Context(), Message{ID: "x", Rcpts: []string{"a@b"}, Direction: Inbound}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
}

// TestLateVerdictAfterDelivery: a message let through unscanned and
// delivered gets its verdict later, from a central that answers again:
// the queue, which no longer has it, does not take (and deliver) it again,
// across a reopen too.
func TestLateVerdictAfterDelivery(t *testing.T) {
	h := newHarness(t, Config{})
	h.run()
	m := Message{ID: "late", From: "s@example.org", Rcpts: []string{"ok@a.test"}, Direction: Inbound, Unscanned: true, Body: []byte("S: x\r\n\r\n")}
	if added, err := h.q.Enqueue(t.Context(), m); err != nil || !added {
		t.Fatalf("Enqueue unscanned: %v, %v; want added", added, err)
	}
	h.waitGone("late")
	h.close()
	h.open(Config{})
	h.run()
	m.Unscanned, m.Verdict = false, "clean"
	if added, err := h.q.Enqueue(t.Context(), m); err != nil || added {
		t.Fatalf("Enqueue with the late verdict: %v, %v; want not added", added, err)
	}
	if st := h.q.Stats(); st != (Stats{}) {
		t.Errorf("Stats after the late verdict: %+v, want an empty queue", st)
	}
	if n := len(h.d.requests(to("ok@a.test"))); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// TestDestinationChanged: a recipient whose destination changes with the
// configuration while it waits moves to its new destination at its next
// try and is delivered there; the one whose destination did not change
// stays where it was.
func TestDestinationChanged(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	h.d.mu.Lock()
	h.d.down["old.test"] = true
	h.d.mu.Unlock()
	h.run()
	id := h.enqueue("s@example.org", "u@old.test", "v@old.test")
	h.waitState(id, "v@old.test", StateDeferred, 1)
	h.d.mu.Lock()
	h.d.routes["v@old.test"] = "route:old.test"
	h.d.mu.Unlock()
	h.advance(10 * time.Minute)
	v := h.waitState(id, "v@old.test", StateDelivered, 2)
	if v.Destination != "route:old.test" {
		t.Errorf("v: %+v, want delivered at route:old.test", v)
	}
	if u, ok := h.rcptState(id, "u@old.test"); !ok || u.Destination != "old.test" || u.State != StateDeferred {
		t.Errorf("u: %+v, want still deferred at old.test", u)
	}
	h.checkCounts()
}
