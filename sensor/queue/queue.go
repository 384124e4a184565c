package queue

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/ospreysec/osprey/sensor/delivery"
)

//go:embed migrations
var migrations embed.FS

// Deliverer hands messages to their next hops: the gateway's SMTP client.
type Deliverer interface {
	// Destination returns the routing key of rcpt: the recipients of one
	// message that share it go in one Request. It is asked once per
	// recipient, at Enqueue.
	Destination(rcpt string) string
	// Deliver makes one attempt at r and returns one result per recipient,
	// in r's order.
	Deliver(ctx context.Context, r delivery.Request) delivery.Result
}

// Options configures a Queue; only Dir and Deliverer are required.
type Options struct {
	// Dir holds the queue's database; it is created if missing.
	Dir       string
	Deliverer Deliverer
	Logger    *slog.Logger
	// Registerer receives the queue's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock of arrivals, backoffs and lifetimes; nil means
	// time.Now.
	Now func() time.Time
	// OnAttempt, when set, is called after each attempt's outcome is
	// stored (the audit log's hook). It must not block for long.
	OnAttempt func(Attempt)
}

// Config is what an operator tunes; a zero field takes its default.
type Config struct {
	// MinBackoff is the wait before the first retry (default 15 minutes,
	// as the Symantec Messaging Gateway); it doubles with each try.
	MinBackoff time.Duration
	// MaxBackoff caps the doubling (default 1 hour: a next hop that comes
	// back is tried again within the hour, as with Postfix's 4000 s
	// maximal_backoff_time, and a message is tried about 120 times over
	// the default lifetime).
	MaxBackoff time.Duration
	// MaxLifetime is how long a message is retried after its arrival
	// before it bounces (default 5 days).
	MaxLifetime time.Duration
	// DelayWarning is the age after which a message still undelivered
	// gets one delay notice (default 4 hours); negative means never.
	DelayWarning time.Duration
	// DestinationConcurrency caps the deliveries under way to one
	// destination (default 20, Postfix's
	// default_destination_concurrency_limit). A destination starts at
	// InitialDestinationConcurrency and gains one after as many
	// successes as it has; a failure to reach it drops it back.
	DestinationConcurrency int
	// Concurrency caps the deliveries under way in all (default 100).
	Concurrency int
	// ReportingMTA is the gateway's name in its notices (default the
	// host name).
	ReportingMTA string
}

// Defaults of Config.
const (
	DefaultMinBackoff             = 15 * time.Minute
	DefaultMaxBackoff             = time.Hour
	DefaultMaxLifetime            = 5 * 24 * time.Hour
	DefaultDelayWarning           = 4 * time.Hour
	DefaultDestinationConcurrency = 20
	DefaultConcurrency            = 100
	// InitialDestinationConcurrency is where a destination starts
	// (Postfix's initial_destination_concurrency).
	InitialDestinationConcurrency = 5
)

// withDefaults fills in the zero fields.
func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.MinBackoff, DefaultMinBackoff)
	set(&c.MaxBackoff, max(DefaultMaxBackoff, c.MinBackoff))
	set(&c.MaxLifetime, DefaultMaxLifetime)
	set(&c.DelayWarning, DefaultDelayWarning)
	if c.DestinationConcurrency == 0 {
		c.DestinationConcurrency = DefaultDestinationConcurrency
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ReportingMTA == "" {
		c.ReportingMTA, _ = os.Hostname()
		if c.ReportingMTA == "" {
			c.ReportingMTA = "localhost"
		}
	}
	return c
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"min_backoff", c.MinBackoff}, {"max_backoff", c.MaxBackoff}, {"max_lifetime", c.MaxLifetime}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("queue.%s %s: want 0 (the default) or more", f.name, f.d))
		}
	}
	if c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("queue.max_backoff %s: want at least min_backoff (%s)", c.MaxBackoff, c.MinBackoff))
	}
	if c.DestinationConcurrency < 0 {
		errs = append(errs, fmt.Errorf("queue.destination_concurrency %d: want 0 (the default) or more", c.DestinationConcurrency))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("queue.concurrency %d: want 0 (the default) or more", c.Concurrency))
	}
	return errors.Join(errs...)
}

// ErrClosed is the error of a call after Close.
var ErrClosed = errors.New("the delivery queue is closed")

// ErrNotFound is the error of a management call for a message the queue
// does not have.
var ErrNotFound = errors.New("no such message in the queue")

// Queue is the gateway's delivery queue. Its methods are safe for
// concurrent use.
type Queue struct {
	dir       string
	db        *sql.DB
	log       *slog.Logger
	now       func() time.Time
	deliverer Deliverer
	onAttempt func(Attempt)
	m         *metrics
	stmts     stmts

	cfg     atomic.Pointer[Config]
	w       writer
	s       sched
	sending atomic.Bool
	running atomic.Bool

	countsMu sync.Mutex
	counts   [numCounts]int64
}

// Open opens the queue in opts.Dir, creating it if needed. It reads no
// more than the depths: Run pages in what is due.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.Dir == "" || opts.Deliverer == nil {
		return nil, errors.New("open queue: Dir and Deliverer are required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	path := filepath.Join(opts.Dir, "queue.db")
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	f.Close()
	// synchronous(FULL): a commit returns once the WAL is fsynced, the
	// promise Enqueue makes. _txlock=immediate: the one writer takes the
	// write lock at BEGIN, so no reader upgrade deadlocks.
	q := url.Values{"_pragma": {"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"}, "_txlock": {"immediate"}}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	db.SetMaxOpenConns(8)
	qu := &Queue{
		dir:       opts.Dir,
		db:        db,
		log:       opts.Logger,
		now:       opts.Now,
		deliverer: opts.Deliverer,
		onAttempt: opts.OnAttempt,
	}
	if qu.log == nil {
		qu.log = slog.New(slog.DiscardHandler)
	}
	qu.log = qu.log.With("component", "queue")
	if qu.now == nil {
		qu.now = time.Now
	}
	cfg := Config{}.withDefaults()
	qu.cfg.Store(&cfg)
	qu.sending.Store(true)
	qu.w.init(qu)
	qu.s.init()
	if err := qu.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	if err := qu.collectBodies(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: body files: %w", opts.Dir, err)
	}
	if err := qu.prepare(ctx); err != nil {
		qu.stmts.close()
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	if err := qu.readCounts(ctx); err != nil {
		qu.stmts.close()
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	m, err := newMetrics(qu, opts.Registerer)
	if err != nil {
		qu.stmts.close()
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", opts.Dir, err)
	}
	qu.m = m
	return qu, nil
}

func (q *Queue) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, q.db, fsys, goose.WithDisableGlobalRegistry(true), goose.WithSlog(q.log))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Apply hands over a configuration: the next attempts follow it. It
// changes nothing when cfg is invalid.
func (q *Queue) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	q.cfg.Store(&cfg)
	q.s.mu.Lock()
	for _, d := range q.s.dests {
		d.limit = min(d.limit, cfg.DestinationConcurrency)
	}
	q.s.mu.Unlock()
	q.kick()
	return nil
}

func (q *Queue) config() Config { return *q.cfg.Load() }

// SetSending stops (false) or resumes (true) the start of deliveries;
// the queue keeps taking messages, and attempts under way finish.
func (q *Queue) SetSending(on bool) {
	q.sending.Store(on)
	q.kick()
}

// Close waits for the writes under way and closes the database. Call it
// after Run returned.
func (q *Queue) Close() error {
	q.w.close()
	q.stmts.close()
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("close queue %s: %w", q.dir, err)
	}
	return nil
}
