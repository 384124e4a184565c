package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/store"
)

// The delivery attempts of gateway sensors are in the audit log too: a row
// of the deliveries table a recipient an attempt, an event an attempt.

// AuditDelivery is the kind of the audit events that are delivery attempts.
const AuditDelivery = "delivery"

// Delivery is one attempt of a gateway sensor to deliver a queued message
// to one next hop, and what came of it for each recipient tried.
type Delivery struct {
	// MessageID is the sensor's id of the message, as in its record.
	MessageID string
	Sender    string
	// Direction is "inbound" or "outbound".
	Direction string
	// NextHop is the delivery queue's destination of the attempt: the
	// recipients' domain when it goes by MX, "route:DOMAIN" for a
	// configured route's hosts, "relay" for the relay hosts ("+tls" added
	// where TLS is required); Host the host it reached, "name [address]:port",
	// "" when none answered; TLS the session's TLS version and cipher, ""
	// without TLS.
	NextHop, Host, TLS string
	Started            time.Time
	Took               time.Duration
	Recipients         []DeliveryRecipient
}

// DeliveryRecipient is what an attempt left one recipient in: its state
// ("delivered", "deferred", "bounced"; "active" when the attempt was cut
// short, "held" or "quarantined" when it was kept meanwhile), and the
// reply it was given (the next hop's, or the sensor's when none answered).
type DeliveryRecipient struct {
	Address string
	State   string
	Code    int
	// Enhanced is the RFC 3463 status code: "2.0.0", "4.4.1", "5.1.1".
	Enhanced string
	Text     string
	// NextAttempt is when a deferred recipient is tried again.
	NextAttempt time.Time
}

// Bounds of what a delivery report holds.
const (
	maxDeliveryText    = 512
	maxDeliveryAddress = 320
	// MaxDeliveryRowsPerReport bounds the recipients' results
	// RecordDeliveries takes at once.
	MaxDeliveryRowsPerReport = 10000
	// maxMessageDeliveryRows bounds the recipients' results
	// MessageDeliveries returns: those of the newest attempts.
	maxMessageDeliveryRows = 5000
)

// RecordDeliveries adds a sensor's delivery attempts to the audit log, in
// one transaction: a row a recipient an attempt, keyed by its message,
// start, next hop and recipient, so that a report recorded twice adds
// nothing the second time. An attempt without a valid message id, and a
// recipient without an address, cannot be keyed and are left out.
func (s *Store) RecordDeliveries(ctx context.Context, scope store.Scope, tenant, sensorID string, ds []Delivery) error {
	if err := checkReport(scope, "delivery attempts", tenant, sensorID); err != nil {
		return err
	}
	rows := 0
	for _, d := range ds {
		rows += len(d.Recipients)
	}
	if rows > MaxDeliveryRowsPerReport {
		return fmt.Errorf("a report of %d recipients' delivery results: at most %d", rows, MaxDeliveryRowsPerReport)
	}
	if rows == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.d.q(`INSERT INTO deliveries
			(tenant, sensor_id, message_id, started, next_hop, rcpt, host, tls, took, sender, direction,
			 state, code, enhanced, text, next_attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`))
		if err != nil {
			return s.d.wrap("record delivery attempts", err)
		}
		defer stmt.Close()
		for _, d := range ds {
			if store.CheckID("message", d.MessageID) != nil {
				continue
			}
			for _, r := range d.Recipients {
				if r.Address == "" {
					continue
				}
				var next int64
				if !r.NextAttempt.IsZero() {
					next = micros(r.NextAttempt)
				}
				_, err := stmt.ExecContext(ctx, tenant, sensorID, d.MessageID, micros(d.Started), clip(d.NextHop, maxDeliveryAddress),
					clip(strings.ToLower(r.Address), maxDeliveryAddress), clip(d.Host, maxDeliveryAddress), clip(d.TLS, maxDeliveryText),
					d.Took.Microseconds(), clip(strings.ToLower(d.Sender), maxDeliveryAddress), clip(d.Direction, 16),
					clip(r.State, 16), min(max(r.Code, 0), 999), clip(r.Enhanced, 32), clip(r.Text, maxDeliveryText), next)
				if err != nil {
					return s.d.wrap("record delivery attempts", err)
				}
			}
		}
		return nil
	})
}

// MessageDeliveries returns the delivery attempts of one message of a
// sensor, oldest first, each with its recipients by address: those of the
// newest attempts, up to 5,000 recipients' results. A tenant outside
// scope has none (store.ErrNotFound).
func (s *Store) MessageDeliveries(ctx context.Context, scope store.Scope, tenant, sensorID, messageID string) ([]Delivery, error) {
	if err := checkMessageRead(scope, tenant, sensorID, messageID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT `+deliveryColumns+` FROM deliveries d
		WHERE tenant = ? AND sensor_id = ? AND message_id = ?
		ORDER BY started DESC, next_hop DESC, rcpt DESC LIMIT ?`), tenant, sensorID, messageID, maxMessageDeliveryRows)
	if err != nil {
		return nil, s.d.wrap("read a message's delivery attempts", err)
	}
	got, err := s.scanDeliveries(rows)
	if err != nil {
		return nil, err
	}
	slices.Reverse(got)
	out := make([]Delivery, len(got))
	for i, e := range got {
		slices.Reverse(e.Delivery.Recipients)
		out[i] = *e.Delivery
	}
	return out, nil
}

// deliveryColumns are the columns scanDeliveries reads, of deliveries d.
const deliveryColumns = `d.tenant, d.sensor_id, d.message_id, d.started, d.next_hop, d.host, d.tls, d.took, d.sender,
	d.direction, d.rcpt, d.state, d.code, d.enhanced, d.text, d.next_attempt`

// scanDeliveries reads rows of deliveryColumns, and makes each run of rows
// of one attempt (consecutive, as the queries order them) one event.
func (s *Store) scanDeliveries(rows *sql.Rows) ([]AuditEvent, error) {
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			e                   AuditEvent
			d                   Delivery
			r                   DeliveryRecipient
			started, took, next int64
		)
		if err := rows.Scan(&e.Tenant, &e.SensorID, &d.MessageID, &started, &d.NextHop, &d.Host, &d.TLS, &took, &d.Sender, &d.Direction,
			&r.Address, &r.State, &r.Code, &r.Enhanced, &r.Text, &next); err != nil {
			return nil, s.d.wrap("read delivery attempts", err)
		}
		if next != 0 {
			r.NextAttempt = time.UnixMicro(next).UTC()
		}
		d.Started, d.Took = time.UnixMicro(started).UTC(), time.Duration(took)*time.Microsecond
		if n := len(out); n > 0 {
			last := &out[n-1]
			if l := last.Delivery; last.Tenant == e.Tenant && last.SensorID == e.SensorID && l.MessageID == d.MessageID &&
				l.Started.Equal(d.Started) && l.NextHop == d.NextHop {
				l.Recipients = append(l.Recipients, r)
				continue
			}
		}
		d.Recipients = []DeliveryRecipient{r}
		e.Kind, e.Time, e.Delivery = AuditDelivery, d.Started, &d
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read delivery attempts", err)
	}
	return out, nil
}

// auditDelivered returns a page of the delivery attempts q selects. An
// attempt is several rows, one a recipient: the first query finds the
// page's attempts, in the log's order, from the indexes; the second reads
// their rows by key.
func (s *Store) auditDelivered(ctx context.Context, q AuditQuery, tenants tenantSet, cursor *auditCursor, limit int) ([]AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	from := "deliveries d"
	if q.MessageID != "" {
		// The attempts at the messages whose records have this
		// Message-ID header: CROSS JOIN makes SQLite find those first
		// (PostgreSQL plans it as any join), rather than read the log
		// newest first looking for them.
		from = "messages m CROSS JOIN deliveries d"
		add("m.header_message_id = ?", normalMessageID(q.MessageID))
		if c, a := tenants.cond("m.tenant"); c != "" {
			add(c, a...)
		}
		add("d.tenant = m.tenant AND d.sensor_id = m.sensor_id AND d.message_id = m.message_id")
	}
	if q.Recipient != "" {
		add("d.rcpt = ?", strings.ToLower(q.Recipient))
	}
	if c, a := tenants.cond("d.tenant"); c != "" {
		add(c, a...)
	}
	if q.SensorID != "" {
		add("d.sensor_id = ?", q.SensorID)
	}
	if !q.From.IsZero() {
		add("d.started >= ?", micros(q.From))
	}
	if !q.To.IsZero() {
		add("d.started < ?", micros(q.To))
	}
	if q.Sender != "" {
		add(`d.sender LIKE ? ESCAPE '\'`, likeArg(q.Sender))
	}
	if cond, a := after(cursor, AuditDelivery, "d.started", "d.tenant", "d.sensor_id", "d.message_id", "d.next_hop"); cond != "" {
		add(cond, a...)
	}
	query := "SELECT DISTINCT d.started, d.tenant, d.sensor_id, d.message_id, d.next_hop FROM " + from
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY d.started DESC, d.tenant DESC, d.sensor_id DESC, d.message_id DESC, d.next_hop DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	var keys []string
	var keyArgs []any
	for rows.Next() {
		var (
			started                      int64
			tenant, sensor, msg, nextHop string
		)
		if err := rows.Scan(&started, &tenant, &sensor, &msg, &nextHop); err != nil {
			rows.Close()
			return nil, s.d.wrap("search the audit log", err)
		}
		keys = append(keys, "(?, ?, ?, CAST(? AS BIGINT), ?)")
		keyArgs = append(keyArgs, tenant, sensor, msg, started, nextHop)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	// The page's attempts lead the join, each looked up by its key.
	rows, err = s.db.QueryContext(ctx, s.d.q(`WITH page (tenant, sensor_id, message_id, started, next_hop) AS (VALUES `+
		strings.Join(keys, ", ")+`)
		SELECT `+deliveryColumns+` FROM page p CROSS JOIN deliveries d
		WHERE d.tenant = p.tenant AND d.sensor_id = p.sensor_id AND d.message_id = p.message_id
			AND d.started = p.started AND d.next_hop = p.next_hop
		ORDER BY d.started DESC, d.tenant DESC, d.sensor_id DESC, d.message_id DESC, d.next_hop DESC, d.rcpt`), keyArgs...)
	if err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	return s.scanDeliveries(rows)
}

// deleteOldDeliveries deletes the delivery attempts started before cutoff,
// in batches.
func (s *Store) deleteOldDeliveries(ctx context.Context, cutoff int64) error {
	_, err := s.deleteBatches(ctx, "delete old delivery attempts", `DELETE FROM deliveries
		WHERE (tenant, sensor_id, message_id, started, next_hop, rcpt) IN
		(SELECT tenant, sensor_id, message_id, started, next_hop, rcpt FROM deliveries WHERE started < ? ORDER BY started LIMIT ?)`,
		cutoff, deleteBatch)
	return err
}
