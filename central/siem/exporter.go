// Package siem exports alerts to a SIEM: each tenant's alerts, as CEF events
// in RFC 5424 syslog messages framed by octet counting (RFC 6587) over TCP or
// TLS, to the receiver of the tenant's SyslogExport.
//
// # Design
//
// The Exporter is the sending half of the export; package siemfeed feeds it
// from etcd, where every alert is stored first, on one central node at a
// time. [Exporter.Enqueue] appends an alert, with the etcd revision that
// stored it, to the bounded in-memory queue of its tenant's sink and
// returns; the feeder enqueues no more than [Exporter.Room] allows, and
// [Exporter.Delivered] tells it up to which revision the tenant's alerts
// are through, which it records in etcd. What is queued when a node stops
// or crashes is therefore not lost: the next node to export starts from
// that record. Should the queue be full all the same, the alert is
// dropped, counted in osprey_siem_dropped_total{tenant,reason}, and a
// warning is logged (at most once a minute per sink, with the count). Each
// sink has one sender goroutine, run by [Exporter.Run], that connects,
// writes the queued alerts in order, and reconnects after a failure with
// exponential backoff and jitter. New starts nothing: alerts enqueued
// before Run starts wait in their queues.
//
// Delivery is at least once, as far as TCP allows: syslog over TCP has no
// acknowledgement, so an alert written into a connection that then breaks
// may or may not have arrived. The sender keeps what it wrote on the
// current connection during the last Options.ResendWindow (default 30 s),
// and when that connection breaks (a write fails, or the receiver closes
// it, which a reader goroutine sees), it queues those alerts again, ahead
// of the rest. The kernel is told to give up on data unacknowledged for
// longer than the window (TCP_USER_TIMEOUT), so a receiver that vanished
// without closing is noticed within it. A SIEM may therefore see an alert
// twice; the alert id (externalId, cs3) tells the copies apart. An alert
// counts as delivered once it has been written and the window has passed
// with the connection up. Alerts still queued when a tenant's export is
// disabled are counted as dropped.
//
// The configuration of a sink changes at runtime through [Exporter.Apply],
// which hands it over and starts nothing: the queue stays, the sender
// closes its connection and connects to the new receiver, and Run starts
// the sender of a new sink. TLS verifies the receiver's certificate
// against the system roots plus the configured CA certificates, for
// server_name or else the host of the address.
package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of the zero Options fields.
const (
	DefaultQueueSize    = 10000
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = time.Minute
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultResendWindow = 30 * time.Second
)

// Reasons of drops, the label of osprey_siem_dropped_total.
const (
	DropQueueFull = "queue_full"
	DropDisabled  = "disabled"
)

// maxBatch bounds the alerts written in one write.
const maxBatch = 256

// Options configure an Exporter.
type Options struct {
	// Hostname is the HOSTNAME of the syslog messages; empty means the
	// machine's host name.
	Hostname string
	// Version is the device version of the CEF events (the Osprey
	// version).
	Version string
	// QueueSize bounds the alerts queued per sink; 0 means
	// DefaultQueueSize.
	QueueSize int
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts; 0 means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds a connection attempt with its TLS handshake;
	// WriteTimeout bounds a write. 0 means the defaults.
	DialTimeout, WriteTimeout time.Duration
	// ResendWindow is how long alerts written on a connection are kept to
	// be sent again should it break; 0 means DefaultResendWindow.
	ResendWindow time.Duration
	// Registerer receives the metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"queue_size", int64(o.QueueSize)}, {"min_backoff", int64(o.MinBackoff)}, {"max_backoff", int64(o.MaxBackoff)},
		{"dial_timeout", int64(o.DialTimeout)}, {"write_timeout", int64(o.WriteTimeout)}, {"resend_window", int64(o.ResendWindow)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// metrics of an Exporter.
type metrics struct {
	sent    *prometheus.CounterVec
	dropped *prometheus.CounterVec
	queue   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_siem_sent_total",
			Help: "Alerts written to a tenant's syslog receiver (a resent alert counts again).",
		}, []string{"tenant"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_siem_dropped_total",
			Help: "Alerts not exported: queue_full (more than the queue holds were enqueued), disabled (queued when the export was turned off).",
		}, []string{"tenant", "reason"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "osprey_siem_queue_length",
			Help: "Alerts queued for a tenant's syslog receiver.",
		}, []string{"tenant"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.dropped, m.queue)
	}
	return m
}

// Exporter sends each tenant's alerts to its syslog receiver.
type Exporter struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	procID  string
	added   chan struct{} // Apply made a sink: Run starts its sender

	mu    sync.Mutex
	sinks map[string]*sink
}

// New returns an Exporter with no sinks; Apply adds them, and Run sends.
func New(opts Options) (*Exporter, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("siem exporter options: %w", err)
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	opts.Hostname = sanitizeHostname(opts.Hostname)
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.ResendWindow == 0 {
		opts.ResendWindow = DefaultResendWindow
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Exporter{
		opts:    opts,
		log:     log,
		metrics: newMetrics(opts.Registerer),
		procID:  strconv.Itoa(os.Getpid()),
		added:   make(chan struct{}, 1),
		sinks:   map[string]*sink{},
	}, nil
}

// Apply sets the export of tenant: nil or disabled removes its sink (the
// alerts still queued are counted as dropped); otherwise the sink is made,
// or takes the new settings from its next connection on, keeping its
// queue. It validates cfg, starts nothing (Run sends) and never waits for
// the network.
func (e *Exporter) Apply(tenant string, cfg *ospreyv1.SyslogExport) error {
	if cfg != nil {
		if err := validate.SyslogExport(cfg); err != nil {
			return fmt.Errorf("syslog export of tenant %s: %w", tenant, err)
		}
	}
	var tc *tls.Config
	if cfg.GetEnabled() && cfg.GetTls() {
		var err error
		if tc, err = tlsConfig(cfg); err != nil {
			return fmt.Errorf("syslog export of tenant %s: %w", tenant, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sinks[tenant]
	if !cfg.GetEnabled() {
		if s != nil {
			delete(e.sinks, tenant)
			s.stop(DropDisabled)
		}
		return nil
	}
	st := &settings{cfg: proto.CloneOf(cfg), tls: tc}
	st.header = Header{
		Facility: int(cfg.GetFacility()),
		Hostname: e.opts.Hostname,
		AppName:  cfg.GetAppName(),
		ProcID:   e.procID,
		MsgID:    MsgID,
	}
	if st.header.Facility == 0 {
		st.header.Facility = validate.DefaultSyslogFacility
	}
	if st.header.AppName == "" {
		st.header.AppName = validate.DefaultSyslogAppName
	}
	if s != nil {
		s.reconfigure(st)
		return nil
	}
	e.sinks[tenant] = e.newSink(tenant, st)
	signal(e.added)
	return nil
}

// Enqueue queues alert, which etcd stored at revision rev, for its
// tenant's receiver and returns at once. It reports whether the alert was
// queued: false when the tenant exports nothing, or when the queue is full
// (the drop is counted and logged). Alerts are to be enqueued in the order
// of their revisions. The caller must not modify alert afterwards.
func (e *Exporter) Enqueue(alert *ospreyv1.Alert, rev int64) bool {
	s := e.sink(alert.GetTenant())
	if s == nil {
		return false
	}
	return s.enqueue(item{alert, rev})
}

// Room returns how many alerts of tenant may be enqueued now: the queue's
// free places, less those the alerts in the resend window would take
// should the connection break. It is 0 when the tenant exports nothing.
func (e *Exporter) Room(tenant string) int {
	s := e.sink(tenant)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, e.opts.QueueSize-len(s.queue)-s.window.n)
}

// Delivered returns the revision up to which tenant's enqueued alerts are
// through: every alert enqueued with a revision up to it was written and
// outlived the resend window, or was dropped. It is the revision before
// the oldest alert still queued or in the window, or the last revision
// enqueued when none is. ok is false when the tenant exports nothing.
func (e *Exporter) Delivered(tenant string) (rev int64, ok bool) {
	s := e.sink(tenant)
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.window.n > 0:
		return s.window.oldest - 1, true
	case len(s.queue) > 0:
		return s.queue[0].rev - 1, true
	}
	return s.lastRev, true
}

func (e *Exporter) sink(tenant string) *sink {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sinks[tenant]
}

// Run runs the sender of every sink, those Apply makes later too, until
// ctx ends. Then it stops every sink, as Release does, and returns once
// every sender has ended, after its write in progress (bounded by
// WriteTimeout). What is still queued is left to the next node to export
// (see the package comment).
func (e *Exporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer e.Release()
	for {
		e.mu.Lock()
		for _, s := range e.sinks {
			if s.cancel == nil {
				sctx, cancel := context.WithCancel(ctx)
				s.cancel = cancel
				wg.Go(func() { s.run(sctx) })
			}
		}
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-e.added:
		}
	}
}

// Release stops every sink, as when this node stops exporting for another
// to take over: what is still queued is left to that node and not counted
// as dropped. Apply makes sinks again.
func (e *Exporter) Release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for t, s := range e.sinks {
		delete(e.sinks, t)
		s.stop("")
	}
}

// tlsConfig verifies the receiver against the system roots plus ca_pem,
// for server_name or the address's host.
func tlsConfig(cfg *ospreyv1.SyslogExport) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if ca := cfg.GetCaPem(); ca != "" && !roots.AppendCertsFromPEM([]byte(ca)) {
		return nil, errors.New("ca_pem: no certificate")
	}
	name := cfg.GetServerName()
	if name == "" {
		name, _, _ = net.SplitHostPort(cfg.GetAddress())
	}
	return &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// settings are a sink's configuration, ready to use.
type settings struct {
	cfg    *ospreyv1.SyslogExport
	tls    *tls.Config
	header Header
}

// sink is one tenant's queue and sender.
type sink struct {
	e      *Exporter
	tenant string
	log    *slog.Logger
	// cancel stops the sender; nil until Run starts it. The Exporter's
	// mutex guards it.
	cancel context.CancelFunc
	wake   chan struct{} // an alert was queued
	reconf chan struct{} // the settings changed

	mu       sync.Mutex
	stopped  bool // the sink left the Exporter: it takes no more alerts
	st       *settings
	queue    []item // FIFO; queue[0] goes next
	lastRev  int64  // of the last alert enqueued
	window   windowMirror
	dropped  int // since the last warning
	warnedAt time.Time

	sent    prometheus.Counter
	dropFul prometheus.Counter
	length  prometheus.Gauge
}

func (e *Exporter) newSink(tenant string, st *settings) *sink {
	return &sink{
		e: e, tenant: tenant, st: st,
		log:    e.log.With("tenant", tenant),
		wake:   make(chan struct{}, 1),
		reconf: make(chan struct{}, 1),

		sent:    e.metrics.sent.WithLabelValues(tenant),
		dropFul: e.metrics.dropped.WithLabelValues(tenant, DropQueueFull),
		length:  e.metrics.queue.WithLabelValues(tenant),
	}
}

// item is a queued alert and the revision that stored it.
type item struct {
	alert *ospreyv1.Alert
	rev   int64
}

// windowMirror is what the sender has in its resend window, for Room and
// Delivered: how many alerts, and the revision of the oldest.
type windowMirror struct {
	n      int
	oldest int64
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *sink) enqueue(it item) bool {
	s.mu.Lock()
	if s.stopped { // just now
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.e.opts.QueueSize {
		s.dropLocked(1)
		s.lastRev = max(s.lastRev, it.rev)
		s.mu.Unlock()
		return false
	}
	s.lastRev = max(s.lastRev, it.rev)
	s.queue = append(s.queue, it)
	s.length.Set(float64(len(s.queue)))
	s.mu.Unlock()
	signal(s.wake)
	return true
}

// dropLocked counts n alerts dropped because the queue is full, and warns
// at most once a minute.
func (s *sink) dropLocked(n int) {
	s.dropFul.Add(float64(n))
	s.dropped += n
	if now := time.Now(); now.Sub(s.warnedAt) >= time.Minute {
		s.log.Warn("syslog export queue full: alerts dropped", "dropped", s.dropped, "queue_size", s.e.opts.QueueSize,
			"address", s.st.cfg.GetAddress())
		s.warnedAt, s.dropped = now, 0
	}
}

// requeue puts alerts back at the head of the queue, in order, and
// empties the window they come from. Room keeps a place for each of them,
// so they fit unless more than Room allowed were enqueued; what does not
// fit is dropped.
func (s *sink) requeue(alerts []item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = windowMirror{}
	if len(alerts) == 0 {
		return
	}
	room := s.e.opts.QueueSize - len(s.queue)
	if room < len(alerts) {
		s.dropLocked(len(alerts) - max(room, 0))
		alerts = alerts[len(alerts)-max(room, 0):]
	}
	s.queue = append(append(make([]item, 0, len(alerts)+len(s.queue)), alerts...), s.queue...)
	s.length.Set(float64(len(s.queue)))
}

// setWindow mirrors the sender's resend window.
func (s *sink) setWindow(w []written) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = windowMirror{n: len(w)}
	if len(w) > 0 {
		s.window.oldest = w[0].rev
	}
}

// peek returns up to n alerts from the head of the queue.
func (s *sink) peek(n int) ([]item, *settings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue[:min(n, len(s.queue)):min(n, len(s.queue))], s.st
}

// pop removes n alerts from the head of the queue.
func (s *sink) pop(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.queue)) // stop may have emptied it meanwhile
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.length.Set(float64(len(s.queue)))
}

func (s *sink) reconfigure(st *settings) {
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	signal(s.reconf)
	signal(s.wake)
}

// stop ends the sender, if Run started it; the alerts it leaves queued
// are counted as dropped for reason, unless reason is "" (see Release).
// The Exporter's mutex is held.
func (s *sink) stop(reason string) {
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Lock()
	s.stopped = true
	n := len(s.queue)
	s.queue = nil
	s.mu.Unlock()
	s.length.Set(0)
	if n > 0 && reason != "" {
		s.e.metrics.dropped.WithLabelValues(s.tenant, reason).Add(float64(n))
		s.log.Warn("syslog export stopped with alerts queued: dropped", "dropped", n, "reason", reason)
	}
}

// conn is a connection to the receiver and what was written on it.
type conn struct {
	net.Conn
	broken  chan struct{} // closed when the receiver closed it or reading failed: its reader ended
	written []written
}

// close closes c and waits for its reader to end.
func (c *conn) close() {
	c.Close()
	<-c.broken
}

type written struct {
	item
	at time.Time
}

// run is the sender, until ctx ends: see the package comment.
func (s *sink) run(ctx context.Context) {
	var c *conn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	failures := 0
	buf := make([]byte, 0, 64<<10)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reconf:
			c = s.closeForReconf(c)
			continue
		default:
		}
		if c != nil && isClosed(c.broken) {
			s.broken(c, errors.New("closed by the receiver"))
			c = nil
		}
		batch, st := s.peek(maxBatch)
		if len(batch) == 0 {
			var broken <-chan struct{} // nil blocks
			var expire <-chan time.Time
			stopTimer := func() bool { return false }
			if c != nil {
				broken = c.broken
				if len(c.written) > 0 {
					// Idle: the window still empties as it expires,
					// so that Delivered moves on.
					t := time.NewTimer(time.Until(c.written[0].at.Add(s.e.opts.ResendWindow)) + time.Millisecond)
					expire, stopTimer = t.C, t.Stop
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			case <-broken: // handled at the top: what it took goes again
			case <-expire:
				c.remember(nil, time.Now(), s.e.opts.ResendWindow, s.e.opts.QueueSize)
				s.setWindow(c.written)
			case <-s.reconf:
				c = s.closeForReconf(c)
			}
			stopTimer()
			continue
		}
		if c == nil {
			var err error
			if c, err = s.dial(ctx, st); err != nil {
				failures++
				if failures == 1 || failures%10 == 0 {
					s.log.Warn("cannot connect to the syslog receiver", "address", st.cfg.GetAddress(), "err", err, "failures", failures)
				}
				if !s.backoff(ctx, failures) {
					return
				}
				continue
			}
			if failures > 0 {
				s.log.Info("connected to the syslog receiver", "address", st.cfg.GetAddress(), "after_failures", failures)
			}
			failures = 0
		}
		now := time.Now()
		buf = buf[:0]
		for _, it := range batch {
			a := it.alert
			msg := AppendMessage(nil, st.header, SyslogSeverity(a.GetSeverity()), createdAt(a, now), CEF(a, s.e.opts.Version))
			buf = AppendFrame(buf, msg)
		}
		c.SetWriteDeadline(now.Add(s.e.opts.WriteTimeout))
		if _, err := c.Write(buf); err != nil {
			// The batch stays queued; what the connection had taken in
			// the resend window goes back ahead of it.
			s.broken(c, err)
			c = nil
			failures++
			if !s.backoff(ctx, failures) {
				return
			}
			continue
		}
		c.remember(batch, now, s.e.opts.ResendWindow, s.e.opts.QueueSize)
		s.setWindow(c.written)
		s.pop(len(batch))
		s.sent.Add(float64(len(batch)))
	}
}

// closeForReconf closes c, if any, for the sender to connect to the new
// receiver; what c took was meant for the old one, which has it, so its
// window is not sent again.
func (s *sink) closeForReconf(c *conn) *conn {
	if c != nil {
		c.close()
		s.setWindow(nil)
	}
	return nil
}

// broken closes c and queues again what was written on it lately.
func (s *sink) broken(c *conn, err error) {
	c.close()
	alerts := make([]item, len(c.written))
	for i, w := range c.written {
		alerts[i] = w.item
	}
	s.requeue(alerts)
	s.log.Warn("syslog connection broke; sending the alerts of the last moments again", "address", c.RemoteAddr().String(), "err", err, "resent", len(alerts))
}

// remember records batch as written at now, and forgets what is older
// than window, and what is beyond the last limit alerts.
func (c *conn) remember(batch []item, now time.Time, window time.Duration, limit int) {
	i := max(0, len(c.written)+len(batch)-limit)
	for i < len(c.written) && now.Sub(c.written[i].at) > window {
		i++
	}
	i = min(i, len(c.written))
	c.written = append(c.written[:0], c.written[i:]...)
	for _, it := range batch {
		c.written = append(c.written, written{it, now})
	}
}

// backoff waits after failures failed attempts: exponential from
// MinBackoff to MaxBackoff, with jitter (a random half of it). It reports
// false when the sender must stop.
func (s *sink) backoff(ctx context.Context, failures int) bool {
	d := s.e.opts.MinBackoff
	for i := 1; i < failures && d < s.e.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.e.opts.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.reconf:
		signal(s.reconf) // the loop closes the connection and takes the settings
		return true
	case <-t.C:
		return true
	}
}

// dial connects to the receiver of st. The connection's reader ends when
// it is closed (conn.close waits for it).
func (s *sink) dial(ctx context.Context, st *settings) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.e.opts.DialTimeout)
	defer cancel()
	d := &net.Dialer{KeepAlive: 15 * time.Second, Control: userTimeout(s.e.opts.ResendWindow)}
	var nc net.Conn
	var err error
	if st.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: st.tls}).DialContext(ctx, "tcp", st.cfg.GetAddress())
	} else {
		nc, err = d.DialContext(ctx, "tcp", st.cfg.GetAddress())
	}
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, broken: make(chan struct{})}
	// A syslog receiver never sends: a read returns when it closes the
	// connection or the connection fails.
	go func() {
		io.Copy(io.Discard, nc)
		close(c.broken)
	}()
	return c, nil
}

// userTimeout sets TCP_USER_TIMEOUT: the kernel gives up on a connection
// whose data stays unacknowledged for d.
func userTimeout(d time.Duration) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set TCP_USER_TIMEOUT: %w", serr)
		}
		return nil
	}
}

// createdAt is the alert's time, or now when it has none.
func createdAt(a *ospreyv1.Alert, now time.Time) time.Time {
	if t := a.GetCreatedAt(); t != nil {
		return t.AsTime()
	}
	return now
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
