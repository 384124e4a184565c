package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ospreysec/osprey/pkg/dsn"
)

// Filter selects messages for List; zero fields select everything.
type Filter struct {
	// State, Rcpt and Destination select the messages with a recipient
	// in that state, whose address contains Rcpt (case-insensitively) and
	// whose destination is Destination: all three of one recipient.
	State       State
	Rcpt        string
	Destination string
	// Sender selects the messages whose envelope sender contains it
	// (case-insensitively).
	Sender string
	// MinAge and MaxAge bound the time since arrival.
	MinAge, MaxAge time.Duration
	// Limit bounds the page (default 100, at most 1000).
	Limit int
	// After continues a listing from the Next of its previous page.
	After Cursor
}

// Cursor is a position in the listing's order, by arrival then id.
type Cursor struct {
	Arrival time.Time
	ID      string
}

// Page is one page of List.
type Page struct {
	Entries []Entry
	// Next continues the listing; zero when this is the last page.
	Next Cursor
}

// Entry is what the queue page shows of a message.
type Entry struct {
	ID, From  string
	Arrival   time.Time
	Size      int64
	Verdict   string
	Direction string
	Unscanned bool
	// Kind is "" for mail, "failure" or "delay" for a notice of ours.
	Kind string
	// DelayNoticeSent reports whether the sender got a delay notice.
	DelayNoticeSent bool
	Rcpts           []RcptEntry
}

// RcptEntry is one recipient of an Entry.
type RcptEntry struct {
	Rcpt, Destination string
	State             State
	Attempts          int
	// NextAttempt is when a deferred recipient is tried again.
	NextAttempt               time.Time
	FirstAttempt, LastAttempt time.Time
	// The last reply: what the next hop answered, or what the attempt
	// ended with.
	LastCode     int
	LastEnhanced string
	LastText     string
	LastHost     string
}

// List returns a page of the queued messages that f selects, oldest
// first.
func (q *Queue) List(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	now := q.now()
	var where []string
	var args []any
	if f.After != (Cursor{}) {
		where = append(where, "(arrival, id) > (?, ?)")
		args = append(args, micros(f.After.Arrival), f.After.ID)
	}
	if f.Sender != "" {
		where = append(where, "instr(lower(sender), lower(?)) > 0")
		args = append(args, f.Sender)
	}
	if f.MinAge > 0 {
		where = append(where, "arrival <= ?")
		args = append(args, micros(now.Add(-f.MinAge)))
	}
	if f.MaxAge > 0 {
		where = append(where, "arrival >= ?")
		args = append(args, micros(now.Add(-f.MaxAge)))
	}
	var rw []string
	if f.State != "" {
		st := f.State.stored()
		if st < 0 || st >= stDelivered {
			return Page{}, fmt.Errorf("list the queue: state %q: want active, deferred, held or quarantined", f.State)
		}
		rw = append(rw, "r.state = ?")
		args = append(args, st)
	}
	if f.Rcpt != "" {
		rw = append(rw, "instr(lower(r.rcpt), lower(?)) > 0")
		args = append(args, f.Rcpt)
	}
	if f.Destination != "" {
		rw = append(rw, "r.dest = ?")
		args = append(args, f.Destination)
	}
	switch {
	case f.State == StateHeld || f.State == StateQuarantined:
		// Few among many: from the index of the kept recipients.
		where = append(where, "m.id IN (SELECT r.msg FROM rcpts r WHERE r.state IN (2, 3) AND "+strings.Join(rw, " AND ")+")")
	case len(rw) > 0:
		where = append(where, "EXISTS (SELECT 1 FROM rcpts r WHERE r.msg = m.id AND "+strings.Join(rw, " AND ")+")")
	}
	query := "SELECT " + entryColumns + " FROM messages m"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY arrival, id LIMIT ?"
	args = append(args, f.Limit)
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list the queue: %w", err)
	}
	var p Page
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return Page{}, fmt.Errorf("list the queue: %w", err)
		}
		p.Entries = append(p.Entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list the queue: %w", err)
	}
	for i := range p.Entries {
		if err := q.readRcpts(ctx, &p.Entries[i]); err != nil {
			return Page{}, fmt.Errorf("list the queue: %w", err)
		}
	}
	if len(p.Entries) == f.Limit {
		last := p.Entries[len(p.Entries)-1]
		p.Next = Cursor{last.Arrival, last.ID}
	}
	return p, nil
}

const entryColumns = "id, sender, arrival, size, verdict, direction, unscanned, kind, delay_notice"

func scanEntry(row interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var arrival int64
	err := row.Scan(&e.ID, &e.From, &arrival, &e.Size, &e.Verdict, &e.Direction, &e.Unscanned, &e.Kind, &e.DelayNoticeSent)
	e.Arrival = fromMicros(arrival)
	return e, err
}

// readRcpts fills in e's recipients; a deferred one being tried shows as
// active.
func (q *Queue) readRcpts(ctx context.Context, e *Entry) error {
	rows, err := q.db.QueryContext(ctx, `SELECT rcpt, dest, state, attempts, next_attempt, first_attempt, last_attempt,
		last_code, last_enhanced, last_text, last_host FROM rcpts WHERE msg = ? ORDER BY rcpt`, e.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r RcptEntry
		var st int
		var next, first, last int64
		if err := rows.Scan(&r.Rcpt, &r.Destination, &st, &r.Attempts, &next, &first, &last,
			&r.LastCode, &r.LastEnhanced, &r.LastText, &r.LastHost); err != nil {
			return err
		}
		r.State = stateNames[st]
		if st == stDeferred {
			r.NextAttempt = fromMicros(next)
			if q.inFlight(jobKey{e.ID, r.Destination}) {
				r.State = StateActive
			}
		}
		r.FirstAttempt, r.LastAttempt = fromMicros(first), fromMicros(last)
		e.Rcpts = append(e.Rcpts, r)
	}
	return rows.Err()
}

func (q *Queue) inFlight(k jobKey) bool {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	j, ok := q.s.jobs[k]
	return ok && j.index < 0
}

// Get returns the entry of message id, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (Entry, error) {
	e, err := scanEntry(q.db.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM messages WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	if err == nil {
		err = q.readRcpts(ctx, &e)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("get %s: %w", id, err)
	}
	return e, nil
}

// Body returns the body of message id, or ErrNotFound.
func (q *Queue) Body(ctx context.Context, id string) ([]byte, error) {
	var inline []byte
	var file string
	err := q.db.QueryRowContext(ctx, "SELECT body, file FROM bodies WHERE id = ?", id).Scan(&inline, &file)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("body of %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("body of %s: %w", id, err)
	}
	return q.readBody(inline, file)
}

// dests returns the destinations of message id's recipients in state ≤ maxState.
func (q *Queue) dests(t *tx, id string, maxState int) ([]string, error) {
	rows, err := t.QueryContext(t.ctx, "SELECT DISTINCT dest FROM rcpts WHERE msg = ? AND state <= ?", id, maxState)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// RetryNow makes the waiting recipients of message id due now, and lifts
// the holds of their destinations.
func (q *Queue) RetryNow(ctx context.Context, id string) error {
	now := q.usNow()
	err := q.w.do(ctx, func(t *tx) error {
		ds, err := q.dests(t, id, stDeferred)
		if err != nil {
			return err
		}
		if err := q.move(t, id, "state <= ?", []any{stDeferred}, "next_attempt = ?", []any{now}, func(old int) int { return old }); err != nil {
			return err
		}
		t.onCommit(func() {
			q.liftHolds(ds)
			for _, d := range ds {
				q.schedule(jobKey{id, d}, now)
			}
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("retry %s: %w", id, err)
	}
	return nil
}

// flushBatch bounds the recipients one transaction of Flush moves.
const flushBatch = 10000

// Flush makes every waiting recipient due now and lifts every
// destination's hold, in transactions of flushBatch recipients so that
// Enqueues go on meanwhile.
func (q *Queue) Flush(ctx context.Context) error {
	now := q.usNow()
	for {
		var n int64
		err := q.w.do(ctx, func(t *tx) error {
			res, err := t.ExecContext(t.ctx, `UPDATE rcpts SET next_attempt = ? WHERE (msg, rcpt) IN
				(SELECT msg, rcpt FROM rcpts WHERE state <= 1 AND next_attempt > ? LIMIT ?)`, now, now, flushBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return fmt.Errorf("flush the queue: %w", err)
		}
		if n < flushBatch {
			break
		}
	}
	q.s.mu.Lock()
	for _, j := range q.s.jobs {
		if j.index >= 0 && j.due > now {
			j.due = now
			q.s.fixJob(j)
		}
	}
	q.s.lower(cursor{t: math.MinInt64})
	q.s.mu.Unlock()
	q.liftHolds(nil)
	return nil
}

// Hold keeps message id's waiting recipients from delivery until
// Release.
func (q *Queue) Hold(ctx context.Context, id string) error {
	err := q.w.do(ctx, func(t *tx) error {
		if err := q.move(t, id, "state <= ?", []any{stDeferred}, "state = ?", []any{stHeld}, func(int) int { return stHeld }); err != nil {
			return err
		}
		t.onCommit(func() { q.unschedule(id) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("hold %s: %w", id, err)
	}
	return nil
}

// Release puts message id's held or quarantined recipients back in
// delivery, due now.
func (q *Queue) Release(ctx context.Context, id string) error {
	now := q.usNow()
	err := q.w.do(ctx, func(t *tx) error {
		var ds []string
		rows, err := t.QueryContext(t.ctx, "SELECT DISTINCT dest FROM rcpts WHERE msg = ? AND state IN (?, ?)", id, stHeld, stQuarantined)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			ds = append(ds, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// attempts decides between active and deferred, which the
		// counters cannot tell apart from the old state: count them.
		var tried int64
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM rcpts WHERE msg = ? AND state IN (?, ?) AND attempts > 0", id, stHeld, stQuarantined).Scan(&tried); err != nil {
			return err
		}
		if err := q.move(t, id, "state IN (?, ?)", []any{stHeld, stQuarantined},
			"state = CASE attempts WHEN 0 THEN 0 ELSE 1 END, next_attempt = ?", []any{now},
			func(int) int { return stActive }); err != nil {
			return err
		}
		t.delta[stActive] -= tried
		t.delta[stDeferred] += tried
		t.onCommit(func() {
			for _, d := range ds {
				q.schedule(jobKey{id, d}, now)
			}
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// Delete removes message id from the queue; with bounce, its sender gets
// a failure notice for the recipients not yet delivered.
func (q *Queue) Delete(ctx context.Context, id string, bounce bool) error {
	now := q.now()
	err := q.w.do(ctx, func(t *tx) error {
		m := &msgRow{id: id}
		var arrival int64
		var file string
		err := t.QueryRowContext(t.ctx, `SELECT sender, arrival, direction, kind, body, file FROM messages JOIN bodies USING (id) WHERE id = ?`, id).
			Scan(&m.sender, &arrival, &m.direction, &m.kind, &m.body, &file)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if bounce {
			if m.body, err = q.readBody(m.body, file); err != nil {
				return err
			}
		}
		m.arrival = fromMicros(arrival)
		if bounce {
			var recips []dsn.Recipient
			rows, err := t.QueryContext(t.ctx, "SELECT rcpt, last_attempt FROM rcpts WHERE msg = ? AND state < ? ORDER BY rcpt", id, stDelivered)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r string
				var last int64
				if err := rows.Scan(&r, &last); err != nil {
					rows.Close()
					return err
				}
				recips = append(recips, dsn.Recipient{Rcpt: r, Action: dsn.Failed, Status: "5.0.0",
					Diagnostic: "deleted from the queue by an administrator", LastAttempt: fromMicros(last)})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(recips) > 0 {
				if err := q.notice(t, m, kindFailure, recips, now); err != nil {
					return err
				}
			}
		}
		if err := q.drop(t, id); err != nil {
			return err
		}
		t.onCommit(func() { q.unschedule(id) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

// Stats is the queue's depth: recipients per state, and messages.
type Stats struct {
	Messages    int64
	Active      int64 // never tried, or being tried
	Deferred    int64
	Held        int64
	Quarantined int64
	// InFlight counts the deliveries under way, HeldDestinations the
	// destinations held after failures to reach them.
	InFlight         int
	HeldDestinations int
}

// Stats returns the queue's depth.
func (q *Queue) Stats() Stats {
	q.countsMu.Lock()
	st := Stats{
		Messages:    q.counts[countMessages],
		Active:      q.counts[stActive],
		Deferred:    q.counts[stDeferred],
		Held:        q.counts[stHeld],
		Quarantined: q.counts[stQuarantined],
	}
	q.countsMu.Unlock()
	now := q.usNow()
	q.s.mu.Lock()
	st.Active += q.s.inFlightDeferred
	st.Deferred -= q.s.inFlightDeferred
	st.InFlight = q.s.inFlight
	for _, d := range q.s.dests {
		if d.hold > now {
			st.HeldDestinations++
		}
	}
	q.s.mu.Unlock()
	return st
}
