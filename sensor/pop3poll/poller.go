package pop3poll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/pop3"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

// Defaults of the zero Options fields.
const (
	DefaultBatchMessages  = 100
	DefaultBatchBytes     = 50 << 20
	DefaultMaxMessageSize = pop3.DefaultMaxMessageSize
	DefaultAlertAfter     = time.Hour
	DefaultMinBackoff     = 5 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultSessionTimeout = 30 * time.Minute
	DefaultStopGrace      = 30 * time.Second
)

// AlertPrefix starts the status problem of a failure that lasted longer
// than Options.AlertAfter; the central surfaces such problems as alerts.
const AlertPrefix = "ALERT:"

// Spool is where polled messages go: *spool.Spool.
type Spool interface {
	Put(ctx context.Context, meta spool.Meta, body io.Reader) (string, error)
	HasUIDL(mailbox, uidl string) bool
	ForgetUIDLs(mailbox string, keep func(uidl string) bool) error
}

// Lock keeps a mailbox to one poller across a cluster. Acquire blocks
// until this node holds the lock for mailbox ("user@server:port") or ctx is
// done; lost (nil if it cannot happen) is closed when the lock is lost
// behind the holder's back, an etcd session that expired; release gives
// the lock up.
type Lock interface {
	Acquire(ctx context.Context, mailbox string) (lost <-chan struct{}, release func(), err error)
}

// Options configure a Poller.
type Options struct {
	// Spool receives the messages. Required.
	Spool Spool
	// Lock, when set, is taken before a mailbox is polled; nil means no
	// coordination.
	Lock Lock
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the failure durations; nil means time.Now.
	Now func() time.Time
	// Notify, when set, is called when what Status reports changed in a
	// way the operator should learn at once rather than at the next
	// periodic status: a session failed with a new error, sessions work
	// again, an alert was raised, the poller started or stopped waiting
	// for the mailbox lock. It is called from the poller's goroutine,
	// without its lock held, and must not block.
	Notify func()

	// BatchMessages and BatchBytes bound what one session retrieves; 0
	// means DefaultBatchMessages and DefaultBatchBytes.
	BatchMessages int
	BatchBytes    int64
	// MaxMessageSize is the largest message taken; larger ones stay on
	// the server. 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// AlertAfter is how long failures last before they raise an alert; 0
	// means DefaultAlertAfter.
	AlertAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed session; 0
	// means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds the dial, the handshake and each read and write of
	// the POP3 client; 0 means pop3.DefaultTimeout.
	Timeout time.Duration
	// SessionTimeout bounds a whole session; 0 means DefaultSessionTimeout.
	SessionTimeout time.Duration
	// StopGrace is how long a stopping session may take to finish its
	// message; 0 means DefaultStopGrace.
	StopGrace time.Duration
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if o.Spool == nil {
		errs = append(errs, errors.New("spool: nil"))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"batch_messages", int64(o.BatchMessages)}, {"batch_bytes", o.BatchBytes},
		{"max_message_size", o.MaxMessageSize}, {"alert_after", int64(o.AlertAfter)},
		{"min_backoff", int64(o.MinBackoff)}, {"max_backoff", int64(o.MaxBackoff)},
		{"timeout", int64(o.Timeout)}, {"session_timeout", int64(o.SessionTimeout)},
		{"stop_grace", int64(o.StopGrace)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// job is one configuration of the integration, ready to poll.
type job struct {
	cfg     *ospreyv1.Pop3Integration
	mailbox string
	client  pop3.Options
}

// Poller polls the POP3 mailbox of the sensor's configuration.
type Poller struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{} // a new configuration

	mu   sync.Mutex
	job  *job          // nil while disabled
	stop chan struct{} // closed when the mailbox in progress must stop
	mbox mailboxState  // memory of the current mailbox
	st   status
}

// mailboxState is what the poller remembers of a mailbox between sessions.
type mailboxState struct {
	name string
	// hashReason, when set, is why UIDs are unusable and content hashes
	// are used instead.
	hashReason string
	// keeps, when set, says how the server showed that it keeps messages
	// whose deletion it confirmed.
	keeps string
	// deleted holds the UIDs deleted in sessions whose QUIT succeeded,
	// with what the poller knows of the message under each.
	deleted map[string]known
	// hashes holds the content-hash keys of the messages spooled under
	// their UID, which content hashes must find spooled once they are in
	// use; forgotten once the mailbox is empty.
	hashes map[string]bool
	// pin is the fingerprint of the self-signed certificate seen first.
	pin string
}

// known is what the poller knows of a message it deleted.
type known struct {
	size int64  // its size in the server's LIST
	sum  string // its content-hash key; empty if it was not retrieved
	kept bool   // the server listed it again, unchanged, after deleting it
}

// status is what Status reports.
type status struct {
	polled, spooled, deleted, errors uint64
	spooledBytes                     uint64 // by the server's LIST sizes

	lastSuccess  time.Time // the end of the last session that succeeded
	lastErr      error     // of the current failure streak; nil when none
	lastErrAt    time.Time
	failingSince time.Time
	failures     int
	alerted      bool
	waitingLock  bool
	certWarning  string
	tooLarge     map[string]int64 // UIDL or number → size
}

// New returns a Poller; Run polls once a configuration enables it.
func New(opts Options) (*Poller, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pop3 poller options: %w", err)
	}
	if opts.BatchMessages == 0 {
		opts.BatchMessages = DefaultBatchMessages
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.AlertAfter == 0 {
		opts.AlertAfter = DefaultAlertAfter
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = DefaultStopGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Poller{
		opts: opts,
		log:  log,
		now:  now,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}, nil
}

// Mailbox names a mailbox as the spool keys its UIDLs: "user@server:port".
func Mailbox(cfg *ospreyv1.Pop3Integration) string {
	return cfg.GetUsername() + "@" + net.JoinHostPort(cfg.GetServer(), strconv.Itoa(int(cfg.GetPort())))
}

// Apply takes the POP3 integration of cfg: it validates it and hands it to
// Run, which uses it from its next session on. It never waits for a
// session.
func (p *Poller) Apply(_ context.Context, cfg *ospreyv1.SensorConfig) error {
	pc := cfg.GetPop3()
	if err := validate.POP3Integration(pc); err != nil {
		return fmt.Errorf("pop3 integration: %w", err)
	}
	var j *job
	if pc.GetEnabled() {
		var err error
		if j, err = p.newJob(pc); err != nil {
			return fmt.Errorf("pop3 integration: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if (j == nil && p.job == nil) || (j != nil && p.job != nil && proto.Equal(j.cfg, p.job.cfg)) {
		return nil
	}
	if p.job != nil && (j == nil || j.mailbox != p.job.mailbox) {
		close(p.stop)
		p.stop = make(chan struct{})
	}
	p.job = j
	// A new configuration gets a fresh start: no backoff, no stale error
	// or certificate warning of the old one.
	p.st.failures = 0
	p.st.certWarning = ""
	p.st.tooLarge = nil
	if j == nil {
		p.st.lastErr, p.st.lastErrAt, p.st.failingSince, p.st.alerted = nil, time.Time{}, time.Time{}, false
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// newJob turns a valid, enabled integration into a job.
func (p *Poller) newJob(pc *ospreyv1.Pop3Integration) (*job, error) {
	j := &job{cfg: proto.CloneOf(pc), mailbox: Mailbox(pc)}
	j.client = pop3.Options{
		Addr:           net.JoinHostPort(pc.GetServer(), strconv.Itoa(int(pc.GetPort()))),
		Timeout:        p.opts.Timeout,
		MaxMessageSize: p.opts.MaxMessageSize,
	}
	if pc.GetTls() {
		j.client.TLS = pop3.ImplicitTLS
		if pc.GetTlsMode() == ospreyv1.Pop3TlsMode_POP3_TLS_MODE_STARTTLS {
			j.client.TLS = pop3.StartTLS
		}
		j.client.TLSPolicy = pop3.TLSPolicy{
			Certificate: pc.GetTlsCertificate(),
			CAPEM:       []byte(pc.GetCaPem()),
			CipherSuite: pc.GetCipherSuite(),
		}
	}
	if err := j.client.Validate(); err != nil {
		return nil, err
	}
	return j, nil
}

// current returns the job to run and the channel that stops it.
func (p *Poller) current() (*job, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.job, p.stop
}

// Run polls while the configuration enables it, until ctx is done. It
// returns nil once the session in progress has stopped.
func (p *Poller) Run(ctx context.Context) error {
	for {
		j, stop := p.current()
		if j == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-p.wake:
				continue
			}
		}
		p.runMailbox(ctx, j.mailbox, stop)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// runMailbox polls mailbox until stop is closed or ctx is done.
func (p *Poller) runMailbox(ctx context.Context, mailbox string, stop <-chan struct{}) {
	stopped := func() bool {
		select {
		case <-ctx.Done():
			return true
		case <-stop:
			return true
		default:
			return false
		}
	}
	p.mu.Lock()
	if p.mbox.name != mailbox {
		p.mbox = mailboxState{name: mailbox}
	}
	p.mu.Unlock()

	var lost <-chan struct{}
	if p.opts.Lock != nil {
		for {
			l, release, err := p.acquire(ctx, mailbox, stop)
			if err == nil {
				defer release()
				lost = l
				break
			}
			if stopped() {
				return
			}
			p.record(sessionResult{}, fmt.Errorf("lock mailbox: %w", err))
			if !p.wait(ctx, stop, nil, p.backoff()) {
				return
			}
		}
	}
	for {
		// This session takes the newest configuration: a wake-up for it
		// is spent.
		select {
		case <-p.wake:
		default:
		}
		j, _ := p.current()
		if j == nil || j.mailbox != mailbox || stopped() {
			return
		}
		res, err := p.session(ctx, j, stop, lost)
		p.record(res, err)
		if stopped() || isClosed(lost) {
			return
		}
		// A failing mailbox is tried again at least as often as a working
		// one is polled, so that the status clears within an interval of
		// the fault's end.
		interval := time.Duration(j.cfg.GetIntervalSeconds()) * time.Second
		var d time.Duration
		switch {
		case err != nil:
			d = min(p.backoff(), max(interval, p.opts.MinBackoff))
		case res.more:
			d = 0
		default:
			d = interval
		}
		if d > 0 && !p.wait(ctx, stop, lost, d) {
			return
		}
	}
}

// acquire takes the lock of mailbox; giving up when stop is closed.
func (p *Poller) acquire(ctx context.Context, mailbox string, stop <-chan struct{}) (<-chan struct{}, func(), error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-lctx.Done():
		}
	}()
	p.setWaitingLock(true)
	defer p.setWaitingLock(false)
	return p.opts.Lock.Acquire(lctx, mailbox)
}

func (p *Poller) setWaitingLock(v bool) {
	p.mu.Lock()
	changed := p.st.waitingLock != v
	p.st.waitingLock = v
	p.mu.Unlock()
	if changed {
		p.notify()
	}
}

// wait waits d, and reports false when polling must stop instead. A new
// configuration ends the wait early.
func (p *Poller) wait(ctx context.Context, stop, lost <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-lost:
		return false
	case <-p.wake:
		return true
	case <-t.C:
		return true
	}
}

// backoff is the wait after the current streak of failures.
func (p *Poller) backoff() time.Duration {
	p.mu.Lock()
	n := p.st.failures
	p.mu.Unlock()
	d := p.opts.MinBackoff
	for i := 1; i < n && d < p.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.opts.MaxBackoff)
}

// isClosed reports whether ch is closed; a nil ch never is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
