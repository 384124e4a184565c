package queue

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// numCounts is the number of counters the counts table keeps: one per
// stored recipient state, and the messages.
const numCounts = 7

// countMessages indexes the messages' counter.
const countMessages = 6

// tx is one operation's part of a group transaction: the SQL
// transaction, the operation's changes to the counters, and what to do
// once the transaction is durable.
type tx struct {
	*sql.Tx
	ctx   context.Context
	delta [numCounts]int64
	after []func()
	// syncBodies asks for the bodies directory to be fsynced before the
	// commit: the operation wrote a body file (see body.go).
	syncBodies bool
}

// stmt returns st in the transaction; its statement stays prepared on
// the connection for the next transactions.
func (t *tx) stmt(st *sql.Stmt) *sql.Stmt { return t.StmtContext(t.ctx, st) }

// onCommit runs fn once the transaction is durable, if it is.
func (t *tx) onCommit(fn func()) { t.after = append(t.after, fn) }

type op struct {
	fn  func(*tx) error
	err chan error
}

// writer makes one transaction of the writes waiting at the same time: a
// group commit. SQLite has one writer at a time, and every commit waits
// for its fsync (synchronous=FULL); one transaction per Enqueue would cap
// the queue at one message per fsync. Each operation runs in a savepoint
// of its own, so that one failing (a duplicate, a bad message) fails
// alone; the commit failing fails them all.
//
// The goroutine that commits is started by the first write that finds
// none running and ends when nothing waits: Open starts nothing, an idle
// queue runs nothing, and Close waits for the commit under way.
type writer struct {
	q       *Queue
	mu      sync.Mutex
	pending []*op
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// maxBatch bounds the operations of one transaction.
const maxBatch = 1024

// commitTimeout bounds one batch's transaction: it serves many callers,
// so no one caller's context governs it.
const commitTimeout = time.Minute

func (w *writer) init(q *Queue) { w.q = q }

// do runs fn in the next transaction and returns once that is durable.
// A caller whose ctx ends before its operation was taken into a
// transaction gets ctx's error and nothing is written; once taken, do
// waits for the commit.
func (w *writer) do(ctx context.Context, fn func(*tx) error) error {
	o := &op{fn: fn, err: make(chan error, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.pending = append(w.pending, o)
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.run()
	}
	w.mu.Unlock()
	select {
	case err := <-o.err:
		return err
	case <-ctx.Done():
	}
	w.mu.Lock()
	for i, p := range w.pending {
		if p == o {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			w.mu.Unlock()
			return ctx.Err()
		}
	}
	w.mu.Unlock()
	return <-o.err
}

func (w *writer) run() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		n := min(len(w.pending), maxBatch)
		batch := make([]*op, n)
		copy(batch, w.pending)
		w.pending = append(w.pending[:0], w.pending[n:]...)
		w.mu.Unlock()
		w.commit(batch)
	}
}

func (w *writer) commit(batch []*op) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	errs := make([]error, len(batch))
	var total tx
	err := func() error {
		sqlTx, err := w.q.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer sqlTx.Rollback()
		for i, o := range batch {
			if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
				return err
			}
			t := &tx{Tx: sqlTx, ctx: ctx}
			if errs[i] = o.fn(t); errs[i] != nil {
				if _, err := sqlTx.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
					return err
				}
			} else {
				for s, d := range t.delta {
					total.delta[s] += d
				}
				total.after = append(total.after, t.after...)
				total.syncBodies = total.syncBodies || t.syncBodies
			}
			if _, err := sqlTx.ExecContext(ctx, "RELEASE op"); err != nil {
				return err
			}
		}
		for s, d := range total.delta {
			if d != 0 {
				if _, err := sqlTx.ExecContext(ctx, "UPDATE counts SET n = n + ? WHERE state = ?", d, s); err != nil {
					return err
				}
			}
		}
		if total.syncBodies {
			if err := w.q.syncBodies(); err != nil {
				return err
			}
		}
		return sqlTx.Commit()
	}()
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		for _, o := range batch {
			o.err <- err
		}
		return
	}
	w.q.addCounts(total.delta)
	for _, fn := range total.after {
		fn()
	}
	for i, o := range batch {
		o.err <- errs[i]
	}
}

// close refuses new writes and waits for those under way.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
}

func (q *Queue) readCounts(ctx context.Context) error {
	rows, err := q.db.QueryContext(ctx, "SELECT state, n FROM counts")
	if err != nil {
		return fmt.Errorf("read the depths: %w", err)
	}
	defer rows.Close()
	q.countsMu.Lock()
	defer q.countsMu.Unlock()
	for rows.Next() {
		var s int
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return fmt.Errorf("read the depths: %w", err)
		}
		if s >= 0 && s < numCounts {
			q.counts[s] = n
		}
	}
	return rows.Err()
}

func (q *Queue) addCounts(d [numCounts]int64) {
	q.countsMu.Lock()
	defer q.countsMu.Unlock()
	for s, n := range d {
		q.counts[s] += n
	}
}
