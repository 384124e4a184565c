package queue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is where a recipient stands.
type State string

// The states of a recipient. Delivered and bounced ones are kept only
// until every recipient of their message is delivered or bounced: then
// the message leaves the queue.
const (
	StateActive      State = "active"      // never tried yet, or being tried
	StateDeferred    State = "deferred"    // tried, waiting for its next try
	StateHeld        State = "held"        // kept by an operator (Hold)
	StateQuarantined State = "quarantined" // kept because the scan detected something
	StateDelivered   State = "delivered"
	StateBounced     State = "bounced"
)

// The states as stored (see the migration).
const (
	stActive = iota
	stDeferred
	stHeld
	stQuarantined
	stDelivered
	stBounced
)

var stateNames = [...]State{StateActive, StateDeferred, StateHeld, StateQuarantined, StateDelivered, StateBounced}

// stored returns the stored code of s, or -1.
func (s State) stored() int { return slices.Index(stateNames[:], s) }

// Directions of a message.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Message is what Enqueue takes.
type Message struct {
	// ID names the message; Enqueue is idempotent by it.
	ID string
	// From is the envelope sender, "" for the null sender.
	From  string
	Rcpts []string
	Body  []byte
	// Arrival is when the gateway answered 250; zero means now.
	Arrival   time.Time
	Direction string // Inbound or Outbound
	// Verdict is the scan's ("clean", "detected", ...), named in the
	// VerdictHeader of the delivered message.
	Verdict string
	// Unscanned marks a message let through without a verdict (the hold
	// timed out): it is delivered marked so.
	Unscanned bool
	// Quarantine keeps the message's recipients out of delivery.
	Quarantine bool
}

// validate reports what is missing from m.
func (m *Message) validate() error {
	var errs []error
	if m.ID == "" {
		errs = append(errs, errors.New("no id"))
	}
	if len(m.Rcpts) == 0 {
		errs = append(errs, errors.New("no recipient"))
	}
	if m.Direction != Inbound && m.Direction != Outbound {
		errs = append(errs, fmt.Errorf("direction %q: want %q or %q", m.Direction, Inbound, Outbound))
	}
	return errors.Join(errs...)
}

// Enqueue adds m to the queue and returns once it is durable. It is
// idempotent by m.ID: for a message the queue has, it adds nothing and
// reports false, but records the verdict, which may have come later (a
// message let through unscanned, then found to be detected): Quarantine
// then quarantines its recipients not yet delivered. A message that left
// the queue unscanned (delivered, bounced or deleted, within 30 days) is
// not added again: its late verdict finds nothing left to deliver.
func (q *Queue) Enqueue(ctx context.Context, m Message) (added bool, err error) {
	if err := m.validate(); err != nil {
		return false, fmt.Errorf("enqueue %s: %w", m.ID, err)
	}
	now := q.now()
	if m.Arrival.IsZero() {
		m.Arrival = now
	}
	rcpts := make([]string, 0, len(m.Rcpts))
	for _, r := range m.Rcpts {
		if !slices.Contains(rcpts, r) {
			rcpts = append(rcpts, r)
		}
	}
	m.Rcpts = rcpts
	dests := make([]string, len(rcpts))
	for i, r := range rcpts {
		dests[i] = q.deliverer.Destination(r)
	}
	var file string // the body's own file, for a large one
	if len(m.Body) >= FileBodySize {
		if file, err = q.writeBodyFile(m.ID, m.Body); err != nil {
			return false, fmt.Errorf("enqueue %s: %w", m.ID, err)
		}
	}
	err = q.w.do(ctx, func(t *tx) error {
		var gone int
		err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM released WHERE id = ?", m.ID).Scan(&gone)
		if err != nil || gone > 0 {
			return err
		}
		added, err = q.insert(t, &m, dests, "", now, file)
		if err != nil || added {
			return err
		}
		return q.lateVerdict(t, &m)
	})
	if file != "" && (err != nil || !added) {
		q.removeBodyFile(file) // no row names it
	}
	if err != nil {
		return false, fmt.Errorf("enqueue %s: %w", m.ID, err)
	}
	return added, nil
}

// insert stores m, unless the queue has its id, and schedules its
// recipients once the transaction is durable. A body written to file
// (see body.go) is stored by its name.
func (q *Queue) insert(t *tx, m *Message, dests []string, kind string, now time.Time, file string) (bool, error) {
	res, err := t.stmt(q.stmts.insertMessage).ExecContext(t.ctx, m.ID, m.From, micros(m.Arrival), len(m.Body), m.Verdict, m.Direction, m.Unscanned, kind)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	body := m.Body
	if file != "" {
		body = []byte{}
		t.syncBodies = true
	}
	if _, err := t.stmt(q.stmts.insertBody).ExecContext(t.ctx, m.ID, body, file); err != nil {
		return false, err
	}
	state := stActive
	if m.Quarantine {
		state = stQuarantined
	}
	due := micros(now)
	for i, r := range m.Rcpts {
		if _, err := t.stmt(q.stmts.insertRcpt).ExecContext(t.ctx, m.ID, r, dests[i], state, due); err != nil {
			return false, err
		}
	}
	t.delta[state] += int64(len(m.Rcpts))
	t.delta[countMessages]++
	if state == stActive {
		id := m.ID
		keys := uniqueDests(dests)
		t.onCommit(func() {
			for _, d := range keys {
				q.schedule(jobKey{id, d}, due)
			}
		})
	}
	return true, nil
}

func uniqueDests(dests []string) []string {
	u := slices.Clone(dests)
	slices.Sort(u)
	return slices.Compact(u)
}

// stmts are the statements of Enqueue, prepared at Open: parsing them
// for each message cost a sixth of its CPU.
type stmts struct {
	insertMessage, insertBody, insertRcpt *sql.Stmt
}

func (q *Queue) prepare(ctx context.Context) error {
	for _, p := range []struct {
		s     **sql.Stmt
		query string
	}{
		{&q.stmts.insertMessage, `INSERT INTO messages (id, sender, arrival, size, verdict, direction, unscanned, kind)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		{&q.stmts.insertBody, "INSERT INTO bodies (id, body, file) VALUES (?, ?, ?)"},
		{&q.stmts.insertRcpt, "INSERT INTO rcpts (msg, rcpt, dest, state, next_attempt) VALUES (?, ?, ?, ?, ?)"},
	} {
		st, err := q.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.s = st
	}
	return nil
}

func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.insertMessage, s.insertBody, s.insertRcpt} {
		if st != nil {
			st.Close()
		}
	}
}

// lateVerdict records the verdict of a message enqueued before, and
// quarantines its recipients still waiting when m says so.
func (q *Queue) lateVerdict(t *tx, m *Message) error {
	if _, err := t.ExecContext(t.ctx, "UPDATE messages SET verdict = ?, unscanned = ? WHERE id = ?", m.Verdict, m.Unscanned, m.ID); err != nil {
		return err
	}
	if !m.Quarantine {
		return nil
	}
	if err := q.move(t, m.ID, "state <= ?", []any{stHeld}, "state = ?", []any{stQuarantined}, func(int) int { return stQuarantined }); err != nil {
		return err
	}
	id := m.ID
	t.onCommit(func() { q.unschedule(id) })
	return nil
}

// move sets the recipients of message id that match where (placeholders
// filled by args) with set (setArgs), and keeps the counters right:
// newState tells what state a recipient of a given old one ends in. It
// returns ErrNotFound when the queue does not have the message.
func (q *Queue) move(t *tx, id, where string, args []any, set string, setArgs []any, newState func(old int) int) error {
	rows, err := t.QueryContext(t.ctx, "SELECT state, count(*) FROM rcpts WHERE msg = ? AND "+where+" GROUP BY state", append([]any{id}, args...)...)
	if err != nil {
		return err
	}
	var found bool
	var delta [numCounts]int64
	for rows.Next() {
		var st, n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return err
		}
		found = true
		delta[st] -= int64(n)
		delta[newState(st)] += int64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if !found {
		var one int
		err := t.QueryRowContext(t.ctx, "SELECT 1 FROM messages WHERE id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	if _, err := t.ExecContext(t.ctx, "UPDATE rcpts SET "+set+" WHERE msg = ? AND "+where, slices.Concat(setArgs, []any{id}, args)...); err != nil {
		return err
	}
	for s, d := range delta {
		t.delta[s] += d
	}
	return nil
}

// micros is how times are stored: Unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// newID names a notice of ours: the original's id, the kind, and random
// hex.
func newID(orig, kind string) string {
	var b [6]byte
	rand.Read(b[:])
	return orig + "." + kind + "." + hex.EncodeToString(b[:])
}
