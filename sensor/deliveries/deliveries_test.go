package deliveries

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/queue"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// attempt is an attempt at message id with n recipients, delivered.
func attempt(id string, n int) queue.Attempt {
	a := queue.Attempt{ID: id, From: "alice@partner.test", Direction: queue.Inbound, Destination: "example.com", Started: t0}
	for i := range n {
		rcpt := fmt.Sprintf("r%d@example.com", i)
		a.Rcpts = append(a.Rcpts, queue.AttemptRcpt{Rcpt: rcpt, State: queue.StateDelivered,
			Reply: delivery.RcptResult{Rcpt: rcpt, Code: 250, Enhanced: "2.0.0", Text: "ok"}})
	}
	return a
}

func ids(as []*ospreyv1.DeliveryAttempt) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.GetMessageId())
	}
	return out
}

func TestConvert(t *testing.T) {
	l := New(Options{})
	next := t0.Add(10 * time.Minute)
	l.Attempted(queue.Attempt{
		ID: "m1", From: "alice@partner.test", Direction: queue.Outbound, Destination: "example.net", Started: t0,
		Result: delivery.Result{Host: "mx.example.net [192.0.2.25]:25", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256", Took: 1500 * time.Millisecond},
		Rcpts: []queue.AttemptRcpt{
			{Rcpt: "bob@example.net", State: queue.StateDelivered, Reply: delivery.RcptResult{Code: 250, Enhanced: "2.0.0", Text: "2.0.0 Ok: queued as 4F"}},
			{Rcpt: "carol@example.net", State: queue.StateDeferred, NextAttempt: next,
				Reply: delivery.RcptResult{Code: 451, Enhanced: "4.2.0", Text: strings.Repeat("x", 2000) + "\xff"}},
		},
	})
	got := l.Take()
	want := []*ospreyv1.DeliveryAttempt{{
		MessageId: "m1", Sender: "alice@partner.test", Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND,
		NextHop: "example.net", Host: "mx.example.net [192.0.2.25]:25", Tls: "TLS 1.3 TLS_AES_128_GCM_SHA256",
		Started: timestamppb.New(t0), Took: durationpb.New(1500 * time.Millisecond),
		Recipients: []*ospreyv1.DeliveryRecipient{
			{Address: "bob@example.net", State: ospreyv1.QueueState_QUEUE_STATE_DELIVERED, Code: 250, Enhanced: "2.0.0", Text: "2.0.0 Ok: queued as 4F"},
			{Address: "carol@example.net", State: ospreyv1.QueueState_QUEUE_STATE_DEFERRED, Code: 451, Enhanced: "4.2.0",
				Text: strings.Repeat("x", maxText), NextAttempt: timestamppb.New(next)},
		},
	}}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("reported attempt (-want +got):\n%s", d)
	}
	if l.Len() != 0 || l.Take() != nil {
		t.Errorf("%d left after the take", l.Len())
	}
}

func TestReportsAreBounded(t *testing.T) {
	l := New(Options{})
	l.Attempted(attempt("small-1", 600))
	l.Attempted(attempt("big", 2*MaxReport+1))
	l.Attempted(attempt("small-2", 1))
	var reports [][]string
	var rcpts []int
	for l.Len() > 0 {
		r := l.Take()
		n := 0
		for _, a := range r {
			n += len(a.GetRecipients())
		}
		if n > MaxReport {
			t.Fatalf("a report of %d recipients", n)
		}
		reports, rcpts = append(reports, ids(r)), append(rcpts, n)
	}
	// The big attempt is cut into parts of MaxReport; each part of an
	// attempt keeps its key, and no part shares a report with another
	// that would take it past the bound.
	wantReports := [][]string{{"small-1"}, {"big"}, {"big"}, {"big", "small-2"}}
	if d := cmp.Diff(wantReports, reports); d != "" {
		t.Errorf("reports (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{600, MaxReport, MaxReport, 2}, rcpts); d != "" {
		t.Errorf("recipients per report (-want +got):\n%s", d)
	}
}

func TestReturnGoesFirst(t *testing.T) {
	l := New(Options{})
	l.Attempted(attempt("a", 1))
	taken := l.Take()
	l.Attempted(attempt("b", 1))
	l.Return(taken)
	if got := ids(l.Take()); !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("after a report was given back: %v, want a then b", got)
	}
}

// logLines records the messages logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (h *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *logLines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logLines) WithGroup(string) slog.Handler            { return h }
func (h *logLines) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "recipients_dropped" {
			line += fmt.Sprintf(" %d", a.Value.Int64())
		}
		return true
	})
	h.lines = append(h.lines, line)
	return nil
}

func (h *logLines) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.lines)
}

func TestWaitingIsBoundedOldestDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &logLines{}
		l := New(Options{Logger: slog.New(logs)})
		for i := range MaxWaiting {
			l.Attempted(attempt(fmt.Sprintf("m%05d", i), 1))
		}
		if l.Len() != MaxWaiting || logs.count() != 0 || testutil.ToFloat64(l) != 0 {
			t.Fatalf("at the bound: %d waiting, %d log lines, %v dropped", l.Len(), logs.count(), testutil.ToFloat64(l))
		}
		// Past the bound, the oldest go, counted; the warning comes once
		// a minute at most.
		l.Attempted(attempt("new-1", 3))
		l.Attempted(attempt("new-2", 1))
		if l.Len() != MaxWaiting || testutil.ToFloat64(l) != 4 || logs.count() != 1 {
			t.Errorf("past the bound: %d waiting, %v dropped, %d log lines; want %d, 4, 1", l.Len(), testutil.ToFloat64(l), logs.count(), MaxWaiting)
		}
		time.Sleep(dropLogInterval - time.Second)
		l.Attempted(attempt("new-3", 1))
		if logs.count() != 1 {
			t.Errorf("%d log lines within a minute, want 1", logs.count())
		}
		time.Sleep(time.Second)
		l.Attempted(attempt("new-4", 1))
		if logs.count() != 2 || !strings.HasSuffix(logs.lines[0], " 3") || !strings.HasSuffix(logs.lines[1], " 3") {
			t.Errorf("a minute later: %q, want a line for the first 3 dropped, and one for the 3 dropped since", logs.lines)
		}

		// What is taken is the newest MaxWaiting, oldest first; a report
		// given back when more came in meanwhile loses its oldest.
		first := l.Take()
		if got := first[0].GetMessageId(); got != "m00006" {
			t.Errorf("oldest kept: %s, want m00006", got)
		}
		l.Attempted(attempt("new-5", MaxReport))
		l.Return(first)
		if l.Len() != MaxWaiting || testutil.ToFloat64(l) != 6+MaxReport || l.Dropped() != 6+MaxReport {
			t.Errorf("after a return past the bound: %d waiting, %v dropped", l.Len(), testutil.ToFloat64(l))
		}
		var last *ospreyv1.DeliveryAttempt
		for l.Len() > 0 {
			r := l.Take()
			last = r[len(r)-1]
		}
		if last.GetMessageId() != "new-5" {
			t.Errorf("newest: %s, want new-5", last.GetMessageId())
		}
	})
}

// TestNotifyWhenTheyPileUp: Notify is called once when NotifyAt results
// wait, not before, and again only after a report took them below it.
func TestNotifyWhenTheyPileUp(t *testing.T) {
	calls := 0
	l := New(Options{Notify: func() { calls++ }})
	l.Attempted(attempt("a", NotifyAt-1))
	if calls != 0 {
		t.Fatalf("notified at %d waiting, below %d", l.Len(), NotifyAt)
	}
	l.Attempted(attempt("b", 1))
	l.Attempted(attempt("c", 1))
	if calls != 1 {
		t.Fatalf("notified %d times reaching %d and past it, want once", calls, NotifyAt)
	}
	for l.Len() >= NotifyAt {
		l.Take()
	}
	l.Attempted(attempt("d", NotifyAt))
	if calls != 2 {
		t.Errorf("notified %d times in all, want again once they piled up after a report", calls)
	}
}
