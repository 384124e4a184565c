package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ospreysec/osprey/central/store"
)

// deleteBatch is how many rows one retention statement deletes: each is a
// short transaction, so writers never wait long behind a sweep.
const deleteBatch = 1000

// trimCount deletes tenant's alerts numbered seq-MaxAlerts or lower, the
// oldest beyond the count bound when seq is the newest.
func (s *Store) trimCount(ctx context.Context, tenant string, seq int64) (int64, error) {
	upTo := seq - int64(s.retention.MaxAlerts)
	if upTo <= 0 {
		return 0, nil
	}
	return s.deleteBatches(ctx, "trim alerts", `DELETE FROM alerts WHERE tenant = ? AND seq IN
		(SELECT seq FROM alerts WHERE tenant = ? AND seq <= ? ORDER BY seq LIMIT ?)`, tenant, tenant, upTo, deleteBatch)
}

// deleteBatches runs a DELETE of at most deleteBatch rows (its last
// argument) until it deletes fewer, and returns how many it deleted.
func (s *Store) deleteBatches(ctx context.Context, what, query string, args ...any) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, s.d.q(query), args...)
		if err != nil {
			return total, s.d.wrap(what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.d.wrap(what, err)
		}
		total += n
		if n < deleteBatch {
			return total, nil
		}
	}
}

// Sweep applies the retention as of now: it deletes the alerts older than
// MaxAge, each tenant's alerts beyond MaxAlerts, and the message records,
// refusals and delivery attempts older than the message retention, in
// batches, and returns how many alerts and records it deleted. Concurrent
// sweeps, on any nodes, are safe: each deletes only rows due to go.
func (s *Store) Sweep(ctx context.Context, scope store.Scope, now time.Time) (alerts, messages int64, err error) {
	if err := scope.RequireAll("sweep"); err != nil {
		return 0, 0, err
	}
	var errs []error
	n, err := s.deleteBatches(ctx, "delete old alerts", `DELETE FROM alerts WHERE (id, tenant) IN
		(SELECT id, tenant FROM alerts WHERE id < ? ORDER BY id LIMIT ?)`, alertTimePrefix(now.Add(-s.retention.MaxAge)), deleteBatch)
	alerts += n
	if err != nil {
		errs = append(errs, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT tenant, seq FROM alert_seq`)
	if err != nil {
		errs = append(errs, s.d.wrap("list tenants", err))
	} else {
		type last struct {
			tenant string
			seq    int64
		}
		var ls []last
		for rows.Next() {
			var l last
			if err := rows.Scan(&l.tenant, &l.seq); err != nil {
				errs = append(errs, s.d.wrap("list tenants", err))
				break
			}
			ls = append(ls, l)
		}
		rows.Close()
		for _, l := range ls {
			n, err := s.trimCount(ctx, l.tenant, l.seq)
			alerts += n
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %q: %w", l.tenant, err))
			}
		}
	}
	cutoff := micros(now.Add(-s.messageRetention))
	messages, err = s.deleteOldMessages(ctx, cutoff)
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := s.deleteBatches(ctx, "delete old refusals", `DELETE FROM refusals WHERE (tenant, sensor_id, minute, client_ip, reason) IN
		(SELECT tenant, sensor_id, minute, client_ip, reason FROM refusals WHERE last_at < ? ORDER BY last_at LIMIT ?)`, cutoff, deleteBatch); err != nil {
		errs = append(errs, err)
	}
	if err := s.deleteOldDeliveries(ctx, cutoff); err != nil {
		errs = append(errs, err)
	}
	// A message a sensor still holds stays listed however old; the rest of
	// the quarantine's rows and history go with the message retention.
	if _, err := s.deleteBatches(ctx, "delete old quarantine rows", `DELETE FROM quarantine WHERE (tenant, sensor_id, message_id) IN
		(SELECT tenant, sensor_id, message_id FROM quarantine WHERE updated_at < ? AND state <> '`+QuarantineHeld+`' ORDER BY updated_at LIMIT ?)`,
		cutoff, deleteBatch); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.deleteBatches(ctx, "delete old quarantine events", `DELETE FROM quarantine_events WHERE (tenant, sensor_id, message_id, at, action) IN
		(SELECT e.tenant, e.sensor_id, e.message_id, e.at, e.action FROM quarantine_events e WHERE e.at < ? AND NOT EXISTS
			(SELECT 1 FROM quarantine q WHERE q.tenant = e.tenant AND q.sensor_id = e.sensor_id AND q.message_id = e.message_id)
		 ORDER BY e.at LIMIT ?)`, cutoff, deleteBatch); err != nil {
		errs = append(errs, err)
	}
	return alerts, messages, errors.Join(errs...)
}

// deleteOldMessages deletes the records recorded before cutoff, with their
// recipients, a batch a transaction, and returns how many it deleted.
func (s *Store) deleteOldMessages(ctx context.Context, cutoff int64) (int64, error) {
	const batch = `(SELECT tenant, sensor_id, message_id FROM messages WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)`
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM message_rcpts WHERE (tenant, sensor_id, message_id) IN `+batch), cutoff, deleteBatch); err != nil {
				return s.d.wrap("delete old recipients", err)
			}
			res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM messages WHERE (tenant, sensor_id, message_id) IN `+batch), cutoff, deleteBatch)
			if err != nil {
				return s.d.wrap("delete old message records", err)
			}
			n, err = res.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < deleteBatch {
			return total, err
		}
	}
}

// DefaultSweepInterval is how often a Sweeper sweeps by default.
const DefaultSweepInterval = 5 * time.Minute

// SweeperOptions configures a Sweeper.
type SweeperOptions struct {
	// Interval between sweeps; 0 means DefaultSweepInterval.
	Interval time.Duration
	// Logger receives the sweeps' failures and what they deleted; nil discards.
	Logger *slog.Logger
}

// Sweeper applies the retention periodically. Every central node may run
// one: sweeps are idempotent.
type Sweeper struct {
	st       *Store
	interval time.Duration
	log      *slog.Logger
}

// NewSweeper returns a sweeper of st.
func NewSweeper(st *Store, opts SweeperOptions) *Sweeper {
	w := &Sweeper{st: st, interval: opts.Interval, log: opts.Logger}
	if w.interval <= 0 {
		w.interval = DefaultSweepInterval
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w
}

// Run sweeps at once, then every interval, until ctx ends; it returns nil
// then. A failed sweep is logged and tried again at the next one.
func (w *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		alerts, messages, err := w.st.Sweep(ctx, store.AllTenants(), w.st.now())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			w.log.WarnContext(ctx, "retention sweep failed", "alerts_deleted", alerts, "messages_deleted", messages, "err", err)
		case alerts > 0 || messages > 0:
			w.log.InfoContext(ctx, "retention sweep", "alerts_deleted", alerts, "messages_deleted", messages)
		}
		if err := w.st.optimize(ctx, false); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "optimize the SQL store's query plans", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// broadcast wakes every waiter at once: wait returns a channel that notify
// closes.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
