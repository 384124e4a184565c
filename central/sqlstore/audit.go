package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The message audit log is every message a sensor accepted (its record in
// the messages table, with the columns the log searches and a row per
// recipient), every attempt it refused, counted per sensor, client,
// reason and minute (the refusals table), so that a flood costs one row a
// client and reason a minute however many attempts it makes, and every
// attempt of a gateway sensor to deliver a message (the deliveries table;
// see deliveries.go).

// Audit event kinds.
const (
	AuditAccepted = "accepted"
	AuditRefused  = "refused"
)

// Refusal counts the attempts a sensor refused for one reason from one
// client within one minute.
type Refusal struct {
	// Minute is the start of the minute.
	Minute   time.Time
	ClientIP string
	// Reason names why, as the sensor's counters do: client_refused,
	// recipient_refused, message_too_large, tls_invalid_client_certificate,
	// bare_newline, …
	Reason          string
	Count           int64
	FirstAt, LastAt time.Time
	// MailFrom, Rcpt and Detail are what the first refusal of the minute
	// said: its sender, its recipient, and the sensor's detail.
	MailFrom, Rcpt, Detail string
}

// Bounds of what a refusal report holds.
const (
	maxRefusalText = 512
	// MaxRefusalsPerReport bounds the refusals RecordRefusals takes at once.
	MaxRefusalsPerReport = 10000
)

// RecordRefusals adds a sensor's refusals to the audit log: each adds its
// count to the row of its sensor, client, reason and minute.
func (s *Store) RecordRefusals(ctx context.Context, scope store.Scope, tenant, sensorID string, refusals []Refusal) error {
	if err := checkReport(scope, "refusals", tenant, sensorID); err != nil {
		return err
	}
	if len(refusals) > MaxRefusalsPerReport {
		return fmt.Errorf("a report of %d refusals: at most %d", len(refusals), MaxRefusalsPerReport)
	}
	if len(refusals) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range refusals {
			if r.Count <= 0 || r.Reason == "" {
				continue
			}
			first, last := r.FirstAt, r.LastAt
			if first.IsZero() {
				first = r.Minute
			}
			if last.Before(first) {
				last = first
			}
			_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO refusals
				(tenant, sensor_id, minute, client_ip, reason, count, first_at, last_at, mail_from, rcpt, detail)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (tenant, sensor_id, minute, client_ip, reason) DO UPDATE SET
					count = refusals.count + excluded.count,
					first_at = CASE WHEN excluded.first_at < refusals.first_at THEN excluded.first_at ELSE refusals.first_at END,
					last_at = CASE WHEN excluded.last_at > refusals.last_at THEN excluded.last_at ELSE refusals.last_at END`),
				tenant, sensorID, r.Minute.Truncate(time.Minute).Unix(), clip(r.ClientIP, 64), clip(r.Reason, 64), r.Count,
				micros(first), micros(last), clip(strings.ToLower(r.MailFrom), maxRefusalText),
				clip(strings.ToLower(r.Rcpt), maxRefusalText), clip(r.Detail, maxRefusalText))
			if err != nil {
				return s.d.wrap("record refusals", err)
			}
		}
		return nil
	})
}

// checkReport checks a sensor's report of what (refusals, delivery
// attempts) before it is written: scope must allow its tenant
// (store.ErrForbidden), and the ids must be ids.
func checkReport(scope store.Scope, what, tenant, sensorID string) error {
	if err := scope.Check(); err != nil {
		return err
	}
	if !scope.Allows(tenant) {
		return fmt.Errorf("%s of tenant %q: %w", what, tenant, store.ErrForbidden)
	}
	for kind, id := range map[string]string{"tenant": tenant, "sensor": sensorID} {
		if err := store.CheckID(kind, id); err != nil {
			return err
		}
	}
	return nil
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// AuditQuery selects audit events for ListAudit. Text filters ignore case,
// but for MessageID.
type AuditQuery struct {
	// Tenant restricts the log to one tenant; "" means every tenant in scope.
	Tenant string
	// SensorID keeps one sensor's events.
	SensorID string
	// From and To bound the events' time (accepted: when the sensor took
	// the message; refused: the last refusal of the minute; delivery:
	// when the attempt started): From inclusive, To exclusive; zero leaves
	// that end open.
	From, To time.Time
	// Kind keeps AuditAccepted, AuditRefused, AuditDelivery or
	// AuditQuarantine events; "" keeps every kind.
	Kind string
	// Sender keeps events whose envelope sender, or header From, holds it.
	Sender string
	// Recipient keeps events with this envelope recipient.
	Recipient string
	// Subject keeps accepted messages whose subject holds it.
	Subject string
	// MessageID keeps accepted messages with this Message-ID header
	// (angle brackets optional), and the delivery attempts of those
	// messages.
	MessageID string
	// ClientIP keeps events of this client address.
	ClientIP string
	// Verdict keeps accepted messages of this verdict.
	Verdict string
	// Reason keeps refusals of this reason.
	Reason string
	// PageToken continues a list where the page that returned it ended.
	PageToken string
	// Limit is the most events to return: 0 means DefaultPageLimit; at most MaxPageLimit.
	Limit int
}

// AuditEvent is one entry of the audit log: an accepted message (Message
// set), a count of refusals (Refusal set), a delivery attempt (Delivery
// set) or a step of a quarantined message (Quarantine set: QuarantineID
// names the message).
type AuditEvent struct {
	Kind         string
	Time         time.Time
	Tenant       string
	SensorID     string
	Message      *ospreyv1.MessageRecord
	Refusal      *Refusal
	Delivery     *Delivery
	Quarantine   *QuarantineEvent
	QuarantineID string
}

// AuditPage is one page of ListAudit.
type AuditPage struct {
	Events []AuditEvent
	// NextPageToken continues the list; "" when it has ended.
	NextPageToken string
}

// auditTokenVersion starts every audit page token, so their format can
// change.
const auditTokenVersion = "u1"

// auditCursor is the position of the last event of a page, in the log's
// order: time, kind, tenant, sensor, then the event's own key (a message
// id; a refusal's minute, client and reason; a delivery's message id and
// next hop), all descending.
type auditCursor struct {
	t                    int64
	kind, tenant, sensor string
	key                  []string
}

func (c auditCursor) token() string {
	return token(auditTokenVersion, append([]string{strconv.FormatInt(c.t, 10), c.kind, c.tenant, c.sensor}, c.key...)...)
}

func parseAuditToken(tok string) (auditCursor, bool) {
	for _, n := range []int{5, 6, 7} {
		f, ok := parseToken(tok, auditTokenVersion, n)
		if !ok {
			continue
		}
		t, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || store.CheckID("tenant", f[2]) != nil || store.CheckID("sensor", f[3]) != nil {
			return auditCursor{}, false
		}
		c := auditCursor{t: t, kind: f[1], tenant: f[2], sensor: f[3], key: f[4:]}
		switch {
		case c.kind == AuditAccepted && len(c.key) == 1:
		case c.kind == AuditDelivery && len(c.key) == 2:
		case c.kind == AuditQuarantine && len(c.key) == 2:
		case c.kind == AuditRefused && len(c.key) == 3:
			if _, err := strconv.ParseInt(c.key[0], 10, 64); err != nil {
				return auditCursor{}, false
			}
		default:
			return auditCursor{}, false
		}
		return c, true
	}
	return auditCursor{}, false
}

// maxAuditText bounds a text filter.
const maxAuditText = 256

// check reports the query's bad fields by their names in the REST API.
func (q *AuditQuery) check() (*auditCursor, error) {
	var errs validate.Errors
	bad := func(field, msg string) { errs = append(errs, validate.FieldError{Field: field, Message: msg}) }
	if q.Limit < 0 || q.Limit > MaxPageLimit {
		bad("limit", fmt.Sprintf("must be 1 to %d", MaxPageLimit))
	}
	if q.Tenant != "" && store.CheckID("tenant", q.Tenant) != nil {
		bad("tenant", "not a tenant id")
	}
	if q.SensorID != "" && store.CheckID("sensor", q.SensorID) != nil {
		bad("sensor", "not a sensor id")
	}
	switch q.Kind {
	case "", AuditAccepted, AuditRefused, AuditDelivery, AuditQuarantine:
	default:
		bad("kind", "must be accepted, refused, delivery or quarantine")
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		bad("to", "must be after from")
	}
	for field, v := range map[string]string{"sender": q.Sender, "recipient": q.Recipient, "subject": q.Subject,
		"message_id": q.MessageID, "verdict": q.Verdict, "reason": q.Reason} {
		if len(v) > maxAuditText {
			bad(field, fmt.Sprintf("must be at most %d bytes long", maxAuditText))
		}
	}
	if q.ClientIP != "" {
		if _, err := netip.ParseAddr(q.ClientIP); err != nil {
			bad("client_ip", "not an IP address")
		}
	}
	var after *auditCursor
	if q.PageToken != "" {
		c, ok := parseAuditToken(q.PageToken)
		if !ok {
			bad("page_token", "not a page token of this list; start again without one")
		}
		after = &c
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return after, nil
}

// ListAudit returns the audit events in scope that q selects, newest
// first, a page at a time. Problems with q are validate.Errors naming the
// REST API's parameters; a tenant outside scope is store.ErrNotFound.
func (s *Store) ListAudit(ctx context.Context, scope store.Scope, q AuditQuery) (*AuditPage, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	cursor, err := q.check()
	if err != nil {
		return nil, err
	}
	tenants, err := scopedTenants(scope, q.Tenant)
	if err != nil {
		return nil, err
	}
	limit := cmp.Or(q.Limit, DefaultPageLimit)
	// Filters that some kinds of event do not have leave those out.
	kinds := []struct {
		kind string
		ok   bool
		list func(context.Context, AuditQuery, tenantSet, *auditCursor, int) ([]AuditEvent, error)
	}{
		{AuditAccepted, q.Reason == "", s.auditAccepted},
		{AuditRefused, q.Subject == "" && q.MessageID == "" && q.Verdict == "", s.auditRefused},
		{AuditDelivery, q.Subject == "" && q.Verdict == "" && q.Reason == "" && q.ClientIP == "", s.auditDelivered},
		{AuditQuarantine, q.Subject == "" && q.Verdict == "" && q.Reason == "" && q.ClientIP == "" && q.MessageID == "" &&
			q.Sender == "" && q.Recipient == "", s.auditQuarantine},
	}
	var events []AuditEvent
	for _, k := range kinds {
		if !k.ok || q.Kind != "" && q.Kind != k.kind {
			continue
		}
		got, err := k.list(ctx, q, tenants, cursor, limit+1)
		if err != nil {
			return nil, err
		}
		events = append(events, got...)
	}
	sortAudit(events)
	page := &AuditPage{Events: events}
	if len(events) > limit {
		page.Events = events[:limit]
		page.NextPageToken = cursorOf(events[limit-1]).token()
	}
	return page, nil
}

// cursorOf is the position of e in the log's order.
func cursorOf(e AuditEvent) auditCursor {
	c := auditCursor{t: micros(e.Time), kind: e.Kind, tenant: e.Tenant, sensor: e.SensorID}
	switch {
	case e.Message != nil:
		c.key = []string{e.Message.GetMessageId()}
	case e.Delivery != nil:
		c.key = []string{e.Delivery.MessageID, e.Delivery.NextHop}
	case e.Quarantine != nil:
		c.key = []string{e.QuarantineID, e.Quarantine.Action}
	default:
		r := e.Refusal
		c.key = []string{strconv.FormatInt(r.Minute.Unix(), 10), r.ClientIP, r.Reason}
	}
	return c
}

// sortAudit orders events as the log does: newest first.
func sortAudit(events []AuditEvent) {
	less := func(a, b auditCursor) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		if c := strings.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		if c := strings.Compare(a.sensor, b.sensor); c != 0 {
			return c
		}
		for i := range min(len(a.key), len(b.key)) {
			if c := strings.Compare(a.key[i], b.key[i]); c != 0 {
				return c
			}
		}
		return 0
	}
	slices.SortFunc(events, func(a, b AuditEvent) int { return less(cursorOf(b), cursorOf(a)) })
}

// after is the condition that keeps the rows of one kind that come after
// the cursor, newest first. cols are the row's time, tenant, sensor and key
// columns, compared as the log orders them.
func after(c *auditCursor, kind string, cols ...string) (string, []any) {
	if c == nil {
		return "", nil
	}
	switch {
	case kind < c.kind: // this kind sorts after the cursor's at the same time
		return cols[0] + " <= ?", []any{c.t}
	case kind > c.kind:
		return cols[0] + " < ?", []any{c.t}
	}
	args := []any{c.t, c.tenant, c.sensor}
	for i, k := range c.key {
		if kind == AuditRefused && i == 0 {
			n, _ := strconv.ParseInt(k, 10, 64)
			args = append(args, n)
			continue
		}
		args = append(args, k)
	}
	return "(" + strings.Join(cols, ", ") + ") < (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")", args
}

// likeArg is a LIKE pattern that finds text anywhere, ignoring case.
func likeArg(text string) string { return "%" + escapeLike(strings.ToLower(text)) + "%" }

func (s *Store) auditAccepted(ctx context.Context, q AuditQuery, tenants tenantSet, cursor *auditCursor, limit int) ([]AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	// A search by recipient reads that recipient's rows of message_rcpts
	// newest first, in the log's order, from their index
	// (message_rcpts_by_rcpt), and joins each to its message; every other
	// search reads the messages by time. t is the table whose time, tenant,
	// sensor and message id order the rows.
	from, t := "messages m", "m"
	if q.Recipient != "" {
		// CROSS JOIN makes SQLite read message_rcpts first (PostgreSQL
		// plans it as any join): reading the tenant's messages newest
		// first and looking for the recipient in each looks cheaper to
		// its planner, and is, but only for a recipient of most messages.
		from, t = "message_rcpts r CROSS JOIN messages m", "r"
		add("r.rcpt = ?", strings.ToLower(q.Recipient))
		add("m.tenant = r.tenant AND m.sensor_id = r.sensor_id AND m.message_id = r.message_id")
	}
	if c, a := tenants.cond(t + ".tenant"); c != "" {
		add(c, a...)
	}
	if q.SensorID != "" {
		add(t+".sensor_id = ?", q.SensorID)
	}
	if !q.From.IsZero() {
		add(t+".received_at >= ?", micros(q.From))
	}
	if !q.To.IsZero() {
		add(t+".received_at < ?", micros(q.To))
	}
	if q.Sender != "" {
		p := likeArg(q.Sender)
		add(`(m.mail_from LIKE ? ESCAPE '\' OR m.header_from LIKE ? ESCAPE '\')`, p, p)
	}
	if q.Subject != "" {
		add(`m.subject LIKE ? ESCAPE '\'`, likeArg(q.Subject))
	}
	if q.MessageID != "" {
		add("m.header_message_id = ?", normalMessageID(q.MessageID))
	}
	if q.ClientIP != "" {
		add("m.client_ip = ?", q.ClientIP)
	}
	if q.Verdict != "" {
		add("m.verdict = ?", q.Verdict)
	}
	if cond, a := after(cursor, AuditAccepted, t+".received_at", t+".tenant", t+".sensor_id", t+".message_id"); cond != "" {
		add(cond, a...)
	}
	query := "SELECT " + t + ".received_at, m.record FROM " + from
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + t + ".received_at DESC, " + t + ".tenant DESC, " + t + ".sensor_id DESC, " + t + ".message_id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			t    int64
			body []byte
		)
		if err := rows.Scan(&t, &body); err != nil {
			return nil, s.d.wrap("search the audit log", err)
		}
		rec := new(ospreyv1.MessageRecord)
		if err := proto.Unmarshal(body, rec); err != nil {
			return nil, fmt.Errorf("decode a message record: %w", err)
		}
		out = append(out, AuditEvent{Kind: AuditAccepted, Time: time.UnixMicro(t).UTC(), Tenant: rec.GetTenant(),
			SensorID: rec.GetSensorId(), Message: rec})
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	return out, nil
}

func (s *Store) auditRefused(ctx context.Context, q AuditQuery, tenants tenantSet, cursor *auditCursor, limit int) ([]AuditEvent, error) {
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
		add("last_at >= ?", micros(q.From))
	}
	if !q.To.IsZero() {
		add("last_at < ?", micros(q.To))
	}
	if q.Sender != "" {
		add(`mail_from LIKE ? ESCAPE '\'`, likeArg(q.Sender))
	}
	if q.Recipient != "" {
		add("rcpt = ?", strings.ToLower(q.Recipient))
	}
	if q.ClientIP != "" {
		add("client_ip = ?", q.ClientIP)
	}
	if q.Reason != "" {
		add("reason = ?", q.Reason)
	}
	if cond, a := after(cursor, AuditRefused, "last_at", "tenant", "sensor_id", "minute", "client_ip", "reason"); cond != "" {
		add(cond, a...)
	}
	query := `SELECT tenant, sensor_id, minute, client_ip, reason, count, first_at, last_at, mail_from, rcpt, detail FROM refusals`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY last_at DESC, tenant DESC, sensor_id DESC, minute DESC, client_ip DESC, reason DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.q(query), args...)
	if err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			e                AuditEvent
			r                Refusal
			minute, first, l int64
		)
		if err := rows.Scan(&e.Tenant, &e.SensorID, &minute, &r.ClientIP, &r.Reason, &r.Count, &first, &l, &r.MailFrom, &r.Rcpt, &r.Detail); err != nil {
			return nil, s.d.wrap("search the audit log", err)
		}
		r.Minute, r.FirstAt, r.LastAt = time.Unix(minute, 0).UTC(), time.UnixMicro(first).UTC(), time.UnixMicro(l).UTC()
		e.Kind, e.Time, e.Refusal = AuditRefused, r.LastAt, &r
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.d.wrap("search the audit log", err)
	}
	return out, nil
}
