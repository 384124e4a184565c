package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// RecordMessage stores the record of an uploaded message unless one with the
// same keys exists: RecordScan without an alert.
func (s *Store) RecordMessage(ctx context.Context, scope store.Scope, rec *ospreyv1.MessageRecord, now time.Time) (*ospreyv1.MessageRecord, bool, error) {
	return s.RecordScan(ctx, scope, rec, nil, now)
}

// RecordScan stores the record of a scanned message and, when alert is not
// nil, its alert, in one transaction, unless the message was recorded
// before: a record with the same tenant, sensor and message id, or a POP3
// message with the same tenant, mailbox and UIDL. It returns the record as
// stored and whether it was there before (a duplicate upload: then nothing
// is written, and the stored record says which alert, if any, the first
// upload raised). The tenant comes from the record; scope must allow it
// (store.ErrForbidden).
//
// The alert gets the record's tenant, sensor and message id (naming others
// is an error), the id store.AlertID(now, ...) when it has none, and
// created_at now when unset; the record gets the alert's id as alert_id.
// Every max(1, MaxAlerts/100) alerts of a tenant, RecordScan applies the
// count bound of the retention to that tenant; a failed trim does not fail
// the call and is done by the next sweep.
func (s *Store) RecordScan(ctx context.Context, scope store.Scope, rec *ospreyv1.MessageRecord, alert *ospreyv1.Alert, now time.Time) (*ospreyv1.MessageRecord, bool, error) {
	if err := scope.Check(); err != nil {
		return nil, false, err
	}
	if !scope.Allows(rec.GetTenant()) {
		return nil, false, fmt.Errorf("message of tenant %q: %w", rec.GetTenant(), store.ErrForbidden)
	}
	for kind, id := range map[string]string{"tenant": rec.GetTenant(), "sensor": rec.GetSensorId(), "message": rec.GetMessageId()} {
		if err := store.CheckID(kind, id); err != nil {
			return nil, false, err
		}
	}
	rec = proto.Clone(rec).(*ospreyv1.MessageRecord)
	var alertRow *alertRow
	if alert != nil {
		alert = proto.Clone(alert).(*ospreyv1.Alert)
		if err := fillAlert(alert, rec, now); err != nil {
			return nil, false, err
		}
		rec.AlertId = alert.GetId()
		var err error
		if alertRow, err = newAlertRow(alert); err != nil {
			return nil, false, err
		}
	} else if rec.GetAlertId() != "" {
		return nil, false, fmt.Errorf("message %s/%s: alert_id %q without its alert", rec.GetSensorId(), rec.GetMessageId(), rec.GetAlertId())
	}
	body, err := marshal(rec)
	if err != nil {
		return nil, false, err
	}
	w := &recordWrite{rec: rec, body: body, alert: alertRow, now: now}
	if s.group != nil {
		err = s.group.do(ctx, w)
	} else {
		err = s.inTx(ctx, func(tx *sql.Tx) error { return s.record(ctx, tx, w) })
	}
	if err != nil {
		return nil, false, err
	}
	if w.prev != nil {
		return w.prev, true, nil
	}
	if alertRow != nil {
		s.alerts.notify()
		if w.seq%int64(s.retention.trimEvery()) == 0 {
			if _, err := s.trimCount(ctx, rec.GetTenant(), w.seq); err != nil {
				s.log.WarnContext(ctx, "trim alerts", "tenant", rec.GetTenant(), "err", err)
			}
		}
	}
	return rec, false, nil
}

// recordWrite is one RecordScan's work in a transaction, and its outcome.
type recordWrite struct {
	rec   *ospreyv1.MessageRecord
	body  []byte
	alert *alertRow // nil: no alert
	now   time.Time

	prev *ospreyv1.MessageRecord // the record found, when rec was recorded before
	seq  int64                   // the alert's number, when one was inserted
}

// record inserts w's record and, when it is new, its alert, in tx.
func (s *Store) record(ctx context.Context, tx *sql.Tx, w *recordWrite) error {
	inserted, err := s.insertMessage(ctx, tx, w.rec, w.body, w.now)
	if err != nil {
		return err
	}
	if !inserted {
		mailbox, uidl := pop3Keys(w.rec)
		w.prev, err = s.recorded(ctx, tx, w.rec, mailbox, uidl)
		return err
	}
	if w.rec.GetDisposition().GetAction() == ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE &&
		w.rec.GetEnvelope().GetDirection() != ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		if err := s.insertQuarantined(ctx, tx, w.rec, w.now); err != nil {
			return err
		}
	}
	if w.alert == nil {
		return nil
	}
	w.seq, err = s.insertAlert(ctx, tx, w.alert)
	return err
}

// insertMessage inserts rec, recorded at, with the columns the audit log
// searches and a row for each recipient, unless a record with its keys
// exists, and reports whether it did.
func (s *Store) insertMessage(ctx context.Context, tx *sql.Tx, rec *ospreyv1.MessageRecord, body []byte, at time.Time) (bool, error) {
	mailbox, uidl := pop3Keys(rec)
	a := auditColumns(rec, at)
	res, err := tx.StmtContext(ctx, s.stmts.insertMessage).ExecContext(ctx,
		rec.GetTenant(), rec.GetSensorId(), rec.GetMessageId(), mailbox, uidl, micros(at), rec.GetVerdict(),
		sql.NullString{String: rec.GetAlertId(), Valid: rec.GetAlertId() != ""}, body,
		a.receivedAt, a.clientIP, a.mailFrom, a.headerFrom, a.subject, a.messageID)
	if err != nil {
		return false, s.d.wrap(fmt.Sprintf("insert message %s/%s", rec.GetSensorId(), rec.GetMessageId()), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.d.wrap("insert message", err)
	}
	if n == 0 {
		return false, nil
	}
	insertRcpt := tx.StmtContext(ctx, s.stmts.insertRcpt)
	for _, rcpt := range a.rcpts {
		_, err := insertRcpt.ExecContext(ctx, rec.GetTenant(), rec.GetSensorId(), rec.GetMessageId(), rcpt, a.receivedAt)
		if err != nil {
			return false, s.d.wrap(fmt.Sprintf("insert the recipients of message %s/%s", rec.GetSensorId(), rec.GetMessageId()), err)
		}
	}
	return true, nil
}

// audit is what the audit log searches of a message, normalised: lower
// case where the search ignores case.
type audit struct {
	receivedAt                                         int64
	clientIP, mailFrom, headerFrom, subject, messageID string
	rcpts                                              []string
}

// maxRcpts bounds the recipients of a message that the audit log indexes.
const maxRcpts = 1000

func auditColumns(rec *ospreyv1.MessageRecord, recorded time.Time) audit {
	env, h := rec.GetEnvelope(), rec.GetHeaders()
	a := audit{
		receivedAt: micros(recorded),
		clientIP:   hostOf(env.GetClientAddr()),
		mailFrom:   strings.ToLower(env.GetMailFrom()),
		headerFrom: strings.ToLower(h.GetFrom()),
		subject:    strings.ToLower(h.GetSubject()),
		messageID:  normalMessageID(h.GetMessageId()),
	}
	if t := env.GetReceivedAt(); t != nil {
		a.receivedAt = micros(t.AsTime())
	}
	seen := map[string]bool{}
	for _, r := range env.GetRcptTo() {
		r = strings.ToLower(r)
		if !seen[r] && len(a.rcpts) < maxRcpts {
			seen[r] = true
			a.rcpts = append(a.rcpts, r)
		}
	}
	return a
}

// hostOf returns the host of a host:port address, or addr itself.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// normalMessageID is a Message-ID without its angle brackets and spaces.
func normalMessageID(id string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
}

// pop3Keys returns the mailbox and UIDL that also key a POP3 message (NULL
// for other messages).
func pop3Keys(rec *ospreyv1.MessageRecord) (mailbox, uidl sql.NullString) {
	if m, u := rec.GetEnvelope().GetMailbox(), rec.GetUidl(); rec.GetSource() == ospreyv1.MailSource_MAIL_SOURCE_POP3 && m != "" && u != "" {
		return sql.NullString{String: m, Valid: true}, sql.NullString{String: u, Valid: true}
	}
	return sql.NullString{}, sql.NullString{}
}

// recorded returns the record that made an insert of rec a duplicate.
func (s *Store) recorded(ctx context.Context, tx *sql.Tx, rec *ospreyv1.MessageRecord, mailbox, uidl sql.NullString) (*ospreyv1.MessageRecord, error) {
	var body []byte
	err := tx.StmtContext(ctx, s.stmts.getRecord).QueryRowContext(ctx, rec.GetTenant(), rec.GetSensorId(), rec.GetMessageId()).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) && uidl.Valid {
		// The same POP3 message, recorded under another sensor's id.
		err = tx.StmtContext(ctx, s.stmts.getPOP3Record).QueryRowContext(ctx, rec.GetTenant(), mailbox, uidl).Scan(&body)
	}
	if err != nil {
		return nil, s.d.wrap(fmt.Sprintf("read the record of message %s/%s", rec.GetSensorId(), rec.GetMessageId()), err)
	}
	prev := new(ospreyv1.MessageRecord)
	if err := proto.Unmarshal(body, prev); err != nil {
		return nil, fmt.Errorf("decode the record of message %s/%s: %w", rec.GetSensorId(), rec.GetMessageId(), err)
	}
	return prev, nil
}

// GetMessage returns the record of an uploaded message; one of a tenant
// outside scope is store.ErrNotFound.
func (s *Store) GetMessage(ctx context.Context, scope store.Scope, tenant, sensorID, messageID string) (*ospreyv1.MessageRecord, error) {
	if err := checkMessageRead(scope, tenant, sensorID, messageID); err != nil {
		return nil, err
	}
	var body []byte
	err := s.stmts.getRecord.QueryRowContext(ctx, tenant, sensorID, messageID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %s/%s: %w", sensorID, messageID, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.d.wrap("read message", err)
	}
	rec := new(ospreyv1.MessageRecord)
	if err := proto.Unmarshal(body, rec); err != nil {
		return nil, fmt.Errorf("decode message %s/%s: %w", sensorID, messageID, err)
	}
	return rec, nil
}

// checkMessageRead checks a read of what a sensor's message left: the ids
// must be ids, and a tenant outside scope is store.ErrNotFound (another
// tenant's data does not show that it exists).
func checkMessageRead(scope store.Scope, tenant, sensorID, messageID string) error {
	if err := scope.Check(); err != nil {
		return err
	}
	for kind, id := range map[string]string{"tenant": tenant, "sensor": sensorID, "message": messageID} {
		if err := store.CheckID(kind, id); err != nil {
			return err
		}
	}
	if !scope.Allows(tenant) {
		return fmt.Errorf("message %s/%s: %w", sensorID, messageID, store.ErrNotFound)
	}
	return nil
}

// Page sizes of the paged lists (ListAlerts, ListMessages).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// MessageQuery selects message records for ListMessages.
type MessageQuery struct {
	// Tenant restricts the list to one tenant; "" means every tenant in scope.
	Tenant string
	// SensorID restricts it to one sensor.
	SensorID string
	// PageToken continues a list where the page that returned it ended.
	PageToken string
	// Limit is the most records to return: 0 means DefaultPageLimit; at most MaxPageLimit.
	Limit int
}

// MessagePage is one page of ListMessages.
type MessagePage struct {
	Messages []*ospreyv1.MessageRecord
	// NextPageToken continues the list; "" when it has ended.
	NextPageToken string
}

// messageTokenVersion starts every message page token, so their format can
// change.
const messageTokenVersion = "m1"

// ListMessages returns the message records in scope that q selects, ordered
// by tenant, sensor and message id, a page at a time. Problems with q are
// validate.Errors naming the REST API's parameters; a tenant outside scope
// is store.ErrNotFound.
func (s *Store) ListMessages(ctx context.Context, scope store.Scope, q MessageQuery) (*MessagePage, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	var errs validate.Errors
	if q.Limit < 0 || q.Limit > MaxPageLimit {
		errs = append(errs, validate.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", MaxPageLimit)})
	}
	if q.Tenant != "" && store.CheckID("tenant", q.Tenant) != nil {
		errs = append(errs, validate.FieldError{Field: "tenant", Message: "not a tenant id"})
	}
	if q.SensorID != "" && store.CheckID("sensor", q.SensorID) != nil {
		errs = append(errs, validate.FieldError{Field: "sensor", Message: "not a sensor id"})
	}
	var after []string
	if q.PageToken != "" {
		var ok bool
		if after, ok = parseToken(q.PageToken, messageTokenVersion, 3); !ok {
			errs = append(errs, validate.FieldError{Field: "page_token", Message: "not a page token of this list; start again without one"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	tenants, err := scopedTenants(scope, q.Tenant)
	if err != nil {
		return nil, err
	}
	limit := cmp.Or(q.Limit, DefaultPageLimit)
	var (
		where []string
		args  []any
	)
	if c, a := tenants.cond("tenant"); c != "" {
		where, args = append(where, c), append(args, a...)
	}
	if q.SensorID != "" {
		where, args = append(where, "sensor_id = ?"), append(args, q.SensorID)
	}
	if after != nil {
		where = append(where, "(tenant, sensor_id, message_id) > (?, ?, ?)")
		args = append(args, after[0], after[1], after[2])
	}
	query := "SELECT tenant, sensor_id, message_id, record FROM messages"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY tenant, sensor_id, message_id LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, s.d.wrap("list messages", err)
	}
	defer rows.Close()
	page := &MessagePage{Messages: []*ospreyv1.MessageRecord{}}
	var last [3]string
	for rows.Next() {
		var (
			t, sn, id string
			body      []byte
		)
		if err := rows.Scan(&t, &sn, &id, &body); err != nil {
			return nil, s.d.wrap("list messages", err)
		}
		if len(page.Messages) == limit {
			page.NextPageToken = token(messageTokenVersion, last[:]...)
			break
		}
		rec := new(ospreyv1.MessageRecord)
		if err := proto.Unmarshal(body, rec); err != nil {
			return nil, fmt.Errorf("decode message %s/%s: %w", sn, id, err)
		}
		page.Messages = append(page.Messages, rec)
		last = [3]string{t, sn, id}
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("list messages", err)
	}
	return page, nil
}

// CountMessages counts the records of a sensor's uploaded messages.
func (s *Store) CountMessages(ctx context.Context, scope store.Scope, tenant, sensorID string) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	if !scope.Allows(tenant) {
		return 0, fmt.Errorf("tenant %q: %w", tenant, store.ErrNotFound)
	}
	var n int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM messages WHERE tenant = ? AND sensor_id = ?`), tenant, sensorID).Scan(&n)
	if err != nil {
		return 0, s.d.wrap("count messages", err)
	}
	return n, nil
}

// token encodes a page token: a version, then the fields of the last row.
func token(version string, fields ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(version + "\x00" + strings.Join(fields, "\x00")))
}

// parseToken decodes a page token of version with n fields.
func parseToken(tok, version string, n int) ([]string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	f := strings.Split(string(b), "\x00")
	if len(f) != n+1 || f[0] != version {
		return nil, false
	}
	return f[1:], true
}

func marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// micros is t in Unix microseconds, the stores' unit of time.
func micros(t time.Time) int64 { return t.UnixMicro() }
