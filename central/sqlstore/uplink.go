package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The distributed mode's data in the SQL store.
//
// On an SCN nothing is written for the link: its alerts are numbered per
// tenant (seq) in commit order without gaps (see the package comment), so
// "the alerts after n" read at any time, on any node of the SCN, never
// skips one that commits later, which a cursor over a database sequence
// would (PostgreSQL hands out sequence values at insert, not at commit).
// The cursor itself lives on the PCN (uplink_cursors), moved in the
// transaction that stores the alerts, so a PCN restart, a failover of the
// SCN's link to another of its nodes, or a lost acknowledgement resumes
// from what the PCN actually stored; an alert the PCN receives twice is
// stored once, by its key (server_id, id). What waits for an absent PCN is
// the SCN's alerts themselves, bounded by the SCN's retention.

// SummaryBucket is the time bucket of message summaries.
const SummaryBucket = time.Minute

// AlertSeqs returns each tenant's last alert number (AlertsAfter's cursor).
func (s *Store) AlertSeqs(ctx context.Context, scope store.Scope) (map[string]int64, error) {
	if err := scope.RequireAll("follow alerts"); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT tenant, seq FROM alert_seq`)
	if err != nil {
		return nil, s.d.wrap("read the alert numbers", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			t string
			n int64
		)
		if err := rows.Scan(&t, &n); err != nil {
			return nil, s.d.wrap("read the alert numbers", err)
		}
		out[t] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read the alert numbers", err)
	}
	return out, nil
}

// MessageSummaries counts the messages recorded from from up to to (both
// rounded down to SummaryBucket) per tenant, sensor, bucket and verdict,
// with how many raised an alert.
func (s *Store) MessageSummaries(ctx context.Context, scope store.Scope, from, to time.Time) ([]*ospreyv1.MessageSummary, error) {
	if err := scope.RequireAll("summarise messages"); err != nil {
		return nil, err
	}
	b := SummaryBucket.Microseconds()
	f, t := micros(from.Truncate(SummaryBucket)), micros(to.Truncate(SummaryBucket))
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT tenant, sensor_id, recorded_at - recorded_at % ? AS bucket, verdict,
		COUNT(*), COUNT(alert_id) FROM messages WHERE recorded_at >= ? AND recorded_at < ?
		GROUP BY tenant, sensor_id, bucket, verdict ORDER BY bucket, tenant, sensor_id, verdict`), b, f, t)
	if err != nil {
		return nil, s.d.wrap("summarise messages", err)
	}
	defer rows.Close()
	var out []*ospreyv1.MessageSummary
	for rows.Next() {
		m := new(ospreyv1.MessageSummary)
		var bucket int64
		if err := rows.Scan(&m.Tenant, &m.SensorId, &bucket, &m.Verdict, &m.Messages, &m.Detected); err != nil {
			return nil, s.d.wrap("summarise messages", err)
		}
		m.Bucket = timestamppb.New(time.UnixMicro(bucket))
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("summarise messages", err)
	}
	return out, nil
}

// UplinkCursor is where a PCN stands with one SCN.
type UplinkCursor struct {
	// AlertSeq is, per SCN tenant, the last alert number stored.
	AlertSeq map[string]int64
	// SummariesTo is the end of the summaries stored (zero: none).
	SummariesTo time.Time
}

// UplinkCursor returns where this PCN stands with the SCN serverID.
func (s *Store) UplinkCursor(ctx context.Context, scope store.Scope, serverID string) (UplinkCursor, error) {
	c := UplinkCursor{AlertSeq: map[string]int64{}}
	if err := scope.RequireAll("read an SCN's cursor"); err != nil {
		return c, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT scn_tenant, seq FROM uplink_cursors WHERE server_id = ?`), serverID)
	if err != nil {
		return c, s.d.wrap("read the SCN's cursor", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t string
			n int64
		)
		if err := rows.Scan(&t, &n); err != nil {
			return c, s.d.wrap("read the SCN's cursor", err)
		}
		c.AlertSeq[t] = n
	}
	if err := rows.Err(); err != nil {
		return c, s.d.wrap("read the SCN's cursor", err)
	}
	var to int64
	err = s.db.QueryRowContext(ctx, s.d.q(`SELECT summaries_to FROM uplink_servers WHERE server_id = ?`), serverID).Scan(&to)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return c, s.d.wrap("read the SCN's cursor", err)
	case to > 0:
		c.SummariesTo = time.UnixMicro(to)
	}
	return c, nil
}

// touchServer records that data came from serverID at now, and moves its
// summaries' end to summariesTo when later (zero: leaves it).
func (s *Store) touchServer(ctx context.Context, tx *sql.Tx, serverID, tenant string, now, summariesTo time.Time) error {
	to := int64(0)
	if !summariesTo.IsZero() {
		to = micros(summariesTo)
	}
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO uplink_servers (server_id, tenant, summaries_to, last_data_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (server_id) DO UPDATE SET tenant = excluded.tenant, last_data_at = excluded.last_data_at,
		summaries_to = CASE WHEN excluded.summaries_to > uplink_servers.summaries_to THEN excluded.summaries_to ELSE uplink_servers.summaries_to END`),
		serverID, tenant, to, micros(now))
	if err != nil {
		return s.d.wrap("record the SCN's data", err)
	}
	return nil
}

// StoreUplinkAlerts stores a batch of the SCN serverID's alerts as alerts
// of tenant (the PCN's tenant of that SCN) and sets the SCN's cursor for
// the batch's SCN tenant to its last number, in one transaction (batches
// come in order; one that starts again lower, from an SCN whose numbers
// went back, moves the cursor back with it). An alert
// stored before (same server and id) is not stored again; one past the
// retention's MaxAge is not stored. It returns how many it stored.
func (s *Store) StoreUplinkAlerts(ctx context.Context, scope store.Scope, serverID, tenant string, b *ospreyv1.UplinkAlerts, now time.Time) (int, error) {
	if err := scope.RequireAll("store an SCN's alerts"); err != nil {
		return 0, err
	}
	if err := store.CheckID("server", serverID); err != nil {
		return 0, err
	}
	if err := store.CheckID("tenant", tenant); err != nil {
		return 0, err
	}
	if b.GetTenant() == "" || b.GetLast() < b.GetAfter() {
		return 0, fmt.Errorf("alerts of server %q: a batch needs its SCN tenant and last >= after", serverID)
	}
	oldest := now.Add(-s.retention.MaxAge)
	var rows []*alertRow
	for _, a := range b.GetAlerts() {
		// An alert the PCN cannot take is skipped, not refused with the
		// batch: the SCN would send it again forever.
		if err := checkAlertID(a.GetId()); err != nil {
			s.log.WarnContext(ctx, "skipped an SCN's alert", "server", serverID, "err", err)
			continue
		}
		if at, _ := alertTime(a.GetId()); at.Before(oldest) {
			continue
		}
		a = proto.Clone(a).(*ospreyv1.Alert)
		a.Tenant, a.ServerId = tenant, serverID
		r, err := newAlertRow(a)
		if err != nil {
			s.log.WarnContext(ctx, "skipped an SCN's alert", "server", serverID, "err", err)
			continue
		}
		rows = append(rows, r)
	}
	stored := 0
	var lastSeq int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stored = 0
		for _, r := range rows {
			var one int
			err := tx.QueryRowContext(ctx, s.d.q(`SELECT 1 FROM alerts WHERE server_id = ? AND id = ?`), serverID, r.a.GetId()).Scan(&one)
			if err == nil {
				continue // stored before
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return s.d.wrap("look for an SCN's alert", err)
			}
			if err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO alert_seq (tenant, seq) VALUES (?, 1)
				ON CONFLICT (tenant) DO UPDATE SET seq = alert_seq.seq + 1 RETURNING seq`), tenant).Scan(&lastSeq); err != nil {
				return s.d.wrap("number the alert", err)
			}
			res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO alerts (tenant, id, seq, severity, sensor_id, message_id, search, alert, server_id)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
				tenant, r.a.GetId(), lastSeq, int32(r.a.GetSeverity()), r.a.GetSensorId(), r.a.GetMessageId(), r.search, r.body, serverID)
			if err != nil {
				return s.d.wrap("insert an SCN's alert", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				stored++
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO uplink_cursors (server_id, scn_tenant, seq) VALUES (?, ?, ?)
			ON CONFLICT (server_id, scn_tenant) DO UPDATE SET seq = excluded.seq`),
			serverID, b.GetTenant(), b.GetLast()); err != nil {
			return s.d.wrap("move the SCN's cursor", err)
		}
		return s.touchServer(ctx, tx, serverID, tenant, now, time.Time{})
	})
	if err != nil {
		return 0, err
	}
	if stored > 0 {
		s.alerts.notify()
		if _, err := s.trimCount(ctx, tenant, lastSeq); err != nil {
			s.log.WarnContext(ctx, "trim alerts", "tenant", tenant, "err", err)
		}
	}
	return stored, nil
}

// StoreSummaries stores the SCN serverID's message summaries (absolute
// counts: one stored again replaces itself) as summaries of tenant, and
// moves the end of its summaries to b's, in one transaction.
func (s *Store) StoreSummaries(ctx context.Context, scope store.Scope, serverID, tenant string, b *ospreyv1.UplinkSummaries, now time.Time) error {
	if err := scope.RequireAll("store an SCN's summaries"); err != nil {
		return err
	}
	if err := store.CheckID("server", serverID); err != nil {
		return err
	}
	if err := store.CheckID("tenant", tenant); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, m := range b.GetSummaries() {
			if m.GetBucket() == nil || m.GetMessages() < 0 || m.GetDetected() < 0 {
				return fmt.Errorf("summary of server %q: a bucket and counts of zero or more are required", serverID)
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO message_summaries
				(server_id, tenant, scn_tenant, sensor_id, bucket, verdict, messages, detected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (server_id, scn_tenant, sensor_id, bucket, verdict) DO UPDATE SET
				tenant = excluded.tenant, messages = excluded.messages, detected = excluded.detected`),
				serverID, tenant, m.GetTenant(), m.GetSensorId(), micros(m.GetBucket().AsTime()), m.GetVerdict(), m.GetMessages(), m.GetDetected()); err != nil {
				return s.d.wrap("store a summary", err)
			}
		}
		var to time.Time
		if b.GetTo() != nil {
			to = b.GetTo().AsTime()
		}
		return s.touchServer(ctx, tx, serverID, tenant, now, to)
	})
}

// DeleteServerAlerts deletes the alerts that came from the SCN serverID, in
// batches, and forgets its alert cursor (an SCN that joins again sends its
// alerts again); its summaries stay. It returns how many it deleted.
func (s *Store) DeleteServerAlerts(ctx context.Context, scope store.Scope, serverID string) (int64, error) {
	if err := scope.RequireAll("delete an SCN's alerts"); err != nil {
		return 0, err
	}
	if serverID == "" {
		return 0, errors.New("delete an SCN's alerts: no server id")
	}
	n, err := s.deleteBatches(ctx, "delete an SCN's alerts", `DELETE FROM alerts WHERE (tenant, id) IN
		(SELECT tenant, id FROM alerts WHERE server_id = ? LIMIT ?)`, serverID, deleteBatch)
	if err != nil {
		return n, err
	}
	if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM uplink_cursors WHERE server_id = ?`), serverID); err != nil {
		return n, s.d.wrap("forget the SCN's cursor", err)
	}
	return n, nil
}

// ServerData is what a PCN holds of one SCN.
type ServerData struct {
	// Alerts is how many of the SCN's alerts the PCN holds.
	Alerts int64
	// LastDataAt is when alerts or summaries last came (zero: never).
	LastDataAt time.Time
}

// ServersData returns, per SCN whose data is in scope, what this PCN holds
// of it.
func (s *Store) ServersData(ctx context.Context, scope store.Scope) (map[string]ServerData, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	tenants, err := scopedTenants(scope, "")
	if err != nil {
		return nil, err
	}
	where, args := "", []any{}
	if c, a := tenants.cond("tenant"); c != "" {
		where, args = " AND "+c, a
	}
	out := map[string]ServerData{}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT server_id, COUNT(*) FROM alerts WHERE server_id <> ''`+where+` GROUP BY server_id`), args...)
	if err != nil {
		return nil, s.d.wrap("count the SCNs' alerts", err)
	}
	for rows.Next() {
		var (
			id string
			d  ServerData
		)
		if err := rows.Scan(&id, &d.Alerts); err != nil {
			rows.Close()
			return nil, s.d.wrap("count the SCNs' alerts", err)
		}
		out[id] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("count the SCNs' alerts", err)
	}
	rows, err = s.db.QueryContext(ctx, s.d.q(`SELECT server_id, last_data_at FROM uplink_servers WHERE 1 = 1`+where), args...)
	if err != nil {
		return nil, s.d.wrap("read the SCNs' data times", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			at int64
		)
		if err := rows.Scan(&id, &at); err != nil {
			return nil, s.d.wrap("read the SCNs' data times", err)
		}
		d := out[id]
		if at > 0 {
			d.LastDataAt = time.UnixMicro(at)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read the SCNs' data times", err)
	}
	return out, nil
}

// SummaryTotal is the messages of one tenant and source since a time.
type SummaryTotal struct {
	Tenant string
	// ServerID is the SCN ("" for this node's own messages).
	ServerID           string
	Messages, Detected int64
}

// SummaryTotals returns the messages in scope recorded since since, per
// tenant and SCN: this node's own from its message records, the SCNs' from
// their summaries.
func (s *Store) SummaryTotals(ctx context.Context, scope store.Scope, since time.Time) ([]SummaryTotal, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	tenants, err := scopedTenants(scope, "")
	if err != nil {
		return nil, err
	}
	var out []SummaryTotal
	for _, q := range []string{
		`SELECT tenant, '', COUNT(*), COUNT(alert_id) FROM messages WHERE recorded_at >= ?`,
		`SELECT tenant, server_id, CAST(SUM(messages) AS BIGINT), CAST(SUM(detected) AS BIGINT) FROM message_summaries WHERE bucket >= ?`,
	} {
		args := []any{micros(since.Truncate(SummaryBucket))}
		if c, a := tenants.cond("tenant"); c != "" {
			q, args = q+" AND "+c, append(args, a...)
		}
		if strings.Contains(q, "server_id") {
			q += " GROUP BY tenant, server_id ORDER BY tenant, server_id"
		} else {
			q += " GROUP BY tenant ORDER BY tenant"
		}
		rows, err := s.db.QueryContext(ctx, s.d.q(q), args...)
		if err != nil {
			return nil, s.d.wrap("total the messages", err)
		}
		for rows.Next() {
			var t SummaryTotal
			if err := rows.Scan(&t.Tenant, &t.ServerID, &t.Messages, &t.Detected); err != nil {
				rows.Close()
				return nil, s.d.wrap("total the messages", err)
			}
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.d.wrap("total the messages", err)
		}
	}
	return out, nil
}
