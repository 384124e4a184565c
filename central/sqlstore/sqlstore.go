// Package sqlstore is the Central Node's store of per-message data: the
// records of uploaded messages (the exactly-once keys of uploads) and the
// alerts they raise. etcd keeps configuration and coordination, and stays
// small; what grows with the mail goes here.
//
// Design note. One Store, two drivers: SQLite (modernc.org/sqlite, pure Go)
// in the data dir, the default for a single node, and PostgreSQL (pgx),
// shared by the nodes of a cluster. The queries are written once, in
// portable SQL (INSERT … ON CONFLICT, RETURNING, row values), with `?`
// placeholders that the dialect rewrites for PostgreSQL; what differs
// between the two (column types, the DSN, locking the migrations) lives in
// dialect.go and in the two migration directories. The schema is versioned
// by goose migrations embedded in the binary and run at Open, under
// PostgreSQL's advisory lock when several nodes start at once.
//
// Exactly once is a unique key and a transaction: RecordScan inserts the
// record under its unique keys, (tenant, sensor, message id) and, for POP3,
// (tenant, mailbox, UIDL), and inserts the alert in the same transaction
// only when the record was new. Racing uploads of one message on several
// nodes give one record and one alert.
//
// Alerts are numbered per tenant (seq) from a counter row that each alert's
// transaction increments: the row lock orders the transactions of one
// tenant, so seq follows commit order without gaps, and a reader that has
// seen seq n has seen every alert up to n. The SIEM export follows that
// number.
//
// Retention deletes in batches of rows, never with one long DELETE.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/ospreysec/osprey/central/store"
)

//go:embed migrations
var migrations embed.FS

// Options configures a Store.
type Options struct {
	// URL selects the database: a postgres:// or postgresql:// URL for
	// PostgreSQL (a multi-host URL with target_session_attrs=read-write
	// follows a failover), or the path of a SQLite file (optionally as
	// sqlite:PATH).
	URL string
	// AlertRetention bounds each tenant's alerts; zero fields take the defaults.
	AlertRetention AlertRetention
	// MessageRetention is how long message records are kept; 0 means
	// DefaultMessageRetention.
	MessageRetention time.Duration
	// Now is the clock of retention and alert reads; nil means time.Now.
	Now func() time.Time
	// Logger receives the migrations' progress; nil discards it.
	Logger *slog.Logger
}

// DefaultMessageRetention is how long message records are kept by default.
const DefaultMessageRetention = 30 * 24 * time.Hour

// MinMessageRetention bounds MessageRetention from below: a record is also
// the key that recognises a sensor's retry of the same upload, and a sensor
// cut off over a weekend retries days later.
const MinMessageRetention = 72 * time.Hour

// Validate reports every option out of range.
func (o Options) Validate() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("database URL: required"))
	}
	if err := o.AlertRetention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.MessageRetention != 0 && o.MessageRetention < MinMessageRetention {
		errs = append(errs, fmt.Errorf("message retention %s: want 0 (default %s) or at least %s", o.MessageRetention, DefaultMessageRetention, MinMessageRetention))
	}
	return errors.Join(errs...)
}

// Store reads and writes per-message data. It is safe for concurrent use.
type Store struct {
	db               *sql.DB
	d                *dialect
	retention        AlertRetention
	messageRetention time.Duration
	now              func() time.Time
	log              *slog.Logger
	// alerts is closed and replaced whenever this store commits an alert.
	alerts *broadcast
	// group batches RecordScan's transactions (SQLite); nil: each its own.
	group *groupCommit
	// stmts are prepared at Open and closed at Close.
	stmts stmts
}

// Open connects to the database of opts.URL and brings its schema up to
// date.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d, dsn, err := dialectOf(opts.URL)
	if err != nil {
		return nil, err
	}
	if d.path != "" {
		// Only the node's user reads the records: SQLite gives its -wal
		// and -shm files the database file's mode.
		f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", d.path, err)
		}
		f.Close()
	}
	db, err := sql.Open(d.driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", d.name, err)
	}
	d.configure(db)
	s := &Store{
		db: db, d: d,
		retention:        opts.AlertRetention.withDefaults(),
		messageRetention: opts.MessageRetention,
		now:              opts.Now,
		log:              opts.Logger,
		alerts:           newBroadcast(),
	}
	if s.messageRetention == 0 {
		s.messageRetention = DefaultMessageRetention
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if d.name == dialectSQLite {
		s.group = newGroupCommit(s)
	}
	if err := s.optimize(ctx, true); err != nil {
		s.log.WarnContext(ctx, "optimize the SQL store's query plans", "err", err)
	}
	return s, nil
}

// optimize keeps SQLite's query planner informed: without statistics
// (sqlite_stat1) it guesses, and over millions of messages a guess can
// read the whole log for one search. SQLite's advice for a long-lived
// connection is PRAGMA optimize=0x10002 when it opens and PRAGMA optimize
// now and then (the Sweeper runs it); both analyse only what changed a
// lot, each table within analysis_limit rows. PostgreSQL's autovacuum
// does the same there.
func (s *Store) optimize(ctx context.Context, opening bool) error {
	if s.d.name != dialectSQLite {
		return nil
	}
	q := "PRAGMA optimize"
	if opening {
		q = "PRAGMA optimize=0x10002"
	}
	conn, err := s.db.Conn(ctx) // analysis_limit is the connection's
	if err != nil {
		return s.d.wrap("optimize", err)
	}
	defer conn.Close()
	for _, q := range []string{"PRAGMA analysis_limit=1000", q} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return s.d.wrap("optimize", err)
		}
	}
	return nil
}

// Close waits for the writes under way and closes the database.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	return errors.Join(s.stmts.close(), s.db.Close())
}

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.d.name, err)
	}
	return nil
}

// migrate applies the migrations the database lacks, one node at a time.
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations/"+s.d.name)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithSlog(s.log)}
	if s.d.path != "" {
		unlock, err := lockFile(s.d.path + ".lock")
		if err != nil {
			return err
		}
		defer unlock()
	}
	if s.d.name == dialectPostgres {
		// Nodes starting together wait for the first one's migrations:
		// try every second, for up to 5 minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(s.d.goose, s.db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate the %s schema: %w", s.d.name, err)
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "schema migrated", "store", s.d.name, "version", r.Source.Version, "migration", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.d.wrap("begin", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.d.wrap("commit", err)
	}
	return nil
}

// tenantSet is the tenants a read is restricted to; nil means every tenant.
type tenantSet []string

// cond is the condition that col is one of ts ("" for every tenant), with
// its arguments.
func (ts tenantSet) cond(col string) (string, []any) {
	switch len(ts) {
	case 0:
		return "", nil
	case 1:
		return col + " = ?", []any{ts[0]}
	}
	args := make([]any, len(ts))
	for i, t := range ts {
		args[i] = t
	}
	return col + " IN (?" + strings.Repeat(", ?", len(ts)-1) + ")", args
}

// scopedTenants are the tenants a read in scope is restricted to: tenant
// itself, which scope must allow (store.ErrNotFound: another tenant's data
// does not show that it exists), or, when it is "", scope's own tenants, or
// nil (every tenant) for a scope of all tenants.
func scopedTenants(scope store.Scope, tenant string) (tenantSet, error) {
	switch {
	case tenant != "" && !scope.Allows(tenant):
		return nil, fmt.Errorf("tenant %q: %w", tenant, store.ErrNotFound)
	case tenant != "":
		return tenantSet{tenant}, nil
	}
	return scope.Tenants(), nil
}
