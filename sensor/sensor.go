// Package sensor is the Sensor: it wires the agent (enrollment and the
// configuration stream with the central nodes, in package agent) with the
// components that take mail in, which apply the configuration the agent
// receives. `osprey sensor` and a central node run with --sensor call [Run].
package sensor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/agent"
	"github.com/ospreysec/osprey/sensor/deliveries"
	"github.com/ospreysec/osprey/sensor/dnscache"
	"github.com/ospreysec/osprey/sensor/gateway"
	"github.com/ospreysec/osprey/sensor/pop3poll"
	"github.com/ospreysec/osprey/sensor/quarantine"
	"github.com/ospreysec/osprey/sensor/queue"
	"github.com/ospreysec/osprey/sensor/refusals"
	"github.com/ospreysec/osprey/sensor/smtpauth"
	"github.com/ospreysec/osprey/sensor/smtpd"
	"github.com/ospreysec/osprey/sensor/spool"
	"github.com/ospreysec/osprey/sensor/upload"
)

// Options configure a sensor.
type Options struct {
	// Central is the gRPC target of the central nodes ("host:port", or a
	// comma-separated list of them tried in turn, or
	// "dns:///name:port" to use every address the name resolves to).
	// Required to enroll; afterwards it overrides the stored target for
	// this run.
	Central string
	// JoinToken enrolls the sensor on its first start; it is ignored once
	// the data dir holds an identity.
	JoinToken string
	// DataDir holds the identity, the applied configuration and the spool
	// (with the UIDLs of the POP3 messages taken). Created with mode 0700.
	DataDir string
	// Name is the sensor's display name at enrollment; empty means the
	// host name.
	Name string
	// SoftwareVersion is reported to the central.
	SoftwareVersion string
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Appliers run each configuration, in order (see agent.MultiApplier).
	// None means the configuration is acknowledged and kept, and nothing
	// runs it.
	Appliers []agent.Applier
	// StatusSources report counters and health to the central.
	StatusSources []agent.StatusSource
	// Hostname names the sensor in SMTP greetings and Received headers;
	// empty means the machine's host name.
	Hostname string
	// Registerer receives the sensor's metrics while Run runs (a process
	// that also runs a central node passes the node's, which serves them on
	// its /metrics); nil makes the sensor's own registry, served on
	// MetricsAddr.
	Registerer prometheus.Registerer
	// MailboxLock, when set, makes sure one node at most polls a POP3
	// mailbox at a time (an etcd election on central nodes that run a
	// sensor component); nil means no coordination.
	MailboxLock pop3poll.Lock
	// MetricsAddr, when set (and Registerer nil), serves /metrics, /healthz
	// and /readyz (ready while the spool can take mail).
	MetricsAddr string
	// Notice, when set, receives the lines for the operator at the console:
	// the certificate fingerprint after enrollment, and that the sensor
	// waits for approval.
	Notice func(msg string)
	// SpoolMinFreeBytes is the free space of the spool's file system below
	// which the sensor refuses new mail (SMTP answers 421, POP3 mail stays
	// on its server) and reports an ALERT in its status, until uploads or
	// the operator free space; 0 means DefaultSpoolMinFree. It should hold
	// a message of the largest size the sensor accepts.
	SpoolMinFreeBytes int64
	// StatusInterval is how often the sensor sends its status to the
	// central; 0 means agent.DefaultStatusInterval (10 s).
	StatusInterval time.Duration
	// DNSServer is the DNS server (host:port, or an IP address for port
	// 53) that a gateway's sender authentication and its delivery ask.
	// Empty means the nameservers of /etc/resolv.conf for sender
	// authentication, and the system's resolver for delivery.
	DNSServer string
}

// Bounds of Options.SpoolMinFreeBytes, the --spool-min-free flag.
const (
	DefaultSpoolMinFree = spool.DefaultMinFreeBytes // 256 MiB
	MinSpoolMinFree     = 1 << 20                   // 1 MiB
)

// targets splits Central: a comma-separated list of targets, tried in turn.
func (o Options) targets() []string {
	var out []string
	for _, t := range strings.Split(o.Central, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Validate reports every problem of o that can be seen without the data dir.
func (o Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	for i, a := range o.Appliers {
		if a == nil {
			errs = append(errs, fmt.Errorf("appliers[%d] is nil", i))
		}
	}
	if n := o.SpoolMinFreeBytes; n < 0 || n > 0 && n < MinSpoolMinFree {
		errs = append(errs, fmt.Errorf("--spool-min-free: %d bytes: want at least 1 MB (1048576 bytes); the default is 256 MB", n))
	}
	if o.StatusInterval < 0 {
		errs = append(errs, fmt.Errorf("status interval %v is negative", o.StatusInterval))
	}
	if o.DNSServer != "" {
		if _, err := dnscache.ServerAddr(o.DNSServer); err != nil {
			errs = append(errs, fmt.Errorf("--dns-server: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run enrolls the sensor if its data dir holds no identity yet, then runs
// the agent until ctx is done. It returns nil when ctx is done.
func Run(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("sensor options: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	notice := opts.Notice
	if notice == nil {
		notice = func(string) {}
	}
	if err := enroll(ctx, opts, log.With("component", "enroll"), notice); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	id, err := agent.LoadIdentity(opts.DataDir)
	if err != nil {
		return err
	}
	var own *prometheus.Registry
	reg := &scopedRegisterer{Registerer: opts.Registerer}
	if opts.Registerer == nil {
		own = newRegistry()
		reg.Registerer = own
	}
	spoolDir := filepath.Join(opts.DataDir, "spool")
	sp, err := spool.Open(spool.Options{
		Dir:          spoolDir,
		MinFreeBytes: cmp.Or(opts.SpoolMinFreeBytes, DefaultSpoolMinFree),
		Logger:       log.With("component", "spool"),
	})
	if err != nil {
		return err
	}
	defer sp.Close()
	// Unregistered before the spool closes (defers run last first), so a
	// scrape never reads a closed spool.
	defer reg.unregisterAll()
	if err := reg.Register(spool.NewCollector(sp)); err != nil {
		return fmt.Errorf("register spool metrics: %w", err)
	}
	// A change of the poller's state, or of the gateway's switches, is
	// sent to the central at once, as are the delivery attempts when they
	// pile up.
	statusChanged := make(chan struct{}, 1)
	notify := func() {
		select {
		case statusChanged <- struct{}{}:
		default:
		}
	}
	// The gateway's delivery attempts go to the central's audit log.
	delivered := deliveries.New(deliveries.Options{Logger: log.With("component", "deliveries"), Notify: notify})
	if err := reg.Register(delivered); err != nil {
		return fmt.Errorf("register delivery report metrics: %w", err)
	}
	dns, err := newResolver(opts.DNSServer, log)
	if err != nil {
		return err
	}
	if dns.cache != nil {
		defer dns.cache.Close()
		if err := reg.Register(dnsCollector{dns.cache}); err != nil {
			return fmt.Errorf("register DNS metrics: %w", err)
		}
	}
	// The gateway's delivery queue is open in every mode: mail it holds
	// goes on being delivered after the sensor stops being a gateway.
	quarantined := quarantine.NewEvents(nil)
	gw, err := gateway.Open(ctx, gateway.Options{
		Dir:           filepath.Join(opts.DataDir, "queue"),
		QuarantineDir: filepath.Join(opts.DataDir, "quarantine"),
		Spool:         sp,
		Hostname:      opts.Hostname,
		Logger:        log.With("component", "gateway"),
		Registerer:    reg,
		OnAttempt:     delivered.Attempted,
		Events:        quarantined,
		Notify:        notify,
		Resolver:      dns.delivery,
	})
	if err != nil {
		return err
	}
	defer gw.Close()
	// Recipient verification keeps its cache on disk; it closes after the
	// listeners, which ask it until they stop.
	acc, err := openAccess(ctx, opts.DataDir, opts.Hostname, dns.delivery, log.With("component", "rcptverify"), reg)
	if err != nil {
		return err
	}
	defer acc.Close()
	refused := refusals.New()
	// The submission listener's credentials are checked against its
	// directory or SMTP server, behind one throttle and one cache for
	// both of its addresses.
	auth := smtpauth.New(smtpauth.Options{Logger: log.With("component", "smtpauth"), Hostname: opts.Hostname, Registerer: reg})
	smtp := newListeners(smtpd.Options{
		Refusals: refused,
		// An operator may stop the gateway receiving: the listeners then
		// turn mail away with 421, as when the spool cannot take it.
		Spool:         gatedSpool{sp, gw.Receiving},
		Hostname:      opts.Hostname,
		SensorID:      id.SensorID,
		Logger:        log.With("component", "smtp"),
		Registerer:    reg,
		Resolver:      dns.senderAuth,
		Verifier:      acc.verifier,
		Limiter:       acc.limiter,
		Authenticator: auth,
	})
	poller, err := pop3poll.New(pop3poll.Options{
		Spool: sp, Lock: opts.MailboxLock, Logger: log.With("component", "pop3"), Notify: notify,
	})
	if err != nil {
		return err
	}
	if err := reg.Register(newPOP3Collector(poller)); err != nil {
		return fmt.Errorf("register POP3 metrics: %w", err)
	}
	appliers := append([]agent.Applier{
		agent.ApplierFunc(func(ctx context.Context, cfg *ospreyv1.SensorConfig) error {
			// All or nothing: the gateway's part is checked before the
			// listeners take the configuration, and applied after.
			sub := submission(cfg.GetSmtp())
			if err := gw.Check(cfg.GetSmtp()); err != nil {
				return err
			}
			if err := auth.Check(sub); err != nil {
				return err
			}
			vc, lc, err := acc.compile(cfg.GetSmtp())
			if err != nil {
				return err
			}
			if err := smtp.Apply(ctx, cfg.GetSmtp(), cfg.GetAcceptance()); err != nil {
				return err
			}
			if err := acc.apply(vc, lc); err != nil {
				return err
			}
			if err := auth.Apply(sub); err != nil {
				return err // Check took it: cannot happen
			}
			return gw.Apply(cfg.GetSmtp())
		}),
		poller,
	}, opts.Appliers...)
	st := &status{spool: sp, spoolDir: spoolDir, smtp: smtp, pop3: poller, gateway: gw, deliveries: delivered, dns: dns, access: acc, auth: auth, now: time.Now}
	a, err := agent.New(agent.Options{
		DataDir:         opts.DataDir,
		Targets:         opts.targets(),
		SoftwareVersion: opts.SoftwareVersion,
		Applier:         agent.MultiApplier(appliers...),
		StatusSources:   append([]agent.StatusSource{st}, opts.StatusSources...),
		StatusInterval:  opts.StatusInterval,
		StatusChanged:   statusChanged,
		Refusals:        refused,
		Deliveries:      delivered,
		Quarantine:      quarantined,
		Requests:        gw,
		Logger:          log.With("component", "agent"),
	})
	if err != nil {
		return err
	}
	st.uploads = upload.New(upload.Options{
		Spool:      sp,
		Client:     a.Client,
		Logger:     log.With("component", "upload"),
		Registerer: reg,
		Handoff:    gw.Handoff,
	})
	// The spool closes (deferred above) only once g.Wait has returned, so
	// after smtp.Run: its sessions write to the spool until then.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return smtp.Run(gctx) })
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error { return st.uploads.Run(gctx) })
	g.Go(func() error { return poller.Run(gctx) })
	g.Go(func() error { return gw.Run(gctx) })
	g.Go(func() error { return auth.Run(gctx) })
	g.Go(func() error { return acc.Run(gctx) })
	if opts.MetricsAddr != "" && own != nil {
		g.Go(func() error { return serveMetrics(gctx, opts.MetricsAddr, own, sp.Check) })
	}
	return g.Wait()
}

// status reports the mail components' counters and health to the central,
// and each of them as a whole: SMTP, POP3 and the spool.
type status struct {
	spool    *spool.Spool
	spoolDir string
	smtp     *listeners
	gateway  *gateway.Gateway
	pop3     *pop3poll.Poller
	uploads  *upload.Uploader
	// deliveries are the delivery attempts waiting for a report.
	deliveries *deliveries.Log
	dns        resolvers
	auth       *smtpauth.Authenticator
	access     *access
	now        func() time.Time

	// mu guards spoolErrSince: since when the spool has been failing.
	mu            sync.Mutex
	spoolErrSince time.Time
}

func (s *status) Status() *ospreyv1.SensorStatus {
	out := &ospreyv1.SensorStatus{Counters: map[string]uint64{}, Healthy: true}
	sp := s.spool.Stats()
	out.Counters["spool_messages"] = uint64(sp.Messages)
	out.Counters["spool_bytes"] = uint64(sp.Bytes)
	smtp := s.smtp.Stats()
	out.Counters["smtp_connections"] = smtp.Connections
	out.Counters["smtp_accepted"] = smtp.Accepted
	out.Counters["smtp_accepted_bytes"] = smtp.AcceptedBytes
	if smtp.Authenticated > 0 {
		out.Counters["smtp_authenticated"] = smtp.Authenticated
	}
	for reason, n := range smtp.Rejected {
		out.Counters["smtp_rejected_"+reason] = n
	}
	maps.Copy(out.Counters, s.uploads.Counters())
	if q := s.gateway.Queue(); q != nil {
		st := q.Stats()
		out.Counters["queue_messages"] = uint64(st.Messages)
		out.Counters["queue_active"] = uint64(st.Active)
		out.Counters["queue_deferred"] = uint64(st.Deferred)
		out.Counters["queue_held"] = uint64(st.Held)
		out.Problems = append(out.Problems, deferringProblems(q.Deferring())...)
	} else if err := s.gateway.Problem(); err != nil {
		out.Problems = append(out.Problems, "ERROR: gateway: "+err.Error()+"; gateway mail waits in the spool")
	}
	if p := s.dns.problem(s.now()); p != "" {
		out.Problems = append(out.Problems, p)
	}
	cfg, lists := s.smtp.running()
	out.Problems = append(out.Problems, acceptanceProblems(smtp, cfg, lists, s.now())...)
	qs := s.gateway.Quarantine().Stats()
	if qs.Messages > 0 || s.gateway.Enabled() {
		out.Counters["quarantine_messages"] = uint64(qs.Messages)
		out.Counters["quarantine_bytes"] = uint64(qs.Bytes)
	}
	if len(qs.Unreadable) > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("WARNING: quarantine: %d damaged files left aside in %s (%s): not listed, not delivered; look at them, then remove them",
			len(qs.Unreadable), s.gateway.Quarantine().Dir(), strings.Join(qs.Unreadable[:min(len(qs.Unreadable), 5)], ", ")))
	}
	if g := s.gateway.State(); s.gateway.Enabled() || !g.GetSending() || !g.GetReceiving() {
		out.Gateway = g
		if !g.GetSending() {
			out.Problems = append(out.Problems, fmt.Sprintf("WARNING: gateway: sending stopped by an operator; %d messages wait in the queue", g.GetMessages()))
		}
		if !g.GetReceiving() {
			out.Problems = append(out.Problems, "WARNING: gateway: receiving stopped by an operator; the listeners answer 421")
		}
	}
	if stuck := s.uploads.Stuck(); len(stuck) > 0 {
		out.Problems = append(out.Problems, stuckProblem(stuck))
	}
	if n := s.deliveries.Dropped(); n > 0 {
		out.Counters["audit_deliveries_dropped"] = n
		out.Problems = append(out.Problems, fmt.Sprintf("WARNING: %d recipients' delivery results left out of the audit log since the sensor started: "+
			"more than %d waited for a report to the central", n, deliveries.MaxWaiting))
	}

	out.Spool = &ospreyv1.SpoolStatus{
		State:    ospreyv1.SpoolState_SPOOL_STATE_OK,
		Messages: uint64(sp.Messages),
		Bytes:    uint64(max(sp.Bytes, 0)),
	}
	if free, floor, err := s.spool.Disk(); err == nil {
		out.Spool.FreeBytes, out.Spool.MinFreeBytes = uint64(max(free, 0)), uint64(max(floor, 0))
	}
	out.Smtp = &ospreyv1.IntegrationStatus{
		State:    ospreyv1.IntegrationState_INTEGRATION_STATE_DISABLED,
		Messages: smtp.Accepted,
		Bytes:    smtp.AcceptedBytes,
		Refusals: smtp.Rejected,
	}
	if !smtp.LastAccepted.IsZero() {
		out.Smtp.LastSuccessAt = timestamppb.New(smtp.LastAccepted)
	}
	// The submission listener's source failing turns AUTH away (454),
	// not the other listeners' mail: a problem, and the sensor healthy.
	if p := s.auth.Problem(); p != "" {
		out.Problems = append(out.Problems, p)
		out.Smtp.Problems = append(out.Smtp.Problems, p)
	}
	if addrs := s.smtp.Addrs(); len(addrs) > 0 {
		out.Smtp.State = ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING
		targets := make([]string, len(addrs))
		for i, a := range addrs {
			targets[i] = a.String()
		}
		out.Smtp.Target = strings.Join(targets, ", ")
	}
	s.access.status(out)

	// Healthy says whether the sensor can take mail safely (the cluster's DNS
	// leaves out an unhealthy SMTP sensor): a failing POP3 mailbox reports its
	// problems, and its ALERT after a long failure, but does not stop SMTP.
	since, spoolErr := s.checkSpool()
	if spoolErr != nil {
		out.Healthy = false
		problem := spoolProblem(s.spoolDir, spoolErr)
		out.Problems = append(out.Problems, problem)
		out.Spool.State = ospreyv1.SpoolState_SPOOL_STATE_FAILING
		var low *spool.LowDiskError
		if errors.As(spoolErr, &low) {
			out.Spool.State = ospreyv1.SpoolState_SPOOL_STATE_LOW_DISK
			out.Spool.FreeBytes, out.Spool.MinFreeBytes = uint64(max(low.Free, 0)), uint64(max(low.Floor, 0))
		}
		out.Spool.Error = spoolErr.Error()
		out.Spool.Problems = []string{problem}
		// A listener that turns every message away fails as a whole; the
		// problem itself belongs to the spool.
		if out.Smtp.State == ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING {
			out.Smtp.State = ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING
			out.Smtp.LastError = "spool: " + spoolErr.Error()
			out.Smtp.LastErrorAt = timestamppb.New(since)
			out.Smtp.FailingSince = timestamppb.New(since)
		}
	}
	if p := s.pop3.Status(); p != nil {
		maps.Copy(out.Counters, p.GetCounters())
		out.Problems = append(out.Problems, p.GetProblems()...)
		out.Pop3 = p.GetPop3()
	}
	return out
}

// stuckProblem tells of the spooled messages that fail to upload on their
// own: they stay in the spool until the cause is fixed.
func stuckProblem(stuck []upload.Stuck) string {
	first := stuck[0]
	what := "1 spooled message fails"
	if len(stuck) > 1 {
		what = fmt.Sprintf("%d spooled messages fail", len(stuck))
	}
	return fmt.Sprintf("%s to upload, kept in the spool and retried (%s: %d tries, next at %s): %v",
		what, first.ID, first.Failures, first.Next.UTC().Format(time.RFC3339), first.Err)
}

// checkSpool checks the spool, and returns since when the spool has been
// failing (as these checks saw it) and its error.
func (s *status) checkSpool() (time.Time, error) {
	err := s.spool.Check()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.spoolErrSince = time.Time{}
		return time.Time{}, nil
	}
	if s.spoolErrSince.IsZero() {
		s.spoolErrSince = s.now()
	}
	return s.spoolErrSince, err
}

// spoolProblem is the status problem of a spool that cannot take mail. Low
// disk space is an ALERT, as a POP3 mailbox that fails for long is: nothing
// comes in until space is freed, and the sensor frees it by itself only if
// its spool is what fills the disk and a central takes the backlog.
func spoolProblem(dir string, err error) string {
	var low *spool.LowDiskError
	if errors.As(err, &low) {
		return fmt.Sprintf("%s spool %s: %v; SMTP answers 421 and POP3 mail stays on its server until space is freed",
			pop3poll.AlertPrefix, dir, low)
	}
	return "spool: " + err.Error()
}

// enroll enrolls the sensor unless the data dir holds an identity.
func enroll(ctx context.Context, opts Options, log *slog.Logger, notice func(string)) error {
	id, err := agent.LoadIdentity(opts.DataDir)
	switch {
	case err == nil:
		if opts.JoinToken != "" {
			log.Info("already enrolled; ignoring the join token", "sensor_id", id.SensorID, "tenant", id.Tenant)
		}
		return nil
	case !errors.Is(err, agent.ErrNotEnrolled):
		return err
	case opts.JoinToken == "":
		return fmt.Errorf("sensor is not enrolled in %s: give a join token (--join-token) and the central (--central)", opts.DataDir)
	case opts.Central == "":
		return errors.New("sensor is not enrolled: give the central (--central) to enroll with")
	}
	tok, err := jointoken.Parse(opts.JoinToken)
	if err != nil {
		return err
	}
	name := opts.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return fmt.Errorf("sensor name: none given and %w", err)
		}
	}
	target := opts.targets()[0]
	notice(fmt.Sprintf("Enrolling %q with %s ...", name, target))
	id, err = agent.Enroll(ctx, agent.EnrollOptions{
		Target:          target,
		Token:           tok,
		Name:            name,
		SoftwareVersion: opts.SoftwareVersion,
		DataDir:         opts.DataDir,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	notice(fmt.Sprintf("Enrolled as sensor %s in tenant %s.", id.SensorID, id.Tenant))
	notice("Certificate fingerprint (SHA-256): " + id.Fingerprint)
	if id.State != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		notice("Waiting for approval: an administrator must approve this sensor; compare the fingerprint above with the one the server list shows first.")
	}
	return nil
}

// submission returns the submission listener's settings of cfg, or nil
// when the integration does not run it (disabled, or not in an outbound
// mode): the Authenticator then holds no source and probes nothing.
func submission(cfg *ospreyv1.SmtpIntegration) *ospreyv1.SubmissionSettings {
	if !cfg.GetEnabled() || !validate.Outbound(cfg.GetMode()) {
		return nil
	}
	return cfg.GetGateway().GetSubmission()
}

// gatedSpool is the spool as the listeners see it: it takes no mail while
// gate says why not.
type gatedSpool struct {
	*spool.Spool
	gate func() error
}

func (g gatedSpool) Check() error {
	if err := g.gate(); err != nil {
		return err
	}
	return g.Spool.Check()
}

// maxDeferringProblems bounds the destinations named in the status.
const maxDeferringProblems = 5

// deferringProblems names the destinations whose last attempts deferred
// their mail, most attempts first.
func deferringProblems(ds []queue.Deferring) []string {
	var out []string
	for i, d := range ds {
		if i == maxDeferringProblems {
			out = append(out, fmt.Sprintf("WARNING: gateway: %d more destinations defer mail", len(ds)-i))
			break
		}
		p := fmt.Sprintf("WARNING: gateway: mail to %s is deferred: %d attempts in a row since %s; last reply: %s",
			d.Destination, d.Attempts, d.Since.UTC().Format(time.RFC3339), d.LastReply)
		if d.Host != "" {
			p += " (from " + d.Host + ")"
		}
		if !d.HeldUntil.IsZero() {
			p += "; unreachable: nothing tried before " + d.HeldUntil.UTC().Format(time.RFC3339)
		}
		out = append(out, p)
	}
	return out
}
