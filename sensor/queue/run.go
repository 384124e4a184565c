package queue

import (
	"bytes"
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ospreysec/osprey/pkg/dsn"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/schedule"
)

// VerdictHeader is the header the queue puts on top of the messages it
// delivers, naming the scan's verdict, or "unscanned".
const VerdictHeader = "X-Osprey-Verdict"

// Attempt is one delivery attempt and what came of it, for the audit log.
type Attempt struct {
	ID, From, Direction, Destination string
	Started                          time.Time
	Result                           delivery.Result
	Rcpts                            []AttemptRcpt
}

// AttemptRcpt is what an attempt left a recipient in: delivered,
// deferred (until NextAttempt) or bounced. A recipient held or
// quarantined while it was tried keeps that state, and a try cut short by
// the queue stopping counts for nothing: it shows as active.
type AttemptRcpt struct {
	Rcpt        string
	State       State
	NextAttempt time.Time
	// Reply is what the attempt ended with for the recipient: the next
	// hop's reply, or ours when it got no answer (a connection refused).
	Reply delivery.RcptResult
}

// Run pages in what is due, starts the deliveries, and returns once ctx
// ended and every delivery under way stored its outcome.
func (q *Queue) Run(ctx context.Context) error {
	if !q.running.CompareAndSwap(false, true) {
		return errors.New("run queue: already running")
	}
	defer q.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	var loadAfter int64 // µs; after a failed load
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := q.usNow()
		if now >= loadAfter {
			if err := q.load(ctx, now); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				q.log.WarnContext(ctx, "page in the due deliveries", "err", err)
				loadAfter = now + time.Second.Microseconds()
			}
		}
		if pb := q.takePushback(); len(pb) > 0 {
			wg.Go(func() { q.pushBack(ctx, pb) })
		}
		cfg := q.config()
		sending := q.sending.Load()
		if sending {
			for _, j := range q.take(now, cfg.Concurrency) {
				wg.Go(func() { q.attempt(ctx, j) })
			}
		}
		next := q.nextEvent(now, sending, cfg.Concurrency)
		if next < loadAfter && next > now {
			next = loadAfter
		}
		// A floor keeps a late clock (or a bug) from spinning.
		wait := max(time.Duration(next-now)*time.Microsecond, time.Millisecond)
		t := time.NewTimer(min(wait, lookahead))
		select {
		case <-q.s.wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// load pages in the schedulable recipients due within the lookahead, in
// the index's order from the cursor, as many jobs as memory takes.
func (q *Queue) load(ctx context.Context, now int64) error {
	s := &q.s
	s.mu.Lock()
	if !s.loadDue(now) {
		s.mu.Unlock()
		return nil
	}
	room := maxWaiting - s.waiting
	from := s.cursor
	s.loading, s.lowered = true, nil
	s.mu.Unlock()

	until := now + lookahead.Microseconds()
	type row struct {
		due int64
		k   jobKey
	}
	var got []row
	err := func() error {
		rows, err := q.db.QueryContext(ctx, `SELECT next_attempt, msg, dest FROM rcpts
			WHERE state <= 1 AND (next_attempt, msg, dest) > (?, ?, ?) AND next_attempt <= ?
			ORDER BY next_attempt, msg, dest LIMIT ?`, from.t, from.msg, from.dest, until, room)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.due, &r.k.msg, &r.k.dest); err != nil {
				return err
			}
			got = append(got, r)
		}
		return rows.Err()
	}()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.loading = false
	if err != nil {
		return err
	}
	for _, r := range got {
		if j, ok := s.jobs[r.k]; ok {
			if j.index >= 0 && r.due < j.due {
				j.due = r.due
				s.fixJob(j)
			}
			if j.index < 0 && s.inHand(j) && (j.redue == 0 || r.due < j.redue) {
				j.redue = r.due
			}
			continue
		}
		q.addLocked(r.k, r.due)
	}
	next := endOf(until)
	if len(got) == room {
		last := got[len(got)-1]
		next = cursor{last.due, last.k.msg, last.k.dest}
	}
	if s.lowered != nil && s.lowered.less(next) {
		next = *s.lowered
	}
	s.cursor, s.lowered = next, nil
	return nil
}

// loadDue reports whether load has something to do: room in memory
// (enough of it to be worth a query, unless nothing waits) and a cursor
// within half the lookahead of now.
func (s *sched) loadDue(now int64) bool {
	room := maxWaiting - s.waiting
	return room > 0 && (room >= loadBatch || s.waiting == 0) && s.cursor.t <= now+lookahead.Microseconds()/2
}

// nextEvent returns when the dispatcher has something to do next (µs),
// or MaxInt64.
func (q *Queue) nextEvent(now int64, sending bool, concurrency int) int64 {
	s := &q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	next := int64(math.MaxInt64)
	if sending && s.inFlight < concurrency && s.ready.Len() > 0 {
		next = s.ready[0].readyAt()
	}
	if room := maxWaiting - s.waiting; room > 0 && (room >= loadBatch || s.waiting == 0) {
		next = min(next, s.cursor.t-lookahead.Microseconds()/2)
	}
	return next
}

func (s *sched) fixJob(j *job) {
	if j.index >= 0 {
		heap.Fix(&j.d.jobs, j.index)
		s.fix(j.d)
	}
}

func (q *Queue) takePushback() []*job {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	pb := q.s.pushback
	q.s.pushback = nil
	return pb
}

// pushBack writes the jobs of held destinations as deferred until their
// holds end, with the failure that started the hold as their reply
// (Postfix's "delivery temporarily suspended"), and counts no attempt.
func (q *Queue) pushBack(ctx context.Context, jobs []*job) {
	s := &q.s
	type push struct {
		k      jobKey
		until  int64
		reason delivery.RcptResult
		host   string
	}
	s.mu.Lock()
	ps := make([]push, len(jobs))
	for i, j := range jobs {
		ps[i] = push{j.key, j.d.hold, j.d.reason, j.d.host}
	}
	s.mu.Unlock()
	err := q.w.do(context.WithoutCancel(ctx), func(t *tx) error {
		for _, p := range ps {
			err := q.move(t, p.k.msg, "dest = ? AND state <= 1 AND next_attempt < ?", []any{p.k.dest, p.until},
				"state = 1, next_attempt = ?, last_code = ?, last_enhanced = ?, last_text = ?, last_host = ?",
				[]any{p.until, p.reason.Code, p.reason.Enhanced, "delivery temporarily suspended: " + p.reason.Text, p.host},
				func(int) int { return stDeferred })
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, j := range jobs {
		s.forgetLocked(j)
		if err != nil {
			// The rows are due as they were: read them again.
			s.lower(cursor{t: math.MinInt64})
			continue
		}
		q.scheduleLocked(j.key, ps[i].until)
	}
	if err != nil {
		q.log.WarnContext(ctx, "defer the deliveries of a held destination", "err", err)
	}
	q.kick()
}

// msgRow is a stored message.
type msgRow struct {
	id, sender, verdict, direction, kind string
	arrival                              time.Time
	unscanned, delayNotice               bool
	body                                 []byte
}

type rcptRow struct {
	rcpt     string
	state    int
	attempts int
}

// readJob reads the message of job k and its recipients due at now (µs);
// a nil message when the queue no longer has it.
func (q *Queue) readJob(ctx context.Context, k jobKey, now int64) (*msgRow, []rcptRow, error) {
	m := &msgRow{id: k.msg}
	var arrival int64
	var file string
	err := q.db.QueryRowContext(ctx, `SELECT sender, arrival, verdict, direction, kind, unscanned, delay_notice, body, file
		FROM messages JOIN bodies USING (id) WHERE id = ?`, k.msg).
		Scan(&m.sender, &arrival, &m.verdict, &m.direction, &m.kind, &m.unscanned, &m.delayNotice, &m.body, &file)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if m.body, err = q.readBody(m.body, file); err != nil {
		return nil, nil, err
	}
	m.arrival = fromMicros(arrival)
	rows, err := q.db.QueryContext(ctx, `SELECT rcpt, state, attempts FROM rcpts
		WHERE msg = ? AND dest = ? AND state <= 1 AND next_attempt <= ? ORDER BY rcpt`, k.msg, k.dest, now)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var rs []rcptRow
	for rows.Next() {
		var r rcptRow
		if err := rows.Scan(&r.rcpt, &r.state, &r.attempts); err != nil {
			return nil, nil, err
		}
		rs = append(rs, r)
	}
	return m, rs, rows.Err()
}

// redirect moves the recipients of job k whose destination is no longer
// k's (the configuration changed since they were queued: a domain got
// hosts of its own, or lost them) to the job of their new destination,
// due now, and returns those that stay. Without it such a recipient would
// be deferred at every attempt of its old job, which the new routing no
// longer delivers it with.
func (q *Queue) redirect(ctx context.Context, k jobKey, rs []rcptRow, now int64) ([]rcptRow, error) {
	moved := map[string][]string{}
	stay := rs[:0:0]
	for _, r := range rs {
		if d := q.deliverer.Destination(r.rcpt); d != k.dest {
			moved[d] = append(moved[d], r.rcpt)
			continue
		}
		stay = append(stay, r)
	}
	if len(moved) == 0 {
		return rs, nil
	}
	err := q.w.do(context.WithoutCancel(ctx), func(t *tx) error {
		for d, rcpts := range moved {
			for _, r := range rcpts {
				if _, err := t.ExecContext(t.ctx, "UPDATE rcpts SET dest = ?, next_attempt = ? WHERE msg = ? AND rcpt = ? AND state <= 1",
					d, now, k.msg, r); err != nil {
					return err
				}
			}
		}
		t.onCommit(func() {
			for d := range moved {
				q.schedule(jobKey{k.msg, d}, now)
			}
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for d, rcpts := range moved {
		q.log.InfoContext(ctx, "recipients moved to their destination under the new configuration", "id", k.msg, "from", k.dest, "to", d, "rcpts", len(rcpts))
	}
	return stay, nil
}

// nextDue returns when the earliest schedulable recipient of job k is
// due (µs), or 0 when it has none.
func nextDue(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, k jobKey) (int64, error) {
	var due sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT min(next_attempt) FROM rcpts WHERE msg = ? AND dest = ? AND state <= 1", k.msg, k.dest).Scan(&due)
	return due.Int64, err
}

// outcome is what an attempt decided for one recipient.
type outcome struct {
	rcptRow
	res   delivery.RcptResult
	state int // stDelivered, stDeferred, stBounced; -1: not an attempt
	due   int64
}

// attempt delivers job j once and stores what came of it.
func (q *Queue) attempt(ctx context.Context, j *job) {
	cfg := q.config()
	start := q.now()
	m, rs, err := q.readJob(ctx, j.key, micros(start))
	if err != nil || len(rs) == 0 {
		due := int64(0)
		if err == nil && m != nil {
			due, err = nextDue(ctx, q.db, j.key)
		}
		if err != nil {
			if ctx.Err() == nil {
				q.log.WarnContext(ctx, "read a delivery", "id", j.key.msg, "err", err)
			}
			// Try again in a minute; the rows stay due, so the job
			// stays in memory.
			q.finishForce(j, micros(start)+time.Minute.Microseconds())
			return
		}
		q.finish(j, due)
		return
	}
	if rs, err = q.redirect(ctx, j.key, rs, micros(start)); err != nil || len(rs) == 0 {
		due := int64(0)
		if err == nil {
			due, err = nextDue(ctx, q.db, j.key)
		}
		if err != nil {
			if ctx.Err() == nil {
				q.log.WarnContext(ctx, "move recipients to their new destination", "id", j.key.msg, "err", err)
			}
			q.finishForce(j, micros(start)+time.Minute.Microseconds())
			return
		}
		q.finish(j, due)
		return
	}
	var deferred int64
	for _, r := range rs {
		if r.state == stDeferred {
			deferred++
		}
	}
	q.s.mu.Lock()
	q.s.inFlightDeferred += deferred
	q.s.mu.Unlock()
	defer func() {
		q.s.mu.Lock()
		q.s.inFlightDeferred -= deferred
		q.s.mu.Unlock()
	}()

	body := m.body
	if v := verdictOf(m); v != "" {
		body = append([]byte(VerdictHeader+": "+v+"\r\n"), body...)
	}
	req := delivery.Request{ID: m.id, Destination: j.key.dest, From: m.sender, Body: bytes.NewReader(body), Size: int64(len(body))}
	for _, r := range rs {
		req.Rcpts = append(req.Rcpts, r.rcpt)
	}
	res := q.deliverer.Deliver(ctx, req)
	stopped := ctx.Err() != nil
	now := q.now()
	outs, unreachable := classify(rs, res, cfg, m.arrival, now, stopped)

	var nextAt int64
	err = q.w.do(context.WithoutCancel(ctx), func(t *tx) error {
		var err error
		nextAt, err = q.store(t, m, j.key, outs, res.Host, cfg, now)
		return err
	})
	if err != nil {
		q.log.ErrorContext(ctx, "store a delivery's outcome; it will be tried again", "id", m.id, "destination", j.key.dest, "err", err)
		q.finishForce(j, micros(now)+time.Minute.Microseconds())
		return
	}
	q.report(m, j.key.dest, start, res, outs)
	delivered, deferring := false, false
	for _, o := range outs {
		delivered = delivered || o.state == stDelivered
		deferring = deferring || o.state == stDeferred
	}
	if !stopped {
		var reason delivery.RcptResult
		if len(outs) > 0 {
			reason = outs[0].res
		}
		hold := micros(now) + schedule.Backoff{Min: time.Minute, Max: cfg.MinBackoff}.Delay(q.destFailures(j.key.dest)+1).Microseconds()
		q.destOutcome(j.key.dest, delivered, deferring, unreachable, hold, reason, res.Host)
	}
	if stopped {
		nextAt = 0
	}
	q.finish(j, nextAt)
}

func verdictOf(m *msgRow) string {
	switch {
	case m.unscanned:
		return "unscanned"
	case m.kind != "":
		return ""
	}
	return m.verdict
}

// classify decides each recipient's fate from res, and whether the
// destination could not be reached at all (every recipient a 4.4.x of
// ours, no host answered): Postfix's dead destination.
func classify(rs []rcptRow, res delivery.Result, cfg Config, arrival, now time.Time, stopped bool) ([]outcome, bool) {
	byRcpt := make(map[string]delivery.RcptResult, len(res.Rcpts))
	for _, r := range res.Rcpts {
		byRcpt[r.Rcpt] = r
	}
	unreachable := res.Host == "" && !stopped
	outs := make([]outcome, len(rs))
	for i, r := range rs {
		rr, ok := byRcpt[r.rcpt]
		if !ok {
			rr = delivery.RcptResult{Rcpt: r.rcpt, Code: 451, Enhanced: "4.3.0", Text: "the delivery returned no result for this recipient"}
		}
		o := outcome{rcptRow: r, res: rr, state: stDeferred}
		switch {
		case rr.OK():
			o.state = stDelivered
		case rr.Permanent():
			o.state = stBounced
		case stopped:
			o.state = -1
		case now.Sub(arrival) >= cfg.MaxLifetime:
			o.state = stBounced
		default:
			o.due = micros(now) + schedule.Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}.Delay(r.attempts+1).Microseconds()
		}
		if rr.OK() || rr.Permanent() || !strings.HasPrefix(rr.Enhanced, "4.4.") {
			unreachable = false
		}
		outs[i] = o
	}
	return outs, unreachable && len(outs) > 0
}

// store writes the outcomes of an attempt at message m for job k, sends
// the notices they call for, deletes the message once every recipient is
// done, and returns when job k is due next (µs; 0: never).
func (q *Queue) store(t *tx, m *msgRow, k jobKey, outs []outcome, host string, cfg Config, now time.Time) (int64, error) {
	cur := map[string]int{}
	rows, err := t.QueryContext(t.ctx, "SELECT rcpt, state FROM rcpts WHERE msg = ? AND dest = ?", k.msg, k.dest)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var r string
		var st int
		if err := rows.Scan(&r, &st); err != nil {
			rows.Close()
			return 0, err
		}
		cur[r] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(cur) == 0 {
		return 0, nil // deleted meanwhile
	}
	nowUS := micros(now)
	var bounced, delayed []dsn.Recipient
	for i := range outs {
		o := &outs[i]
		st, ok := cur[o.rcpt]
		switch {
		case !ok, o.state < 0, st >= stDelivered:
			o.state = -1
			continue
		case o.state != stDelivered && st > stDeferred:
			// Held or quarantined meanwhile: it stays so.
			o.state = st
			continue
		}
		_, err := t.ExecContext(t.ctx, `UPDATE rcpts SET state = ?, attempts = attempts + 1, next_attempt = ?,
			first_attempt = CASE first_attempt WHEN 0 THEN ? ELSE first_attempt END, last_attempt = ?,
			last_code = ?, last_enhanced = ?, last_text = ?, last_host = ? WHERE msg = ? AND rcpt = ?`,
			o.state, o.due, nowUS, nowUS, o.res.Code, o.res.Enhanced, o.res.Text, host, k.msg, o.rcpt)
		if err != nil {
			return 0, err
		}
		t.delta[st]--
		t.delta[o.state]++
		dr := dsn.Recipient{Rcpt: o.rcpt, Status: o.res.Enhanced, RemoteMTA: hostName(host), Diagnostic: diagnostic(o.res), LastAttempt: now}
		switch o.state {
		case stBounced:
			// A recipient that expired after temporary failures keeps
			// the status of the last one, as in Postfix's notices.
			dr.Action = dsn.Failed
			if dr.Status == "" {
				dr.Status = fmt.Sprintf("%d.0.0", max(o.res.Code/100, 4))
			}
			bounced = append(bounced, dr)
		case stDeferred:
			dr.Action = dsn.Delayed
			dr.WillRetryUntil = m.arrival.Add(cfg.MaxLifetime)
			delayed = append(delayed, dr)
		}
	}
	if len(bounced) > 0 {
		if err := q.notice(t, m, kindFailure, bounced, now); err != nil {
			return 0, err
		}
	}
	if len(delayed) > 0 && cfg.DelayWarning > 0 && !m.delayNotice && now.Sub(m.arrival) >= cfg.DelayWarning && m.sender != "" {
		if err := q.notice(t, m, kindDelay, delayed, now); err != nil {
			return 0, err
		}
		if _, err := t.ExecContext(t.ctx, "UPDATE messages SET delay_notice = 1 WHERE id = ?", m.id); err != nil {
			return 0, err
		}
	}
	var left int
	if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM rcpts WHERE msg = ? AND state < ?", m.id, stDelivered).Scan(&left); err != nil {
		return 0, err
	}
	if left == 0 {
		return 0, q.drop(t, m.id)
	}
	return nextDue(t.ctx, t, k)
}

// releasedRetention is how long the queue remembers a message that left
// it unscanned.
const releasedRetention = 30 * 24 * time.Hour

// drop deletes message id and its recipients.
func (q *Queue) drop(t *tx, id string) error {
	rows, err := t.QueryContext(t.ctx, "SELECT state, count(*) FROM rcpts WHERE msg = ? GROUP BY state", id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var st, n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return err
		}
		t.delta[st] -= int64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var file string
	if err := t.QueryRowContext(t.ctx, "SELECT file FROM bodies WHERE id = ?", id).Scan(&file); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, stmt := range []string{"DELETE FROM rcpts WHERE msg = ?", "DELETE FROM bodies WHERE id = ?"} {
		if _, err := t.ExecContext(t.ctx, stmt, id); err != nil {
			return err
		}
	}
	if file != "" {
		t.onCommit(func() { q.removeBodyFile(file) })
	}
	// An unscanned message's verdict may come after it left: remember it
	// (see Enqueue).
	now := micros(q.now())
	if _, err := t.ExecContext(t.ctx, `INSERT INTO released (id, at) SELECT id, ? FROM messages WHERE id = ? AND unscanned
		ON CONFLICT (id) DO NOTHING`, now, id); err != nil {
		return err
	}
	if _, err := t.ExecContext(t.ctx, "DELETE FROM released WHERE at < ?", now-releasedRetention.Microseconds()); err != nil {
		return err
	}
	res, err := t.ExecContext(t.ctx, "DELETE FROM messages WHERE id = ?", id)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	t.delta[countMessages] -= n
	return err
}

// hostName is the name part of a Result.Host ("mx.example.com
// [192.0.2.1]:25" → "mx.example.com").
func hostName(host string) string {
	name, _, _ := strings.Cut(host, " ")
	return name
}

func diagnostic(r delivery.RcptResult) string {
	return strings.TrimSpace(fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text))
}

// report counts an attempt in the metrics and hands it to OnAttempt.
func (q *Queue) report(m *msgRow, dest string, start time.Time, res delivery.Result, outs []outcome) {
	a := Attempt{ID: m.id, From: m.sender, Direction: m.direction, Destination: dest, Started: start, Result: res}
	now := q.now()
	for _, o := range outs {
		ar := AttemptRcpt{Rcpt: o.rcpt, State: StateActive, Reply: o.res}
		if o.state >= 0 {
			ar.State = stateNames[o.state]
		}
		if o.state == stDeferred {
			ar.NextAttempt = fromMicros(o.due)
		}
		a.Rcpts = append(a.Rcpts, ar)
		switch o.state {
		case stDelivered, stDeferred, stBounced:
			q.m.attempt(dest, stateNames[o.state])
		}
		if o.state == stDelivered {
			q.m.latency.Observe(now.Sub(m.arrival).Seconds())
		}
	}
	if q.onAttempt != nil {
		q.onAttempt(a)
	}
}

func (q *Queue) destFailures(name string) int {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	if d := q.s.dests[name]; d != nil {
		return d.failures
	}
	return 0
}
