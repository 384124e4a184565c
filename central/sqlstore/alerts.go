package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Alert retention defaults: KATA keeps 20,000 alerts a module.
const (
	DefaultMaxAlerts   = 20000
	DefaultAlertMaxAge = 30 * 24 * time.Hour

	// MinAlertMaxAge and MaxMaxAlerts bound what AlertRetention accepts.
	MinAlertMaxAge = time.Hour
	MaxMaxAlerts   = 10_000_000
)

// MaxAlertBytes bounds one encoded alert. The scanner keeps alerts far
// smaller by bounding what it lists.
const MaxAlertBytes = 512 << 10

// AlertRetention bounds the alerts kept for each tenant.
type AlertRetention struct {
	// MaxAlerts is the most alerts kept per tenant; the oldest go first.
	// 0 means DefaultMaxAlerts.
	MaxAlerts int
	// MaxAge is how long an alert is kept. 0 means DefaultAlertMaxAge.
	MaxAge time.Duration
}

// Validate reports every value out of range: MaxAlerts 0 (the default) or
// 1 to 10,000,000, MaxAge 0 (the default) or at least an hour.
func (r AlertRetention) Validate() error {
	var errs []error
	if r.MaxAlerts < 0 || r.MaxAlerts > MaxMaxAlerts {
		errs = append(errs, fmt.Errorf("alert retention: max alerts %d: want 0 (default %d) to %d", r.MaxAlerts, DefaultMaxAlerts, MaxMaxAlerts))
	}
	if r.MaxAge != 0 && r.MaxAge < MinAlertMaxAge {
		errs = append(errs, fmt.Errorf("alert retention: max age %s: want 0 (default %s) or at least %s", r.MaxAge, DefaultAlertMaxAge, MinAlertMaxAge))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields and clamps the rest into range.
func (r AlertRetention) withDefaults() AlertRetention {
	switch {
	case r.MaxAlerts <= 0:
		r.MaxAlerts = DefaultMaxAlerts
	case r.MaxAlerts > MaxMaxAlerts:
		r.MaxAlerts = MaxMaxAlerts
	}
	switch {
	case r.MaxAge == 0:
		r.MaxAge = DefaultAlertMaxAge
	case r.MaxAge < MinAlertMaxAge:
		r.MaxAge = MinAlertMaxAge
	}
	return r
}

// trimEvery is how many alerts of a tenant come between two trims by count.
func (r AlertRetention) trimEvery() int {
	return max(1, r.MaxAlerts/100)
}

// AlertRetention returns the retention the store applies.
func (s *Store) AlertRetention() AlertRetention { return s.retention }

// AlertID returns the id of the alert of a message scanned at t: 16 hex
// digits of t in Unix nanoseconds, "-", and 16 hex digits of a SHA-256 of
// the sensor and message ids. Ids sort by time.
func AlertID(t time.Time, sensorID, messageID string) string {
	h := sha256.Sum256([]byte(sensorID + "\x00" + messageID))
	return alertTimePrefix(t) + "-" + hex.EncodeToString(h[:8])
}

// alertTimePrefix is the part of an alert id that gives its time; every id
// of a later time sorts after it.
func alertTimePrefix(t time.Time) string {
	return fmt.Sprintf("%016x", uint64(max(t.UnixNano(), 0)))
}

// alertIDLen is the length of an alert id.
const alertIDLen = 16 + 1 + 16

// alertTime returns the time in an alert id, or false if id is not one.
func alertTime(id string) (time.Time, bool) {
	if len(id) != alertIDLen || id[16] != '-' {
		return time.Time{}, false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if i != 16 && !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return time.Time{}, false
		}
	}
	ns, err := strconv.ParseUint(id[:16], 16, 64)
	if err != nil || ns > 1<<63-1 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true
}

// checkAlertID returns an error wrapping store.ErrInvalidID unless id is an
// alert id.
func checkAlertID(id string) error {
	if _, ok := alertTime(id); !ok {
		return fmt.Errorf("alert id %q: want 16 hex digits, '-', 16 hex digits: %w", id, store.ErrInvalidID)
	}
	return nil
}

// fillAlert ties an alert to its message's record.
func fillAlert(a *ospreyv1.Alert, rec *ospreyv1.MessageRecord, now time.Time) error {
	for _, f := range []struct {
		name      string
		got       *string
		recordVal string
	}{
		{"tenant", &a.Tenant, rec.GetTenant()},
		{"sensor_id", &a.SensorId, rec.GetSensorId()},
		{"message_id", &a.MessageId, rec.GetMessageId()},
	} {
		switch *f.got {
		case "":
			*f.got = f.recordVal
		case f.recordVal:
		default:
			return fmt.Errorf("alert %s %q differs from its message's %q", f.name, *f.got, f.recordVal)
		}
	}
	if a.GetId() == "" {
		a.Id = AlertID(now, rec.GetSensorId(), rec.GetMessageId())
	}
	if err := checkAlertID(a.GetId()); err != nil {
		return err
	}
	if a.GetCreatedAt() == nil {
		a.CreatedAt = timestamppb.New(now)
	}
	return nil
}

// alertRow is an alert as the alerts table holds it.
type alertRow struct {
	a      *ospreyv1.Alert
	body   []byte
	search string
}

func newAlertRow(a *ospreyv1.Alert) (*alertRow, error) {
	body, err := marshal(a)
	if err != nil {
		return nil, err
	}
	if len(body) > MaxAlertBytes {
		return nil, fmt.Errorf("alert of message %s/%s: %d bytes, more than %d", a.GetSensorId(), a.GetMessageId(), len(body), MaxAlertBytes)
	}
	return &alertRow{a: a, body: body, search: searchText(a)}, nil
}

// searchText is the text of an alert that a query's q looks in, lower case,
// one field a line: the subject, the header From, To and Cc, the envelope
// sender and recipients, the attachments' names and paths, and the matches'
// rule ids and descriptions.
func searchText(a *ospreyv1.Alert) string {
	h, env := a.GetHeaders(), a.GetEnvelope()
	fields := []string{h.GetSubject(), h.GetFrom(), env.GetMailFrom()}
	fields = append(fields, h.GetTo()...)
	fields = append(fields, h.GetCc()...)
	fields = append(fields, env.GetRcptTo()...)
	for _, at := range a.GetAttachments() {
		fields = append(fields, at.GetFilename(), at.GetPath())
	}
	for _, m := range a.GetMatches() {
		fields = append(fields, m.GetRuleId(), m.GetWhat())
	}
	var b strings.Builder
	for _, f := range fields {
		if f == "" {
			continue
		}
		// A newline cannot join two fields into a match.
		b.WriteString(strings.ToLower(strings.ReplaceAll(f, "\n", " ")))
		b.WriteByte('\n')
	}
	return b.String()
}

// insertAlert numbers the alert in its tenant and inserts it.
func (s *Store) insertAlert(ctx context.Context, tx *sql.Tx, r *alertRow) (int64, error) {
	tenant := r.a.GetTenant()
	var seq int64
	err := tx.StmtContext(ctx, s.stmts.nextAlertSeq).QueryRowContext(ctx, tenant).Scan(&seq)
	if err != nil {
		return 0, s.d.wrap("number the alert", err)
	}
	_, err = tx.StmtContext(ctx, s.stmts.insertAlert).ExecContext(ctx, tenant, r.a.GetId(), seq, int32(r.a.GetSeverity()), r.a.GetSensorId(), r.a.GetMessageId(), r.search, r.body)
	if err != nil {
		return 0, s.d.wrap("insert alert", err)
	}
	return seq, nil
}

// GetAlert returns an alert. tenant "" looks in every tenant of scope (a
// tenant scope: its own tenants). An alert of another tenant, or past the
// retention's MaxAge, is store.ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, scope store.Scope, tenant, id string) (*ospreyv1.Alert, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if err := checkAlertID(id); err != nil {
		return nil, err
	}
	if tenant != "" {
		if err := store.CheckID("tenant", tenant); err != nil {
			return nil, err
		}
	}
	if at, _ := alertTime(id); at.Before(s.now().Add(-s.retention.MaxAge)) {
		return nil, fmt.Errorf("alert %q: %w", id, store.ErrNotFound)
	}
	tenants, err := scopedTenants(scope, tenant)
	if err != nil {
		return nil, fmt.Errorf("alert %q: %w", id, store.ErrNotFound)
	}
	query, args := `SELECT alert FROM alerts WHERE id = ?`, []any{id}
	if c, a := tenants.cond("tenant"); c != "" {
		query, args = query+" AND "+c, append(args, a...)
	}
	var body []byte
	err = s.db.QueryRowContext(ctx, s.d.q(query+" ORDER BY tenant LIMIT 1"), args...).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("alert %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.d.wrap("read alert", err)
	}
	a := new(ospreyv1.Alert)
	if err := proto.Unmarshal(body, a); err != nil {
		return nil, fmt.Errorf("decode alert %q: %w", id, err)
	}
	return a, nil
}

// maxQueryBytes bounds the text an alert query searches for.
const maxQueryBytes = 256

// AlertQuery selects alerts for ListAlerts.
type AlertQuery struct {
	// Tenant restricts the list to one tenant; "" means every tenant in scope.
	Tenant string
	// MinSeverity keeps alerts of at least this severity; 0 keeps all.
	MinSeverity ospreyv1.Severity
	// Since keeps alerts scanned at or after it; zero keeps all.
	Since time.Time
	// SensorID keeps the alerts of one sensor.
	SensorID string
	// ServerID keeps the alerts that came from one SCN (on a PCN).
	ServerID string
	// Q keeps alerts where it occurs, ignoring case, in the subject, the
	// header From, To and Cc, the envelope sender and recipients, the
	// attachments' names and paths, or the matches' rule ids and descriptions.
	Q string
	// PageToken continues a list where the page that returned it ended.
	PageToken string
	// Limit is the most alerts to return: 0 means DefaultPageLimit; at most MaxPageLimit.
	Limit int
}

// AlertPage is one page of ListAlerts.
type AlertPage struct {
	Alerts []*ospreyv1.Alert
	// NextPageToken continues the list; "" when it has ended.
	NextPageToken string
}

// alertTokenVersion starts every alert page token, so their format can change.
const alertTokenVersion = "a2"

// check reports the query's bad fields by their names in the REST API, and
// returns the position a page token continues from.
func (q *AlertQuery) check() (after []string, err error) {
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
	if q.ServerID != "" && store.CheckID("server", q.ServerID) != nil {
		errs = append(errs, validate.FieldError{Field: "server", Message: "not a server id"})
	}
	if len(q.Q) > maxQueryBytes {
		errs = append(errs, validate.FieldError{Field: "q", Message: fmt.Sprintf("must be at most %d bytes long", maxQueryBytes)})
	}
	if q.MinSeverity < 0 || q.MinSeverity > ospreyv1.Severity_SEVERITY_CRITICAL {
		errs = append(errs, validate.FieldError{Field: "severity", Message: "must be low, medium, high or critical"})
	}
	if q.PageToken != "" {
		var ok bool
		after, ok = parseToken(q.PageToken, alertTokenVersion, 2)
		if !ok || checkAlertID(after[0]) != nil || store.CheckID("tenant", after[1]) != nil {
			errs = append(errs, validate.FieldError{Field: "page_token", Message: "not a page token of this list; start again without one"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return after, nil
}

// ListAlerts returns the alerts in scope that q selects, newest first
// (across tenants, by id), a page at a time. Alerts past the retention's
// MaxAge are not listed. Problems with q are validate.Errors naming the REST
// API's parameters.
func (s *Store) ListAlerts(ctx context.Context, scope store.Scope, q AlertQuery) (*AlertPage, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	after, err := q.check()
	if err != nil {
		return nil, err
	}
	tenants, err := scopedTenants(scope, q.Tenant)
	if err != nil {
		return nil, err
	}
	from := s.now().Add(-s.retention.MaxAge)
	if q.Since.After(from) {
		from = q.Since
	}
	where, args := []string{"id >= ?"}, []any{alertTimePrefix(from)}
	if c, a := tenants.cond("tenant"); c != "" {
		where, args = append(where, c), append(args, a...)
	}
	if q.MinSeverity > 0 {
		where, args = append(where, "severity >= ?"), append(args, int32(q.MinSeverity))
	}
	if q.SensorID != "" {
		where, args = append(where, "sensor_id = ?"), append(args, q.SensorID)
	}
	if q.ServerID != "" {
		where, args = append(where, "server_id = ?"), append(args, q.ServerID)
	}
	if q.Q != "" {
		where, args = append(where, `search LIKE ? ESCAPE '\'`), append(args, "%"+escapeLike(strings.ToLower(q.Q))+"%")
	}
	if after != nil {
		where, args = append(where, "(id, tenant) < (?, ?)"), append(args, after[0], after[1])
	}
	limit := cmp.Or(q.Limit, DefaultPageLimit)
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT tenant, id, alert FROM alerts WHERE `+
		strings.Join(where, " AND ")+` ORDER BY id DESC, tenant DESC LIMIT ?`), args...)
	if err != nil {
		return nil, s.d.wrap("list alerts", err)
	}
	defer rows.Close()
	page := &AlertPage{Alerts: []*ospreyv1.Alert{}}
	var last [2]string
	for rows.Next() {
		var (
			t, id string
			body  []byte
		)
		if err := rows.Scan(&t, &id, &body); err != nil {
			return nil, s.d.wrap("list alerts", err)
		}
		if len(page.Alerts) == limit {
			page.NextPageToken = token(alertTokenVersion, last[:]...)
			break
		}
		a := new(ospreyv1.Alert)
		if err := proto.Unmarshal(body, a); err != nil {
			return nil, fmt.Errorf("decode alert %q: %w", id, err)
		}
		page.Alerts = append(page.Alerts, a)
		last = [2]string{id, t}
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("list alerts", err)
	}
	return page, nil
}

// escapeLike escapes LIKE's wildcards (and its escape character) in s.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SeqAlert is an alert with its number in its tenant.
type SeqAlert struct {
	Seq   int64
	Alert *ospreyv1.Alert
}

// AlertsAfter returns up to limit of tenant's alerts numbered after seq, in
// order. Every alert numbered up to the last one returned has been
// committed, so a reader that continues from there skips none (some may
// have been deleted by the retention meanwhile). It needs the all-tenants
// scope: it is the SIEM export's machinery.
func (s *Store) AlertsAfter(ctx context.Context, scope store.Scope, tenant string, seq int64, limit int) ([]SeqAlert, error) {
	if err := scope.RequireAll("follow alerts"); err != nil {
		return nil, err
	}
	if err := store.CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT seq, alert FROM alerts WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?`),
		tenant, seq, max(limit, 1))
	if err != nil {
		return nil, s.d.wrap("read alerts", err)
	}
	defer rows.Close()
	var out []SeqAlert
	for rows.Next() {
		var (
			n    int64
			body []byte
		)
		if err := rows.Scan(&n, &body); err != nil {
			return nil, s.d.wrap("read alerts", err)
		}
		a := new(ospreyv1.Alert)
		if err := proto.Unmarshal(body, a); err != nil {
			return nil, fmt.Errorf("decode alert %d of tenant %q: %w", n, tenant, err)
		}
		out = append(out, SeqAlert{Seq: n, Alert: a})
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("read alerts", err)
	}
	return out, nil
}

// LastAlertSeq returns the number of tenant's newest alert (0: none yet).
func (s *Store) LastAlertSeq(ctx context.Context, scope store.Scope, tenant string) (int64, error) {
	if err := scope.RequireAll("follow alerts"); err != nil {
		return 0, err
	}
	var seq int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT seq FROM alert_seq WHERE tenant = ?`), tenant).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, s.d.wrap("read the alert number", err)
	}
	return seq, nil
}

// AlertsAdded returns a channel that is closed when this store next commits
// an alert. Alerts that other nodes commit to a shared database do not
// close it: a follower polls for those too.
func (s *Store) AlertsAdded() <-chan struct{} { return s.alerts.wait() }
