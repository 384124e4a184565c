// Package deliveries keeps a gateway's delivery attempts until the agent
// reports them to the central, for its message audit log: each attempt
// (the message, the next hop, the host it reached, the TLS of the session)
// with the reply and the state it left each recipient in. The delivery
// queue hands every attempt over once its outcome is stored
// (queue.Options.OnAttempt); the agent takes them with each status it
// sends.
//
// The attempts wait in memory, bounded: past MaxWaiting recipients'
// results the oldest attempts are dropped, counted in a metric and
// logged, so a central out of reach for long costs bounded memory and
// loses the oldest entries of the log, never the mail (the queue has its
// own record of each recipient). Like the refusals, the log is a log, not
// a ledger: a report sent on a stream that then breaks is not sent again,
// and attempts waiting when the sensor stops are lost. A report the
// central does get twice (none is resent, but a central may store one and
// fail to answer) is recorded once: the central keys each row by its
// sensor, message, attempt start, next hop and recipient.
package deliveries

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/gateway"
	"github.com/ospreysec/osprey/sensor/queue"
)

// Bounds of what waits and of what one report carries. An attempt counts
// one per recipient, each a row of the central's audit log.
const (
	// MaxWaiting bounds the recipients' results waiting for a report.
	MaxWaiting = 10000
	// MaxReport bounds the recipients' results one report carries: a
	// report stays well under gRPC's message size however long its
	// replies. An attempt with more recipients waits as several parts of
	// at most MaxReport each.
	MaxReport = 1000
	// maxText bounds each reply's text; maxAddress each address and host.
	maxText    = 512
	maxAddress = 320
)

// dropLogInterval is the least time between two log lines about dropped
// attempts.
const dropLogInterval = time.Minute

// Options configure a Log.
type Options struct {
	// Logger receives a warning, at most once a minute, when attempts are
	// dropped; nil discards it.
	Logger *slog.Logger
	// Now is the clock of those warnings; nil means time.Now.
	Now func() time.Time
	// Notify, when set, is called when NotifyAt recipients' results
	// wait, for the agent to report before its next periodic status: a
	// busy gateway's attempts then go out as they come rather than pile
	// up to MaxWaiting between two statuses. It must not block.
	Notify func()
}

// NotifyAt is the number of waiting results at which Options.Notify is
// called: a few reports' worth.
const NotifyAt = 2 * MaxReport

// Log keeps attempts until Take hands them over. It is safe for
// concurrent use; Attempted never blocks on anything but its lock.
type Log struct {
	log     *slog.Logger
	now     func() time.Time
	notify  func()
	dropped prometheus.Counter
	// droppedTotal is the metric's value, for the sensor's status.
	droppedTotal atomic.Uint64

	mu      sync.Mutex
	waiting []*ospreyv1.DeliveryAttempt // oldest first
	rows    int                         // recipients in waiting
	// unlogged counts the results dropped since the last warning, logged
	// at loggedAt.
	unlogged int
	loggedAt time.Time
}

// New returns an empty Log. Register it with a Prometheus registry for
// its metric.
func New(opts Options) *Log {
	l := &Log{log: opts.Logger, now: opts.Now, notify: opts.Notify,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_sensor_audit_deliveries_dropped_total",
			Help: "Recipients' delivery results dropped before a report took them to the central's audit log: more than 10,000 waited.",
		})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

var _ prometheus.Collector = (*Log)(nil)

// Describe and Collect make the Log a Prometheus collector of its metric.
func (l *Log) Describe(ch chan<- *prometheus.Desc) { l.dropped.Describe(ch) }

// Collect sends the metric's value.
func (l *Log) Collect(ch chan<- prometheus.Metric) { l.dropped.Collect(ch) }

// Attempted keeps one attempt for the next report: the delivery queue's
// OnAttempt.
func (l *Log) Attempted(a queue.Attempt) {
	parts := convert(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.rows
	for _, p := range parts {
		l.waiting = append(l.waiting, p)
		l.rows += rows(p)
	}
	l.trim()
	if l.notify != nil && before < NotifyAt && l.rows >= NotifyAt {
		l.notify()
	}
}

// Take hands over the oldest attempts, up to MaxReport recipients' results
// (an attempt is never split across two reports), and forgets them.
func (l *Log) Take() []*ospreyv1.DeliveryAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, taken := 0, 0
	for n < len(l.waiting) && taken+rows(l.waiting[n]) <= MaxReport {
		taken += rows(l.waiting[n])
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*ospreyv1.DeliveryAttempt, n)
	copy(out, l.waiting)
	clear(l.waiting[:n])
	l.waiting = l.waiting[n:]
	l.rows -= taken
	return out
}

// Return gives back what Take handed over and could not be sent, so that
// the next report carries it; it goes before what came in meanwhile, and
// the bound drops the oldest first, as ever.
func (l *Log) Return(as []*ospreyv1.DeliveryAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	waiting := make([]*ospreyv1.DeliveryAttempt, 0, len(as)+len(l.waiting))
	waiting = append(append(waiting, as...), l.waiting...)
	for _, a := range as {
		l.rows += rows(a)
	}
	l.waiting = waiting
	l.trim()
}

// Dropped returns how many recipients' results were dropped since the
// Log was made: entries missing from the central's audit log.
func (l *Log) Dropped() uint64 { return l.droppedTotal.Load() }

// Len returns how many recipients' results wait.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rows
}

// trim drops the oldest attempts until MaxWaiting holds, and warns of it
// at most once a minute. Callers hold l.mu.
func (l *Log) trim() {
	n, dropped := 0, 0
	for l.rows-dropped > MaxWaiting {
		dropped += rows(l.waiting[n])
		n++
	}
	if n == 0 {
		return
	}
	clear(l.waiting[:n])
	l.waiting = l.waiting[n:]
	l.rows -= dropped
	l.dropped.Add(float64(dropped))
	l.droppedTotal.Add(uint64(dropped))
	l.unlogged += dropped
	if now := l.now(); l.loggedAt.IsZero() || now.Sub(l.loggedAt) >= dropLogInterval {
		l.log.Warn("delivery attempts dropped from the audit log: more waited for the central than the sensor keeps",
			"recipients_dropped", l.unlogged, "max_waiting", MaxWaiting)
		l.unlogged, l.loggedAt = 0, now
	}
}

// rows is how many rows of the audit log an attempt makes: one a
// recipient, and at least one.
func rows(a *ospreyv1.DeliveryAttempt) int { return max(len(a.GetRecipients()), 1) }

// convert makes an attempt the parts of at most MaxReport recipients that
// report it, its texts bounded.
func convert(a queue.Attempt) []*ospreyv1.DeliveryAttempt {
	p := gateway.AttemptProto(a)
	p.Sender, p.NextHop, p.Host, p.Tls = clip(p.Sender, maxAddress), clip(p.NextHop, maxAddress), clip(p.Host, maxAddress), clip(p.Tls, maxText)
	for _, r := range p.Recipients {
		r.Address, r.Enhanced, r.Text = clip(r.Address, maxAddress), clip(r.Enhanced, 32), clip(r.Text, maxText)
	}
	rcpts := p.Recipients
	p.Recipients = nil
	out := make([]*ospreyv1.DeliveryAttempt, 0, len(rcpts)/MaxReport+1)
	for {
		part := proto.CloneOf(p)
		n := min(len(rcpts), MaxReport)
		part.Recipients, rcpts = rcpts[:n], rcpts[n:]
		out = append(out, part)
		if len(rcpts) == 0 {
			return out
		}
	}
}

// clip cuts s to n bytes on a rune boundary, and makes it valid UTF-8: a
// protobuf string must be.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
