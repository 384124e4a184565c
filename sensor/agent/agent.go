package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of [Options].
const (
	DefaultStatusInterval = 10 * time.Second
	// backoffReset is how long a stream must have lived for the next
	// failure to count as the first again.
	backoffReset = 30 * time.Second
	// maxAppliedFile bounds config/applied.pb.
	maxAppliedFile = 64 << 20
)

// Options configure an [Agent].
type Options struct {
	// DataDir holds the identity ([Enroll] stored it there) and the last
	// applied configuration.
	DataDir string
	// Targets are the central nodes' gRPC targets, tried in turn; empty
	// means those stored at enrollment.
	Targets []string
	// SoftwareVersion is reported to the central in Hello.
	SoftwareVersion string
	// Applier runs each configuration. Required; see [MultiApplier] to
	// compose several.
	Applier Applier
	// StatusSources report counters and health in the periodic status.
	StatusSources []StatusSource
	// Refusals, when set, hands over the refused attempts to report with
	// each status, for the central's message audit log.
	Refusals RefusalSource
	// Deliveries, when set, hands over a gateway's delivery attempts to
	// report with each status, for the central's message audit log.
	Deliveries DeliverySource
	// Quarantine, when set, hands over a gateway's quarantine events to
	// report with each status, for the central's list of quarantined
	// messages.
	Quarantine QuarantineSource
	// Requests, when set, answers the operators' requests the central
	// hands the sensor (a gateway's queue management); nil answers that
	// the sensor takes none.
	Requests RequestHandler
	// StatusInterval is how often status is sent; zero means
	// [DefaultStatusInterval].
	StatusInterval time.Duration
	// StatusChanged, when set, makes the agent send its status at once
	// (while a stream is up) whenever it receives: a source whose state
	// changed sends on it (without blocking, into a buffer of one), so
	// that the operator learns of a failure without waiting for the next
	// periodic status.
	StatusChanged <-chan struct{}
	// Logger receives the agent's log lines, tagged component=agent; nil
	// discards them.
	Logger *slog.Logger
	// Retry is how long to wait before reconnecting after failed attempt n
	// (counted from 0, and from 0 again after a stream that lived longer
	// than 30 s) that ended with err; nil means [DefaultRetry].
	Retry func(attempt int, err error) time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// dialOptions are added to every client connection's (tests).
	dialOptions []grpc.DialOption
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if o.Applier == nil {
		errs = append(errs, errors.New("applier is nil"))
	}
	if o.StatusInterval < 0 {
		errs = append(errs, fmt.Errorf("status interval %v is negative", o.StatusInterval))
	}
	for i, t := range o.Targets {
		if t == "" {
			errs = append(errs, fmt.Errorf("targets[%d] is empty", i))
		}
	}
	return errors.Join(errs...)
}

// State is what an [Agent] is doing, for the command and for tests.
type State struct {
	// Connected is true while a stream is up: the central answered it.
	Connected bool
	// Target is the target of the stream up, or of the last one tried.
	Target string
	// AppliedRevision is the revision of the configuration running now, 0
	// when none is.
	AppliedRevision int64
	// LastError is the last failure: of a stream, of an apply, of a
	// renewal. It is kept after the sensor recovers; LastErrorAt says when.
	LastError   error
	LastErrorAt time.Time
	// Fingerprint is the SHA-256 (hex) of the client certificate in use, and
	// NotAfter its expiry.
	Fingerprint string
	NotAfter    time.Time
}

// Agent holds a sensor's stream with the central nodes and applies the
// configuration it receives. Make one with [New] and call [Agent.Run].
type Agent struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	retry    func(int, error) time.Duration
	interval time.Duration
	targets  []string
	identity pki.Identity
	id       *Identity // as loaded; its Certificate is the one of New
	// pair is the client key pair the next handshake presents.
	pair    atomic.Pointer[tls.Certificate]
	running atomic.Bool

	// applied, problem, renewFrom and renewUntil are owned by the goroutine
	// of Run.
	applied *ospreyv1.SensorConfig
	problem string // why the last configuration received was not applied
	// renewFrom and renewUntil are the renewal window the central sent, in
	// percent of a certificate's lifetime; zero until it sent one.
	renewFrom, renewUntil int

	mu      sync.Mutex
	state   State
	changed chan struct{}

	// conns are the connections of Client, by target.
	connsMu     sync.Mutex
	conns       map[string]*grpc.ClientConn
	connsClosed bool
}

// New loads the identity in opts.DataDir (an error matches [ErrNotEnrolled]
// when there is none) and makes an agent. It does not connect.
func New(opts Options) (*Agent, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("agent options: %w", err)
	}
	id, err := LoadIdentity(opts.DataDir)
	if err != nil {
		return nil, err
	}
	targets := slices.Clone(opts.Targets)
	if len(targets) == 0 {
		targets = id.Targets
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no central target: none given and none in %s", filepath.Join(opts.DataDir, sensorFile))
	}
	a := &Agent{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		retry:    opts.Retry,
		interval: opts.StatusInterval,
		targets:  targets,
		identity: pki.Identity{Tenant: id.Tenant, SensorID: id.SensorID},
		id:       id,
		changed:  make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.retry == nil {
		a.retry = DefaultRetry
	}
	if a.interval == 0 {
		a.interval = DefaultStatusInterval
	}
	pair := id.Certificate
	a.pair.Store(&pair)
	a.state = State{Target: targets[0], Fingerprint: id.Fingerprint, NotAfter: pair.Leaf.NotAfter}
	return a, nil
}

// Identity returns the sensor's identity as [New] loaded it: renewals since
// change its certificate, which [Agent.State] reports.
func (a *Agent) Identity() *Identity { return a.id }

// State returns a snapshot of the agent's state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Changed returns a channel that is closed at the next change of
// [Agent.State]. Take it before reading the state so as not to miss one.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// update changes the state under the lock and wakes whoever waits on
// Changed.
func (a *Agent) update(f func(*State)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.state)
	close(a.changed)
	a.changed = make(chan struct{})
}

// recordError makes err the state's last error.
func (a *Agent) recordError(err error) {
	now := a.now()
	a.update(func(s *State) {
		s.LastError = err
		s.LastErrorAt = now
	})
}

// Run applies the configuration stored in the data dir, if any, then holds a
// stream with the central nodes until ctx is done, reconnecting with backoff
// whenever it ends. It returns nil when ctx is done; it may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer a.update(func(s *State) { s.Connected = false })
	defer a.closeClients()
	a.applyStored(ctx)

	attempt := 0
	for i := 0; ; i++ {
		target := a.targets[i%len(a.targets)]
		lived, err := a.connect(ctx, target)
		if ctx.Err() != nil {
			return nil
		}
		if lived > backoffReset || Moved(err) {
			attempt = 0
		}
		d := a.retry(attempt, err)
		attempt++
		a.update(func(s *State) {
			s.Connected = false
			s.LastError = err
			s.LastErrorAt = a.now()
		})
		a.logStreamEnd(target, err, d)
		if sleep(ctx, d) != nil {
			return nil
		}
	}
}

// logStreamEnd says why a stream ended, in the words an operator needs.
func (a *Agent) logStreamEnd(target string, err error, retryIn time.Duration) {
	if errors.As(err, new(*reissueError)) {
		a.logReissueFailure(target, err, retryIn)
		return
	}
	switch status.Code(err) {
	case codes.Unavailable:
		if Moved(err) {
			a.log.Info("the central node moves this sensor to another node (it holds more than its share); reconnecting", "central", target, "retry_in", retryIn)
			return
		}
		a.log.Warn("no stream with the central; retrying", "central", target, "retry_in", retryIn, "err", err)
	case codes.FailedPrecondition:
		a.log.Info("the central has not approved this sensor yet; an administrator must approve it (compare the fingerprint first)",
			"central", target, "fingerprint", a.State().Fingerprint, "retry_in", retryIn, "err", err)
	case codes.PermissionDenied:
		a.log.Error("the central refuses this sensor: it was revoked or deleted, or its certificate was superseded by a newer one; unless an administrator approves it again, to enroll again remove the identity dir and start with a new join token",
			"central", target, "identity_dir", filepath.Join(a.opts.DataDir, identityDir), "retry_in", retryIn, "err", err)
	default:
		a.log.Warn("no stream with the central; retrying", "central", target, "retry_in", retryIn, "err", err)
	}
}

// applyStored applies config/applied.pb, so that the sensor runs its last
// configuration before (and without) any central.
func (a *Agent) applyStored(ctx context.Context) {
	name := filepath.Join(a.opts.DataDir, appliedFile)
	data, err := readLimited(name, maxAppliedFile)
	if errors.Is(err, fs.ErrNotExist) {
		a.log.Info("no stored configuration; waiting for the central's")
		return
	}
	cfg := &ospreyv1.SensorConfig{}
	if err == nil {
		err = proto.Unmarshal(data, cfg)
	}
	if err != nil {
		err = fmt.Errorf("load stored configuration: %w", err)
		a.log.Error("cannot load the stored configuration; waiting for the central's", "err", err)
		a.recordError(err)
		return
	}
	if err := a.opts.Applier.Apply(ctx, cfg); err != nil {
		err = fmt.Errorf("apply stored configuration revision %d: %w", cfg.GetRevision(), err)
		a.log.Error("cannot apply the stored configuration; waiting for the central's", "err", err)
		a.recordError(err)
		return
	}
	a.applied = cfg
	a.update(func(s *State) { s.AppliedRevision = cfg.GetRevision() })
	a.log.Info("applied the stored configuration", "revision", cfg.GetRevision())
}

// applyConfig applies a configuration received from the central and returns
// the answer: Ack, or Nack with the error.
func (a *Agent) applyConfig(ctx context.Context, cfg *ospreyv1.SensorConfig) *ospreyv1.ConnectRequest {
	rev := cfg.GetRevision()
	if cfg == nil {
		return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Nack{
			Nack: &ospreyv1.Nack{Error: "empty configuration message"},
		}}
	}
	if a.applied != nil && rev == a.applied.GetRevision() {
		a.log.Debug("configuration revision already applied", "revision", rev)
		return ack(rev)
	}
	if err := a.opts.Applier.Apply(ctx, cfg); err != nil {
		a.problem = fmt.Sprintf("configuration revision %d not applied: %v", rev, err)
		a.log.Warn("cannot apply a configuration; the last good one keeps running",
			"revision", rev, "running", a.applied.GetRevision(), "err", err)
		a.recordError(fmt.Errorf("apply configuration revision %d: %w", rev, err))
		return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Nack{
			Nack: &ospreyv1.Nack{Revision: rev, Error: err.Error()},
		}}
	}
	a.applied = cfg
	a.problem = ""
	a.update(func(s *State) { s.AppliedRevision = rev })
	a.log.Info("applied configuration", "revision", rev)
	if err := a.storeApplied(cfg); err != nil {
		// It runs, so it is acknowledged; a restart would run the one before.
		a.problem = fmt.Sprintf("configuration revision %d applied but not stored: %v", rev, err)
		a.log.Error("cannot store the applied configuration", "revision", rev, "err", err)
		a.recordError(err)
	}
	return ack(rev)
}

// storeApplied writes cfg to config/applied.pb. It holds secrets (the POP3
// password), hence mode 0600.
func (a *Agent) storeApplied(cfg *ospreyv1.SensorConfig) error {
	data, err := proto.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	dir := filepath.Join(a.opts.DataDir, configDir)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(a.opts.DataDir, appliedFile), data, secretFilePerm); err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	return nil
}

// status is the sensor's status now: its sources' reports, and the agent's
// own problem.
func (a *Agent) status() *ospreyv1.SensorStatus {
	st := mergeStatus(a.opts.StatusSources)
	st.CertFingerprint = pki.Fingerprint(a.pair.Load().Certificate[0])
	if a.problem != "" {
		st.Problems = append(st.Problems, a.problem)
	}
	return st
}

func ack(rev int64) *ospreyv1.ConnectRequest {
	return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Ack{Ack: &ospreyv1.Ack{Revision: rev}}}
}
