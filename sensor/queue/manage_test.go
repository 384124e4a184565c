package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ospreysec/osprey/internal/testwait"
)

// TestManagement drives a message through the management calls with
// sending stopped, then resumed.
func TestManagement(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute, ReportingMTA: "gw.example.net"})
	h.run()
	// One deferred message first, while sending.
	deferred := h.enqueue("d@example.org", "temp@a.test", "ok@b.test")
	h.waitState(deferred, "temp@a.test", StateDeferred, 1)
	h.advance(time.Minute)
	h.q.SetSending(false)
	held := h.enqueue("h@example.org", "ok@a.test")
	deleted := h.enqueue("x@example.org", "ok@c.test", "ok2@c.test")
	bounced := h.enqueue("b@example.org", "ok@c.test")

	if err := h.q.Hold(t.Context(), held); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"nope"} {
		for name, err := range map[string]error{
			"Hold": h.q.Hold(t.Context(), id), "Release": h.q.Release(t.Context(), id),
			"RetryNow": h.q.RetryNow(t.Context(), id), "Delete": h.q.Delete(t.Context(), id, true),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s(%s): %v, want ErrNotFound", name, id, err)
			}
		}
	}
	if st := h.q.Stats(); st != (Stats{Messages: 4, Active: 3, Deferred: 1, Held: 1}) {
		t.Errorf("Stats: %+v", st)
	}

	list := func(f Filter) []string {
		t.Helper()
		p, err := h.q.List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range p.Entries {
			ids = append(ids, e.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{deferred, held, deleted, bounced}},
		{"deferred", Filter{State: StateDeferred}, []string{deferred}},
		{"held", Filter{State: StateHeld}, []string{held}},
		{"active", Filter{State: StateActive}, []string{deleted, bounced}},
		{"sender", Filter{Sender: "X@EXAMPLE"}, []string{deleted}},
		{"rcpt", Filter{Rcpt: "ok2"}, []string{deleted}},
		{"destination", Filter{Destination: "a.test"}, []string{deferred, held}},
		{"older than 30s", Filter{MinAge: 30 * time.Second}, []string{deferred}},
		{"younger than 30s", Filter{MaxAge: 30 * time.Second}, []string{held, deleted, bounced}},
	} {
		if diff := cmp.Diff(tc.want, list(tc.f)); diff != "" {
			t.Errorf("List %s (-want +got):\n%s", tc.name, diff)
		}
	}
	if _, err := h.q.List(t.Context(), Filter{State: StateDelivered}); err == nil {
		t.Errorf("List by state delivered: no error, want one (only waiting states are listed by)")
	}
	// Paging.
	var paged []string
	for f := (Filter{Limit: 3}); ; {
		p, err := h.q.List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			paged = append(paged, e.ID)
		}
		if p.Next == (Cursor{}) {
			break
		}
		f.After = p.Next
	}
	if diff := cmp.Diff([]string{deferred, held, deleted, bounced}, paged); diff != "" {
		t.Errorf("paged (-want +got):\n%s", diff)
	}

	e, _ := h.get(deferred)
	want := Entry{ID: deferred, From: "d@example.org", Arrival: e.Arrival, Size: e.Size, Verdict: "clean", Direction: Inbound}
	if e.Rcpts[1].Rcpt != "temp@a.test" || e.Rcpts[1].Destination != "a.test" || e.Rcpts[1].Attempts != 1 || e.Rcpts[1].LastCode != 451 ||
		e.Rcpts[0].State != StateDelivered || !e.Arrival.Equal(h.clock.Now().Add(-time.Minute)) {
		t.Errorf("Get: %+v", e)
	}
	e.Rcpts = nil
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}

	// Delete without a notice, and with one.
	if err := h.q.Delete(t.Context(), deleted, false); err != nil {
		t.Fatal(err)
	}
	if err := h.q.Delete(t.Context(), bounced, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.get(deleted); ok {
		t.Errorf("%s is still queued", deleted)
	}
	notices := list(Filter{Rcpt: "b@example.org"})
	if len(notices) != 1 || !strings.HasPrefix(notices[0], bounced+".failure.") {
		t.Fatalf("notices to b@example.org: %v", notices)
	}
	if n := list(Filter{Rcpt: "x@example.org"}); len(n) != 0 {
		t.Errorf("notices to x@example.org: %v", n)
	}

	// Resume: the notice goes, the held message stays, the deferred one
	// waits for its time; RetryNow and Release send them.
	h.q.SetSending(true)
	h.waitGone(notices[0])
	if r, _ := h.rcptState(held, "ok@a.test"); r.State != StateHeld {
		t.Errorf("held message: %+v", r)
	}
	h.d.mu.Lock()
	h.d.reqs = nil
	h.d.mu.Unlock()
	if err := h.q.RetryNow(t.Context(), deferred); err != nil {
		t.Fatal(err)
	}
	h.waitState(deferred, "temp@a.test", StateDeferred, 2)
	if err := h.q.Release(t.Context(), held); err != nil {
		t.Fatal(err)
	}
	h.waitGone(held)
	if n := len(h.d.requests(nil)); n != 2 {
		t.Errorf("%d requests after RetryNow and Release, want 2", n)
	}
	// Flush: the deferred one is tried once more at once.
	if err := h.q.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitState(deferred, "temp@a.test", StateDeferred, 3)
	if st := h.q.Stats(); st != (Stats{Messages: 1, Deferred: 1}) {
		t.Errorf("Stats: %+v", st)
	}
}

// TestLateVerdictWhileDeferred checks that a detection after delivery
// began quarantines only what was not delivered.
func TestLateVerdictWhileDeferred(t *testing.T) {
	h := newHarness(t, Config{})
	h.run()
	id := h.enqueue("s@example.org", "ok@a.test", "temp@b.test")
	h.waitState(id, "temp@b.test", StateDeferred, 1)
	if _, err := h.q.Enqueue(t.Context(), Message{ID: id, From: "s@example.org", Rcpts: []string{"ok@a.test", "temp@b.test"}, Direction: Inbound, Verdict: "detected", Quarantine: true}); err != nil {
		t.Fatal(err)
	}
	e, _ := h.get(id)
	got := []State{e.Rcpts[0].State, e.Rcpts[1].State}
	if !slices.Equal(got, []State{StateDelivered, StateQuarantined}) || e.Verdict != "detected" {
		t.Errorf("after the verdict: %v, %q", got, e.Verdict)
	}
}

// TestMetrics checks the series after deliveries.
func TestMetrics(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: time.Hour})
	h.run()
	h.enqueue("s@example.org", "ok@a.test", "perm@a.test")
	id := h.enqueue("s@example.org", "temp@b.test")
	h.waitState(id, "temp@b.test", StateDeferred, 1)
	// The queue counts an attempt in its metrics once its outcome is
	// stored: wait for the count of the notice's delivery, not only for
	// the notice to leave the queue.
	testwait.For(t, "the notice's delivery, stored and counted", func() bool {
		return h.q.Stats().Messages == 1 && testutil.ToFloat64(h.q.m.attempts.WithLabelValues("delivered", "example.org")) == 1
	})
	for _, tc := range []struct {
		result, dest string
		want         float64
	}{{"delivered", "a.test", 1}, {"bounced", "a.test", 1}, {"deferred", "b.test", 1}, {"delivered", "example.org", 1}} {
		if got := testutil.ToFloat64(h.q.m.attempts.WithLabelValues(tc.result, tc.dest)); got != tc.want {
			t.Errorf("attempts %s %s: %v, want %v", tc.result, tc.dest, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(h.q.m.dsns.WithLabelValues("failure")); got != 1 {
		t.Errorf("failure notices: %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(h.reg, "osprey_sensor_queue_delivered_latency_seconds", "osprey_sensor_queue_depth"); err != nil || n != 6 {
		t.Errorf("latency and depth series: %d, %v; want 1 + 5", n, err)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP osprey_sensor_queue_depth Recipients in the queue by state (active, deferred, held, quarantined), or messages.
# TYPE osprey_sensor_queue_depth gauge
osprey_sensor_queue_depth{state="active"} 0
osprey_sensor_queue_depth{state="deferred"} 1
osprey_sensor_queue_depth{state="held"} 0
osprey_sensor_queue_depth{state="messages"} 1
osprey_sensor_queue_depth{state="quarantined"} 0
`), "osprey_sensor_queue_depth"); err != nil {
		t.Error(err)
	}
	// The destination label is bounded.
	for i := range maxDestLabels + 10 {
		h.q.m.attempt("d"+string(rune('a'+i%26))+strings.Repeat("x", i), StateDelivered)
	}
	if got := testutil.ToFloat64(h.q.m.attempts.WithLabelValues("delivered", "other")); got == 0 {
		t.Errorf("no \"other\" destination after %d names", maxDestLabels+10)
	}
}

// TestDeleteWhileDelivering deletes a message under delivery: the
// attempt's outcome finds nothing to store, and the depths stay right.
func TestDeleteWhileDelivering(t *testing.T) {
	h := newHarness(t, Config{})
	h.d.gate = make(chan struct{})
	h.run()
	id := h.enqueue("s@example.org", "temp@a.test")
	testwait.For(t, "the delivery to start", func() bool { return len(h.d.requests(nil)) == 1 })
	if err := h.q.Delete(t.Context(), id, false); err != nil {
		t.Fatal(err)
	}
	close(h.d.gate)
	testwait.For(t, "the attempt's end", func() bool { return h.q.Stats().InFlight == 0 })
	if st := h.q.Stats(); st != (Stats{}) {
		t.Errorf("Stats: %+v, want empty", st)
	}
}

func FuzzHeaderSection(f *testing.F) {
	for _, s := range []string{"A: b\r\n\r\nbody", "A: b\n\nbody", "\r\nbody", "A: b\r\nC: d", "", "A: b\n\r\n\nx"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := headerSection(msg)
		if !strings.HasPrefix(string(msg), string(h)) {
			t.Fatalf("%q is not a prefix of %q", h, msg)
		}
		if strings.Contains(string(h), "\n\n") || strings.Contains(string(h), "\n\r\n") {
			t.Fatalf("%q holds an empty line", h)
		}
		if len(h) < len(msg) && !strings.HasPrefix(string(msg[len(h):]), "\n") && !strings.HasPrefix(string(msg[len(h):]), "\r\n") {
			t.Fatalf("%q does not end at an empty line of %q", h, msg)
		}
	})
}
