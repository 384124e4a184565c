package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The quarantine table lists what gateway sensors hold in their
// quarantines, so that the central shows it across sensors without asking
// each; the messages themselves stay on the sensors. RecordScan inserts a
// row with the record of a gateway message the central told its sensor to
// quarantine; operators' actions and the sensors' reports change its
// state; quarantine_events keeps each message's history.

// AuditQuarantine is the kind of the audit events that are steps of a
// quarantined message: quarantined, released, deleted, evicted, and the
// operators' requests, with who did each.
const AuditQuarantine = "quarantine"

// Quarantine states.
const (
	QuarantineHeld     = "quarantined"
	QuarantineReleased = "released"
	QuarantineDeleted  = "deleted"
	// QuarantineEvicted: the sensor's quarantine removed it, oldest
	// first, to stay within its bounds.
	QuarantineEvicted = "evicted"
	// QuarantineNotHeld: nothing was left to hold (delivered unscanned
	// before the verdict), or the sensor no longer had it when asked.
	QuarantineNotHeld = "not_held"
)

// Quarantined is the central's row of a quarantined message.
type Quarantined struct {
	Tenant, SensorID, MessageID string
	At                          time.Time
	State                       string
	Sender                      string
	Rcpts                       []string
	Subject, Reason, Verdict    string
	Direction                   string
	Size                        int64
	UpdatedAt                   time.Time
	// Pending is an action asked for while the sensor was offline
	// ("release", "release_to", "delete"), PendingTo the addresses of a
	// release_to, PendingBy who asked.
	Pending, PendingBy string
	PendingTo          []string
}

// QuarantineEvent is one step of a quarantined message's history.
type QuarantineEvent struct {
	At time.Time
	// Action is what happened: "quarantined", "release", "release_to",
	// "delete" (asked for: queued while the sensor was offline),
	// "released", "released_to", "deleted", "evicted", "not_held".
	Action string
	// Actor is the user who did it, or "sensor".
	Actor  string
	Detail string
}

// QuarantineQuery selects quarantined messages; empty fields select all.
type QuarantineQuery struct {
	Tenant, SensorID string
	State            string
	// Sender, Rcpt and Subject match what contains them, ignoring case.
	Sender, Rcpt, Subject string
	Since, Until          time.Time
	// Limit bounds the page (default 50, at most 500); After continues
	// from the Next of the page before.
	Limit int
	After string
}

// QuarantinePage is a page of quarantined messages, newest first.
type QuarantinePage struct {
	Messages []Quarantined
	// Next continues the listing; empty on the last page.
	Next string
}

// Bounds of the quarantine's rows.
const (
	maxQuarantineText = 998
	maxQuarantineRcpt = 100
)

// insertQuarantined adds the quarantine row of a record whose disposition
// is QUARANTINE, in tx (RecordScan's, for a new record).
func (s *Store) insertQuarantined(ctx context.Context, tx *sql.Tx, rec *ospreyv1.MessageRecord, at time.Time) error {
	env := rec.GetEnvelope()
	rcpts := env.GetRcptTo()
	if len(rcpts) > maxQuarantineRcpt {
		rcpts = rcpts[:maxQuarantineRcpt]
	}
	dir := ""
	switch env.GetDirection() {
	case ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND:
		dir = "inbound"
	case ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND:
		dir = "outbound"
	}
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO quarantine
		(tenant, sensor_id, message_id, quarantined_at, state, sender, rcpts, subject, reason, verdict, direction, size, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		rec.GetTenant(), rec.GetSensorId(), rec.GetMessageId(), micros(at), QuarantineHeld,
		clip(env.GetMailFrom(), maxQuarantineText), clip(strings.Join(rcpts, ","), 64<<10),
		clip(rec.GetHeaders().GetSubject(), maxQuarantineText), clip(rec.GetDisposition().GetReason(), maxQuarantineText),
		clip(rec.GetVerdict(), 64), dir, rec.GetSize(), micros(at))
	if err != nil {
		return s.d.wrap("insert a quarantined message", err)
	}
	return s.addQuarantineEvent(ctx, tx, rec.GetTenant(), rec.GetSensorId(), rec.GetMessageId(),
		QuarantineEvent{At: at, Action: QuarantineHeld, Actor: "central", Detail: rec.GetDisposition().GetReason()})
}

func (s *Store) addQuarantineEvent(ctx context.Context, tx *sql.Tx, tenant, sensorID, messageID string, e QuarantineEvent) error {
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO quarantine_events (tenant, sensor_id, message_id, at, action, actor, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		tenant, sensorID, messageID, micros(e.At), e.Action, clip(e.Actor, 256), clip(e.Detail, maxQuarantineText))
	if err != nil {
		return s.d.wrap("record a quarantine event", err)
	}
	return nil
}

const quarantineColumns = `tenant, sensor_id, message_id, quarantined_at, state, sender, rcpts, subject, reason, verdict,
	direction, size, updated_at, pending, pending_to, pending_by`

func (s *Store) scanQuarantined(rows *sql.Rows) ([]Quarantined, error) {
	defer rows.Close()
	var out []Quarantined
	for rows.Next() {
		var q Quarantined
		var at, updated int64
		var rcpts, pendingTo string
		if err := rows.Scan(&q.Tenant, &q.SensorID, &q.MessageID, &at, &q.State, &q.Sender, &rcpts, &q.Subject, &q.Reason,
			&q.Verdict, &q.Direction, &q.Size, &updated, &q.Pending, &pendingTo, &q.PendingBy); err != nil {
			return nil, s.d.wrap("read quarantined messages", err)
		}
		q.At, q.UpdatedAt = time.UnixMicro(at).UTC(), time.UnixMicro(updated).UTC()
		q.Rcpts, q.PendingTo = splitList(rcpts), splitList(pendingTo)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read quarantined messages", err)
	}
	return out, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ListQuarantine returns a page of the quarantined messages q selects in
// scope, newest first. A tenant outside scope has none.
func (s *Store) ListQuarantine(ctx context.Context, scope store.Scope, q QuarantineQuery) (QuarantinePage, error) {
	if err := scope.Check(); err != nil {
		return QuarantinePage{}, err
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	switch {
	case q.Tenant != "":
		if !scope.Allows(q.Tenant) {
			return QuarantinePage{}, nil
		}
		add("tenant = ?", q.Tenant)
	case !scope.IsAll():
		c, a := tenantSet(scope.Tenants()).cond("tenant")
		add(c, a...)
	}
	if q.SensorID != "" {
		add("sensor_id = ?", q.SensorID)
	}
	if q.State != "" {
		add("state = ?", q.State)
	}
	for col, v := range map[string]string{"sender": q.Sender, "rcpts": q.Rcpt, "subject": q.Subject} {
		if v != "" {
			add("LOWER("+col+") LIKE ? ESCAPE '\\'", likeArg(v))
		}
	}
	if !q.Since.IsZero() {
		add("quarantined_at >= ?", micros(q.Since))
	}
	if !q.Until.IsZero() {
		add("quarantined_at < ?", micros(q.Until))
	}
	if q.After != "" {
		at, tenant, sensor, msg, ok := parseQuarantineCursor(q.After)
		if !ok {
			return QuarantinePage{}, fmt.Errorf("after: not a cursor of this listing: %w", ErrInvalidCursor)
		}
		add("(quarantined_at < ? OR quarantined_at = ? AND (tenant, sensor_id, message_id) < (?, ?, ?))", at, at, tenant, sensor, msg)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	query := "SELECT " + quarantineColumns + " FROM quarantine"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY quarantined_at DESC, tenant DESC, sensor_id DESC, message_id DESC LIMIT ?"
	rows, err := s.db.QueryContext(ctx, s.d.q(query), append(args, limit+1)...)
	if err != nil {
		return QuarantinePage{}, s.d.wrap("list quarantined messages", err)
	}
	msgs, err := s.scanQuarantined(rows)
	if err != nil {
		return QuarantinePage{}, err
	}
	page := QuarantinePage{Messages: msgs}
	if len(msgs) > limit {
		page.Messages = msgs[:limit]
		last := page.Messages[limit-1]
		page.Next = fmt.Sprintf("%d/%s/%s/%s", micros(last.At), last.Tenant, last.SensorID, last.MessageID)
	}
	return page, nil
}

// parseQuarantineCursor reads a QuarantinePage.Next.
func parseQuarantineCursor(c string) (at int64, tenant, sensor, msg string, ok bool) {
	parts := strings.SplitN(c, "/", 4)
	if len(parts) != 4 {
		return 0, "", "", "", false
	}
	if _, err := fmt.Sscan(parts[0], &at); err != nil {
		return 0, "", "", "", false
	}
	for kind, id := range map[string]string{"tenant": parts[1], "sensor": parts[2], "message": parts[3]} {
		if store.CheckID(kind, id) != nil {
			return 0, "", "", "", false
		}
	}
	return at, parts[1], parts[2], parts[3], true
}

// GetQuarantined returns the row of one quarantined message and its
// history, oldest first; store.ErrNotFound when there is none in scope.
func (s *Store) GetQuarantined(ctx context.Context, scope store.Scope, tenant, sensorID, messageID string) (Quarantined, []QuarantineEvent, error) {
	if err := checkMessageRead(scope, tenant, sensorID, messageID); err != nil {
		return Quarantined{}, nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q("SELECT "+quarantineColumns+" FROM quarantine WHERE tenant = ? AND sensor_id = ? AND message_id = ?"),
		tenant, sensorID, messageID)
	if err != nil {
		return Quarantined{}, nil, s.d.wrap("read a quarantined message", err)
	}
	got, err := s.scanQuarantined(rows)
	if err != nil {
		return Quarantined{}, nil, err
	}
	if len(got) == 0 {
		return Quarantined{}, nil, fmt.Errorf("quarantined message %s/%s: %w", sensorID, messageID, store.ErrNotFound)
	}
	erows, err := s.db.QueryContext(ctx, s.d.q(`SELECT at, action, actor, detail FROM quarantine_events
		WHERE tenant = ? AND sensor_id = ? AND message_id = ? ORDER BY at, action LIMIT 1000`), tenant, sensorID, messageID)
	if err != nil {
		return Quarantined{}, nil, s.d.wrap("read a quarantined message's history", err)
	}
	defer erows.Close()
	var events []QuarantineEvent
	for erows.Next() {
		var e QuarantineEvent
		var at int64
		if err := erows.Scan(&at, &e.Action, &e.Actor, &e.Detail); err != nil {
			return Quarantined{}, nil, s.d.wrap("read a quarantined message's history", err)
		}
		e.At = time.UnixMicro(at).UTC()
		events = append(events, e)
	}
	if err := erows.Err(); err != nil {
		return Quarantined{}, nil, s.d.wrap("read a quarantined message's history", err)
	}
	return got[0], events, nil
}

// QuarantineChange is a change of a quarantined message's row.
type QuarantineChange struct {
	// State, when set, is its new state; the pending action is cleared.
	State string
	// Pending, when set, is an action to carry out once the sensor is
	// back, with PendingTo; PendingBy asked for it.
	Pending   string
	PendingTo []string
	// Event is added to its history.
	Event QuarantineEvent
}

// UpdateQuarantined changes the row of a quarantined message and adds to
// its history, in one transaction; store.ErrNotFound when there is no
// such row in scope.
func (s *Store) UpdateQuarantined(ctx context.Context, scope store.Scope, tenant, sensorID, messageID string, c QuarantineChange) error {
	if err := checkMessageRead(scope, tenant, sensorID, messageID); err != nil {
		return err
	}
	if c.Event.At.IsZero() {
		c.Event.At = time.Now()
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		switch {
		case c.State != "":
			res, err = tx.ExecContext(ctx, s.d.q(`UPDATE quarantine SET state = ?, updated_at = ?, pending = '', pending_to = '', pending_by = ''
				WHERE tenant = ? AND sensor_id = ? AND message_id = ?`), c.State, micros(c.Event.At), tenant, sensorID, messageID)
		case c.Pending != "":
			res, err = tx.ExecContext(ctx, s.d.q(`UPDATE quarantine SET pending = ?, pending_to = ?, pending_by = ?, updated_at = ?
				WHERE tenant = ? AND sensor_id = ? AND message_id = ?`), c.Pending, strings.Join(c.PendingTo, ","), clip(c.Event.Actor, 256),
				micros(c.Event.At), tenant, sensorID, messageID)
		default:
			res, err = tx.ExecContext(ctx, s.d.q(`UPDATE quarantine SET updated_at = ? WHERE tenant = ? AND sensor_id = ? AND message_id = ?`),
				micros(c.Event.At), tenant, sensorID, messageID)
		}
		if err != nil {
			return s.d.wrap("update a quarantined message", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.d.wrap("update a quarantined message", err)
		} else if n == 0 {
			return fmt.Errorf("quarantined message %s/%s: %w", sensorID, messageID, store.ErrNotFound)
		}
		return s.addQuarantineEvent(ctx, tx, tenant, sensorID, messageID, c.Event)
	})
}

// PendingQuarantine returns the quarantined messages of a sensor with an
// action waiting for it, oldest first, at most limit.
func (s *Store) PendingQuarantine(ctx context.Context, scope store.Scope, tenant, sensorID string, limit int) ([]Quarantined, error) {
	if err := checkReport(scope, "pending quarantine actions", tenant, sensorID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q("SELECT "+quarantineColumns+` FROM quarantine
		WHERE sensor_id = ? AND pending <> '' AND tenant = ? ORDER BY updated_at LIMIT ?`), sensorID, tenant, limit)
	if err != nil {
		return nil, s.d.wrap("read pending quarantine actions", err)
	}
	return s.scanQuarantined(rows)
}

// PendingQuarantineSensors returns the sensors (tenant and id) with a
// quarantine action waiting for them, at most limit.
func (s *Store) PendingQuarantineSensors(ctx context.Context, scope store.Scope, limit int) ([][2]string, error) {
	if err := scope.RequireAll("the sensors with pending quarantine actions"); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT DISTINCT tenant, sensor_id FROM quarantine WHERE pending <> '' LIMIT ?`), limit)
	if err != nil {
		return nil, s.d.wrap("read the sensors with pending quarantine actions", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var ts [2]string
		if err := rows.Scan(&ts[0], &ts[1]); err != nil {
			return nil, s.d.wrap("read the sensors with pending quarantine actions", err)
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read the sensors with pending quarantine actions", err)
	}
	return out, nil
}

// RecordQuarantineEvents applies a sensor's report of what happened in
// its quarantine on its own account: a message still listed as held
// becomes evicted or not held. A report recorded twice changes nothing
// the second time.
func (s *Store) RecordQuarantineEvents(ctx context.Context, scope store.Scope, tenant, sensorID string, events []*ospreyv1.QuarantineEvent) error {
	if err := checkReport(scope, "quarantine events", tenant, sensorID); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			state := ""
			switch e.GetKind() {
			case ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_EVICTED:
				state = QuarantineEvicted
			case ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_NOT_HELD:
				state = QuarantineNotHeld
			}
			if state == "" || store.CheckID("message", e.GetMessageId()) != nil {
				continue
			}
			at := e.GetAt().AsTime()
			res, err := tx.ExecContext(ctx, s.d.q(`UPDATE quarantine SET state = ?, updated_at = ?
				WHERE tenant = ? AND sensor_id = ? AND message_id = ? AND state = ?`), state, micros(at), tenant, sensorID, e.GetMessageId(), QuarantineHeld)
			if err != nil {
				return s.d.wrap("record quarantine events", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			if err := s.addQuarantineEvent(ctx, tx, tenant, sensorID, e.GetMessageId(), QuarantineEvent{At: at, Action: state, Actor: "sensor"}); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrInvalidCursor is the error of a listing given a cursor it did not
// make.
var ErrInvalidCursor = errors.New("invalid cursor")

// auditQuarantine returns a page of the quarantine's steps q selects.
func (s *Store) auditQuarantine(ctx context.Context, q AuditQuery, tenants tenantSet, cursor *auditCursor, limit int) ([]AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	if c, a := tenants.cond("tenant"); c != "" {
		add(c, a...)
	}
	if q.SensorID != "" {
		add("sensor_id = ?", q.SensorID)
	}
	if !q.From.IsZero() {
		add("at >= ?", micros(q.From))
	}
	if !q.To.IsZero() {
		add("at < ?", micros(q.To))
	}
	if cond, a := after(cursor, AuditQuarantine, "at", "tenant", "sensor_id", "message_id", "action"); cond != "" {
		add(cond, a...)
	}
	query := "SELECT at, tenant, sensor_id, message_id, action, actor, detail FROM quarantine_events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at DESC, tenant DESC, sensor_id DESC, message_id DESC, action DESC LIMIT ?"
	rows, err := s.db.QueryContext(ctx, s.d.q(query), append(args, limit)...)
	if err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var qe QuarantineEvent
		var at int64
		if err := rows.Scan(&at, &e.Tenant, &e.SensorID, &e.QuarantineID, &qe.Action, &qe.Actor, &qe.Detail); err != nil {
			return nil, s.d.wrap("search the audit log", err)
		}
		qe.At = time.UnixMicro(at).UTC()
		e.Kind, e.Time, e.Quarantine = AuditQuarantine, qe.At, &qe
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	return out, nil
}
