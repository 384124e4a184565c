package quarantine

import (
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of the events waiting for a report, and of one report.
const (
	MaxWaitingEvents = 10000
	maxReportEvents  = 1000
)

// Events holds what happened in the quarantine on the sensor's own account
// (evictions, a quarantine with nothing left to hold) until the agent
// reports it to the central, which updates its list of quarantined
// messages. Bounded: past MaxWaitingEvents the oldest are dropped, and the
// central's list then shows a message the sensor no longer holds until an
// operator's action finds it gone. Its methods are safe for concurrent use.
type Events struct {
	now func() time.Time

	mu      sync.Mutex
	waiting []*ospreyv1.QuarantineEvent
}

// NewEvents returns an empty buffer; now nil means time.Now.
func NewEvents(now func() time.Time) *Events {
	if now == nil {
		now = time.Now
	}
	return &Events{now: now}
}

// Add records that kind happened to message id.
func (ev *Events) Add(id string, kind ospreyv1.QuarantineEventKind) {
	e := &ospreyv1.QuarantineEvent{MessageId: id, Kind: kind, At: timestamppb.New(ev.now())}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.waiting = append(ev.waiting, e)
	if n := len(ev.waiting) - MaxWaitingEvents; n > 0 {
		ev.waiting = append(ev.waiting[:0:0], ev.waiting[n:]...)
	}
}

// Take hands over the events of one report, oldest first; nil when none
// waits.
func (ev *Events) Take() []*ospreyv1.QuarantineEvent {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := min(len(ev.waiting), maxReportEvents)
	if n == 0 {
		return nil
	}
	out := ev.waiting[:n:n]
	ev.waiting = ev.waiting[n:]
	return out
}

// Len is how many events wait to be reported.
func (ev *Events) Len() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return len(ev.waiting)
}

// Return puts back events a report could not carry, before the others.
func (ev *Events) Return(es []*ospreyv1.QuarantineEvent) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.waiting = append(es[:len(es):len(es)], ev.waiting...)
	if n := len(ev.waiting) - MaxWaitingEvents; n > 0 {
		ev.waiting = ev.waiting[n:]
	}
}
