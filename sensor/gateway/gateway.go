// Package gateway makes a sensor a mail gateway: it hands the messages a
// gateway listener took (their envelope has a direction) from the spool to
// the delivery queue once the Central Node's verdict is known, and applies
// the gateway's configuration to the queue and its delivery client.
//
// Design note. A gateway message is spooled like any other (fsynced before
// the 250) and uploaded like any other; the upload's answer carries the
// verdict and the central's disposition. Only then does the uploader call
// [Gateway.Handoff], which carries the disposition out: the message goes
// to the queue (durably, in one transaction) to be delivered with an
// X-Osprey-Verdict header (queue.VerdictHeader; one the message came with
// is removed), tagged first when the disposition says so; or it is
// withheld (see withhold.go): kept in the quarantine (package
// quarantine), or dropped with a notice. The message leaves the spool
// after the handoff returned, so a crash in between hands it off again
// after the restart, and every step is idempotent by message id.
//
// While no central answers, a message waits in the spool. Once it has
// waited hold_timeout_seconds, on_timeout decides: DELIVER_UNSCANNED hands
// it to the queue marked "unscanned" while it stays in the spool for its
// upload, and the verdict that comes later still reaches the queue (a
// detection then quarantines what was not delivered yet); KEEP_HOLDING
// leaves it in the spool. Unscanned mail therefore never leaves silently.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/quarantine"
	"github.com/ospreysec/osprey/sensor/queue"
	"github.com/ospreysec/osprey/sensor/spool"
)

// VerdictUnscanned is the verdict of a message delivered after its hold
// timeout, before a central scanned it.
const VerdictUnscanned = "unscanned"

// VerdictReleased is the verdict a message released from the quarantine
// is delivered with.
const VerdictReleased = "released"

// verdictDetected is the central's verdict of a message that raised an
// alert (central/scan.VerdictDetected).
const verdictDetected = "detected"

// Spool is what the gateway needs of the spool: the messages waiting for
// their verdict.
type Spool interface {
	List() []string
	Get(id string) (*spool.Message, error)
}

// Options configure a Gateway.
type Options struct {
	// Dir holds the delivery queue, QuarantineDir the quarantine.
	Dir           string
	QuarantineDir string
	Spool         Spool
	// Hostname is the default HELO name and the name in bounces.
	Hostname   string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Resolver answers the delivery client's DNS questions; nil means the
	// system's.
	Resolver delivery.Resolver
	// Now is the clock of the hold timeout; nil means time.Now.
	Now func() time.Time
	// OnAttempt receives every delivery attempt, for the audit log.
	OnAttempt func(queue.Attempt)
	// Events, when set, gets what happens in the quarantine on the
	// sensor's own account (a message its bounds removed, a quarantine
	// with nothing left to hold), for the central.
	Events *quarantine.Events
	// Notify, when set, is called when an operator changed a switch
	// (sending, receiving), for the sensor to report its status at once.
	// It must not block.
	Notify func()
}

// settings is an applied configuration, compiled.
type settings struct {
	enabled     bool // a gateway mode of an enabled integration
	holdTimeout time.Duration
	deliverLate bool   // on_timeout DELIVER_UNSCANNED
	helo        string // the gateway's name
	// quarantineMessages and quarantineBytes bound the quarantine.
	quarantineMessages int
	quarantineBytes    int64
	auth               authSettings
}

// Gateway is the delivery side of a gateway sensor. Open it, Apply each
// configuration, Run it, Close it after Run has returned.
type Gateway struct {
	opts       Options
	log        *slog.Logger
	now        func() time.Time
	client     *delivery.Client
	quarantine *quarantine.Quarantine
	queue      atomic.Pointer[queue.Queue] // nil until it could be opened
	set        atomic.Pointer[settings]

	openMu  sync.Mutex
	openErr error        // why the queue could not be opened yet
	qc      queue.Config // the queue's configuration, for an open that comes late
	applied bool         // qc was applied

	// configured is closed by the first Apply: the queue delivers only
	// once the client has its routes (a message tried before would be
	// deferred, "not configured yet", by the default backoff).
	configured     chan struct{}
	configuredOnce sync.Once

	// ctl are the operator's switches (see manage.go); ctlMu serializes
	// their changes.
	ctl   atomic.Pointer[controls]
	ctlMu sync.Mutex

	mu       sync.Mutex
	released map[string]bool // spooled messages handed off unscanned
	skip     map[string]bool // spooled messages that are no gateway's
}

// Open makes a gateway, opens (or creates) its quarantine in
// opts.QuarantineDir, which must succeed, and its delivery queue in
// opts.Dir. A queue that cannot be opened (a full disk) does not stop the
// sensor, which must go on draining its spool: Run tries again, gateway
// messages wait in the spool meanwhile, and Problem says why.
func Open(ctx context.Context, opts Options) (*Gateway, error) {
	g := &Gateway{opts: opts, log: opts.Logger, now: opts.Now, configured: make(chan struct{}),
		released: map[string]bool{}, skip: map[string]bool{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.opts.Hostname == "" {
		g.opts.Hostname, _ = os.Hostname()
	}
	g.client = delivery.New(delivery.Options{Logger: g.log.With("component", "delivery"), Resolver: opts.Resolver})
	g.set.Store(&settings{})
	qdir := opts.QuarantineDir
	if qdir == "" {
		qdir = filepath.Join(filepath.Dir(filepath.Clean(opts.Dir)), "quarantine")
	}
	var err error
	g.quarantine, err = quarantine.Open(quarantine.Options{Dir: qdir, Logger: g.log.With("component", "quarantine"),
		Registerer: opts.Registerer, OnEvict: func(e quarantine.Entry) {
			g.event(e.ID, ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED)
		}})
	if err != nil {
		return nil, err
	}
	if err := g.loadControls(); err != nil {
		// Not fatal: the switches are the operator's to set again.
		g.log.Warn("the gateway's switches are unreadable: sending and receiving", "err", err)
		g.ctl.Store(&controls{})
	}
	if err := g.openQueue(ctx); err != nil {
		g.log.Warn("the delivery queue cannot be opened; trying again", "err", err)
	}
	return g, nil
}

// openQueue opens the queue, and applies the configuration it missed.
func (g *Gateway) openQueue(ctx context.Context) error {
	q, err := queue.Open(ctx, queue.Options{
		Dir:        filepath.Clean(g.opts.Dir),
		Deliverer:  g.client,
		Logger:     g.log.With("component", "queue"),
		Registerer: g.opts.Registerer,
		OnAttempt:  g.opts.OnAttempt,
	})
	g.openMu.Lock()
	defer g.openMu.Unlock()
	if err != nil {
		g.openErr = fmt.Errorf("open the delivery queue: %w", err)
		return g.openErr
	}
	if g.applied {
		if err := q.Apply(g.qc); err != nil {
			q.Close()
			g.openErr = fmt.Errorf("configure the delivery queue: %w", err)
			return g.openErr
		}
	}
	g.openErr = nil
	q.SetSending(!g.ctl.Load().SendingStopped)
	g.queue.Store(q)
	return nil
}

// Queue returns the delivery queue, for its management; nil while it
// cannot be opened.
func (g *Gateway) Queue() *queue.Queue { return g.queue.Load() }

// Problem says why the delivery queue is not open; nil when it is.
func (g *Gateway) Problem() error {
	g.openMu.Lock()
	defer g.openMu.Unlock()
	return g.openErr
}

// Close closes the queue; Run must have returned.
func (g *Gateway) Close() error {
	if q := g.queue.Load(); q != nil {
		return q.Close()
	}
	return nil
}

// Apply compiles the gateway part of an SMTP integration and hands it to
// the delivery client and the queue. It changes nothing when cfg is
// refused; [Gateway.Check] says beforehand whether it would be.
func (g *Gateway) Apply(cfg *ospreyv1.SmtpIntegration) error {
	dc, qc, set, err := g.compile(cfg)
	if err != nil {
		return err
	}
	if err := g.client.Apply(dc); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.openMu.Lock()
	g.qc, g.applied = qc, true
	q := g.queue.Load()
	g.openMu.Unlock()
	if q != nil {
		if err := q.Apply(qc); err != nil {
			return fmt.Errorf("gateway.queue: %w", err)
		}
	}
	g.set.Store(set)
	g.quarantine.Apply(set.quarantineMessages, set.quarantineBytes)
	g.configuredOnce.Do(func() { close(g.configured) })
	return nil
}

// Check reports whether Apply would take cfg, changing nothing.
func (g *Gateway) Check(cfg *ospreyv1.SmtpIntegration) error {
	_, _, _, err := g.compile(cfg)
	return err
}

func (g *Gateway) compile(cfg *ospreyv1.SmtpIntegration) (delivery.Config, queue.Config, *settings, error) {
	gw := cfg.GetGateway()
	helo := gw.GetHeloName()
	if helo == "" {
		helo = g.opts.Hostname
	}
	dc := DeliveryConfig(gw, helo)
	q := validate.DeliveryQueue(gw.GetQueue())
	qc := queue.Config{
		MinBackoff:             seconds(q.GetMinBackoffSeconds()),
		MaxBackoff:             seconds(q.GetMaxBackoffSeconds()),
		MaxLifetime:            seconds(q.GetMaxLifetimeSeconds()),
		DelayWarning:           seconds(q.GetDelayWarningSeconds()),
		DestinationConcurrency: int(q.GetDestinationConcurrency()),
		Concurrency:            int(q.GetConcurrency()),
		ReportingMTA:           helo,
	}
	if err := dc.Validate(); err != nil {
		return dc, qc, nil, fmt.Errorf("gateway: %w", err)
	}
	if err := qc.Validate(); err != nil {
		return dc, qc, nil, fmt.Errorf("gateway.queue: %w", err)
	}
	hold := seconds(gw.GetHoldTimeoutSeconds())
	if hold == 0 {
		hold = validate.DefaultHoldTimeoutSeconds * time.Second
	}
	set := &settings{
		enabled:     cfg.GetEnabled() && validate.Gateway(cfg.GetMode()),
		holdTimeout: hold,
		deliverLate: gw.GetOnTimeout() != ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING,
		helo:        helo,
		auth:        compileAuth(gw, helo),
	}
	set.quarantineMessages, set.quarantineBytes = validate.QuarantineBounds(gw.GetQuarantine())
	return dc, qc, set, nil
}

func seconds(s uint32) time.Duration { return time.Duration(s) * time.Second }

// DeliveryConfig translates the gateway's routing into the delivery
// client's: each local domain to its hosts (or its MX), every other domain
// to the relay hosts (or its MX), and the domains that require TLS.
func DeliveryConfig(gw *ospreyv1.SmtpGateway, helo string) delivery.Config {
	hosts := func(hops []*ospreyv1.NextHop) []delivery.Host {
		var out []delivery.Host
		for _, h := range hops {
			out = append(out, delivery.Host{Host: h.GetHost(), Port: uint16(h.GetPort()), MX: h.GetMxLookup(), Preference: h.GetPreference()})
		}
		return out
	}
	c := delivery.Config{HeloName: helo, Default: delivery.Route{Hosts: hosts(gw.GetRelayHosts())}}
	for _, d := range gw.GetLocalDomains() {
		c.Routes = append(c.Routes, delivery.Route{Domain: d.GetDomain(), Hosts: hosts(d.GetHosts())})
		if d.GetRequireTls() {
			c.RequireTLS = append(c.RequireTLS, d.GetDomain())
		}
	}
	c.RequireTLS = append(c.RequireTLS, gw.GetRequireTlsDomains()...)
	return c
}

// Run runs the queue's deliveries, from the first Apply on, and the hold
// timeout until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.client.Run(ctx) })
	eg.Go(func() error {
		select {
		case <-g.configured:
		case <-ctx.Done():
			return nil
		}
		for g.queue.Load() == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
			if err := g.openQueue(ctx); err == nil {
				g.log.Info("delivery queue open")
			}
		}
		q := g.queue.Load()
		if err := g.withholdLeftovers(ctx, q); err != nil {
			g.log.Warn("messages quarantined in the delivery queue could not all be moved to the quarantine; trying at the next start", "err", err)
		}
		return q.Run(ctx)
	})
	eg.Go(func() error { return g.holdLoop(ctx) })
	return eg.Wait()
}

// Handoff carries out the central's decision for a gateway message from
// the spool: delivery (tagged first, for TAG), the quarantine, or a drop
// with a notice; verdict is the scan's, d the disposition (nil: from the
// verdict alone, see actionOf). It returns once the outcome is durable;
// the caller then removes the message from the spool. A message that is
// no gateway's (no direction) is not the gateway's business: Handoff
// returns nil at once. A message released from the quarantine before is
// delivered, not quarantined again.
func (g *Gateway) Handoff(ctx context.Context, msg *spool.Message, verdict string, d *ospreyv1.Disposition) error {
	env := msg.Meta.Envelope
	if env.GetDirection() == ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		return nil
	}
	r, err := msg.Open()
	if err != nil {
		return fmt.Errorf("hand off %s: %w", msg.ID, err)
	}
	defer r.Close()
	data := bytes.NewBuffer(make([]byte, 0, msg.Size+bytes.MinRead))
	if _, err := data.ReadFrom(r); err != nil {
		return fmt.Errorf("hand off %s: read the spooled message: %w", msg.ID, err)
	}
	// The queue puts the verdict on top when it delivers; one the message
	// arrived with is the sender's, and goes (filtered in place).
	body := withoutField(data.Bytes()[:0], data.Bytes(), queue.VerdictHeader)
	dir := queue.Inbound
	if env.GetDirection() == ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND {
		dir = queue.Outbound
	}
	action := actionOf(verdict, d)
	if withheld(action) && g.quarantine.Released(msg.ID) {
		action, verdict = ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER, VerdictReleased
	}
	m := queue.Message{
		ID:         msg.ID,
		From:       env.GetMailFrom(),
		Rcpts:      env.GetRcptTo(),
		Body:       g.authHeaders(body, env),
		Arrival:    env.GetReceivedAt().AsTime(),
		Direction:  dir,
		Verdict:    verdict,
		Unscanned:  verdict == VerdictUnscanned,
		Quarantine: withheld(action),
	}
	if action == ospreyv1.VerdictAction_VERDICT_ACTION_TAG {
		m.Body = tagMessage(m.Body, d.GetSubjectTag(), d.GetHeaders())
	}
	q := g.queue.Load()
	if q == nil {
		return fmt.Errorf("hand off %s: %w", msg.ID, g.Problem())
	}
	added, err := q.Enqueue(ctx, m)
	if err != nil {
		return fmt.Errorf("hand off %s: %w", msg.ID, err)
	}
	g.log.Debug("message handed to the delivery queue", "id", msg.ID, "verdict", verdict, "action", action, "added", added)
	if m.Quarantine {
		return g.withhold(ctx, q, msg.ID, action, d.GetReason())
	}
	return nil
}

// holdLoop hands to the queue, marked unscanned, each gateway message that
// has waited hold_timeout for its verdict, when on_timeout says so.
func (g *Gateway) holdLoop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := g.releaseHeld(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("hold timeout: a message could not be handed to the queue; trying again", "err", err)
		}
	}
}

// releaseHeld hands off the messages past their hold timeout once each.
func (g *Gateway) releaseHeld(ctx context.Context) error {
	set := g.set.Load()
	if !set.enabled || !set.deliverLate {
		return nil
	}
	cutoff := g.now().Add(-set.holdTimeout)
	ids := g.opts.Spool.List()
	g.forgetGone(ids)
	var errs []error
	for _, id := range ids {
		at, ok := spool.IDTime(id)
		if !ok {
			continue
		}
		if at.After(cutoff) {
			break // ids sort oldest first
		}
		g.mu.Lock()
		done := g.released[id] || g.skip[id]
		g.mu.Unlock()
		if done {
			continue
		}
		msg, err := g.opts.Spool.Get(id)
		if errors.Is(err, spool.ErrNotFound) {
			continue // uploaded meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if msg.Meta.Envelope.GetDirection() == ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
			g.mu.Lock()
			g.skip[id] = true
			g.mu.Unlock()
			continue
		}
		if err := g.Handoff(ctx, msg, VerdictUnscanned, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		g.log.Warn("no verdict within the hold timeout: delivered marked unscanned; it is scanned once a central answers",
			"id", id, "hold_timeout", set.holdTimeout)
		g.mu.Lock()
		g.released[id] = true
		g.mu.Unlock()
	}
	return errors.Join(errs...)
}

// forgetGone drops what the gateway remembers of messages that left the
// spool.
func (g *Gateway) forgetGone(ids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.released)+len(g.skip) == 0 {
		return
	}
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		live[id] = true
	}
	for id := range g.released {
		if !live[id] {
			delete(g.released, id)
		}
	}
	for id := range g.skip {
		if !live[id] {
			delete(g.skip, id)
		}
	}
}
