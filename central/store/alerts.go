package store

// Alerts and message records of scanned mail.
//
// Exactly once. RecordScan writes a message's record and its alert in one
// transaction conditioned on the record's key being absent: a retried upload
// (the acknowledgement was lost, the sensor reconnected to another node)
// finds the record and raises nothing, on whichever node it lands.
//
// Retention. A tenant keeps at most MaxAlerts alerts, none older than MaxAge.
// Alert ids start with the scan time, so a tenant's alerts sort by time and
// the alerts to drop are always a key range at the start of the tenant's
// prefix: TrimAlerts removes them with one DeleteRange bounded by a key, not
// by a count. That makes trimming idempotent under concurrent writers and
// trimmers on several nodes: two nodes that trim at once delete the same
// range, and an alert written meanwhile sorts after it. Counting is a
// count-only range read (no values leave etcd), and it is done once per
// max(1, MaxAlerts/100) alerts that a node writes to a tenant, so its cost
// per alert is small and a tenant holds at most about 1% more than MaxAlerts
// per central node between trims. An AlertSweeper trims every tenant
// periodically, for tenants that receive no alerts any more, and reads hide
// alerts past MaxAge, so the age bound is exact whatever the sweep interval.
//
// Alerts have no etcd lease: etcd extends every lease to its full TTL when
// the leader changes, so a 30-day lease would outlive its month in a cluster
// whose members restart. Message records keep their hourly lease: a
// three-day window stretched by a leader change only lets a late retry be
// recognised for longer.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// MaxAlertBytes bounds one encoded alert (etcd refuses requests over 1.5
// MiB by default, and the message record shares the transaction). The
// scanner keeps alerts far smaller by bounding what it lists.
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

// trimEvery is how many alerts a node writes to a tenant between two trims.
func (r AlertRetention) trimEvery() int {
	return max(1, r.MaxAlerts/100)
}

// AlertRetention returns the retention the store applies.
func (s *Store) AlertRetention() AlertRetention { return s.retention }

// alertTrims counts, per tenant, the alerts this store wrote since it last
// trimmed the tenant's alerts.
type alertTrims struct {
	mu      sync.Mutex
	written map[string]int
}

// due counts one alert written to tenant and reports whether it is time to
// trim (and restarts the count if so).
func (t *alertTrims) due(tenant string, every int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written == nil {
		t.written = map[string]int{}
	}
	t.written[tenant]++
	if t.written[tenant] < every {
		return false
	}
	delete(t.written, tenant)
	return true
}

// retryLater makes the next alert written to tenant trim again.
func (t *alertTrims) retryLater(tenant string, every int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written == nil {
		t.written = map[string]int{}
	}
	t.written[tenant] = every - 1
}

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

// checkAlertID returns an error wrapping ErrInvalidID unless id is an alert id.
func checkAlertID(id string) error {
	if _, ok := alertTime(id); !ok {
		return fmt.Errorf("alert id %q: want 16 hex digits, '-', 16 hex digits: %w", id, ErrInvalidID)
	}
	return nil
}

// RecordMessage stores the record of an uploaded message unless one with the
// same sensor and message id exists: RecordScan without an alert.
func (s *Store) RecordMessage(ctx context.Context, scope Scope, rec *ospreyv1.MessageRecord, now time.Time) (*ospreyv1.MessageRecord, bool, error) {
	return s.RecordScan(ctx, scope, rec, nil, now)
}

// RecordScan stores the record of a scanned message and, when alert is not
// nil, its alert, in one transaction, unless a record with the same sensor
// and message id exists. It returns the record as stored and whether it was
// there before (a duplicate upload: then nothing is written, and the stored
// record says which alert, if any, the first upload raised). The tenant comes
// from the record; scope must allow it (ErrForbidden).
//
// The alert gets the record's tenant, sensor and message id (naming others is
// an error), the id AlertID(now, ...) when it has none, and created_at now
// when unset; the record gets the alert's id as alert_id. Every
// max(1, MaxAlerts/100) alerts it writes to a tenant, RecordScan trims the
// tenant's alerts (TrimAlerts); a failed trim does not fail the call and is
// tried again at the next alert.
func (s *Store) RecordScan(ctx context.Context, scope Scope, rec *ospreyv1.MessageRecord, alert *ospreyv1.Alert, now time.Time) (*ospreyv1.MessageRecord, bool, error) {
	if err := scope.Check(); err != nil {
		return nil, false, err
	}
	if !scope.Allows(rec.GetTenant()) {
		return nil, false, fmt.Errorf("message of tenant %q: %w", rec.GetTenant(), ErrForbidden)
	}
	for kind, id := range map[string]string{"tenant": rec.GetTenant(), "sensor": rec.GetSensorId(), "message": rec.GetMessageId()} {
		if err := CheckID(kind, id); err != nil {
			return nil, false, err
		}
	}
	tenant := rec.GetTenant()
	rec = proto.Clone(rec).(*ospreyv1.MessageRecord)
	var alertOp clientv3.Op
	if alert != nil {
		alert = proto.Clone(alert).(*ospreyv1.Alert)
		if err := fillAlert(alert, rec, now); err != nil {
			return nil, false, err
		}
		rec.AlertId = alert.GetId()
		b, err := encode(alert)
		if err != nil {
			return nil, false, err
		}
		if len(b) > MaxAlertBytes {
			return nil, false, fmt.Errorf("alert of message %s/%s: %d bytes, more than %d", rec.GetSensorId(), rec.GetMessageId(), len(b), MaxAlertBytes)
		}
		alertOp = clientv3.OpPut(alertKey(tenant, alert.GetId()), string(b))
	} else if rec.GetAlertId() != "" {
		return nil, false, fmt.Errorf("message %s/%s: alert_id %q without its alert", rec.GetSensorId(), rec.GetMessageId(), rec.GetAlertId())
	}
	lease, err := s.messageLease(ctx, now)
	if err != nil {
		return nil, false, err
	}
	b, err := encode(rec)
	if err != nil {
		return nil, false, err
	}
	key := messageKey(tenant, rec.GetSensorId(), rec.GetMessageId())
	ops := []clientv3.Op{clientv3.OpPut(key, string(b), clientv3.WithLease(lease))}
	if alert != nil {
		ops = append(ops, alertOp)
	}
	conds := []clientv3.Cmp{absent(key)}
	elses := []clientv3.Op{clientv3.OpGet(key)}
	// A POP3 message is also known by its mailbox and UIDL: the node that
	// took a mailbox over from a poller that crashed after RETR polls the
	// same message again, under another sensor and message id.
	var seenKey string
	if mailbox, uidl := rec.GetEnvelope().GetMailbox(), rec.GetUidl(); rec.GetSource() == ospreyv1.MailSource_MAIL_SOURCE_POP3 && mailbox != "" && uidl != "" {
		seenKey = pop3SeenKey(tenant, mailbox, uidl)
		conds = append(conds, absent(seenKey))
		ops = append(ops, clientv3.OpPut(seenKey, rec.GetSensorId()+"/"+rec.GetMessageId(), clientv3.WithLease(lease)))
		elses = append(elses, clientv3.OpGet(seenKey))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(elses...).Commit()
	if err != nil {
		return nil, false, etcdErr("txn", key, err)
	}
	if resp.Succeeded {
		if alert != nil && s.trims.due(tenant, s.retention.trimEvery()) {
			if _, err := s.TrimAlerts(ctx, AllTenants(), tenant, now); err != nil {
				s.trims.retryLater(tenant, s.retention.trimEvery())
			}
		}
		return rec, false, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 && seenKey != "" {
		// The same POP3 message was recorded under another sensor's id:
		// answer with that record.
		seen := resp.Responses[1].GetResponseRange().GetKvs()
		if len(seen) == 0 {
			return nil, false, fmt.Errorf("message %s: vanished while read", key)
		}
		sensorID, messageID, ok := strings.Cut(string(seen[0].Value), "/")
		if !ok {
			return nil, false, fmt.Errorf("%s: malformed value %q", seen[0].Key, seen[0].Value)
		}
		first, err := s.GetMessage(ctx, AllTenants(), tenant, sensorID, messageID)
		if err != nil {
			return nil, false, fmt.Errorf("the first record of POP3 message %s: %w", seen[0].Key, err)
		}
		return first, true, nil
	}
	if len(kvs) == 0 {
		return nil, false, fmt.Errorf("message %s: vanished while read", key)
	}
	prev := &ospreyv1.MessageRecord{}
	if err := decode(kvs[0], prev); err != nil {
		return nil, false, err
	}
	return prev, true, nil
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

// maxTrimBatch bounds the keys one trimming pass reads.
const maxTrimBatch = 10000

// TrimAlerts applies the retention to one tenant's alerts as of now: it
// deletes those older than MaxAge, then the oldest beyond MaxAlerts, and
// returns how many it deleted. It needs the all-tenants scope (it is the
// node's machinery). Concurrent calls, on any nodes, are safe: each deletes
// a key range that holds only alerts due to go.
func (s *Store) TrimAlerts(ctx context.Context, scope Scope, tenant string, now time.Time) (int64, error) {
	if err := scope.RequireAll("trim alerts"); err != nil {
		return 0, err
	}
	if err := CheckID("tenant", tenant); err != nil {
		return 0, err
	}
	prefix := tenantAlertsPrefix(tenant)
	oldest := func() (*clientv3.GetResponse, error) {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		if err != nil {
			return nil, etcdErr("range", prefix, err)
		}
		return resp, nil
	}
	var deleted int64
	resp, err := oldest()
	if err != nil {
		return 0, err
	}
	cutoff := prefix + alertTimePrefix(now.Add(-s.retention.MaxAge))
	if len(resp.Kvs) > 0 && string(resp.Kvs[0].Key) < cutoff {
		del, err := s.cli.Delete(ctx, prefix, clientv3.WithRange(cutoff))
		if err != nil {
			return 0, etcdErr("delete", prefix, err)
		}
		deleted += del.Deleted
		if resp, err = oldest(); err != nil {
			return deleted, err
		}
	}
	for excess := resp.Count - int64(s.retention.MaxAlerts); excess > 0; excess = resp.Count - int64(s.retention.MaxAlerts) {
		n := min(excess, maxTrimBatch)
		keys, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithLimit(n), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			return deleted, etcdErr("range", prefix, err)
		}
		if len(keys.Kvs) == 0 {
			break
		}
		last := string(keys.Kvs[len(keys.Kvs)-1].Key)
		del, err := s.cli.Delete(ctx, prefix, clientv3.WithRange(last+"\x00"))
		if err != nil {
			return deleted, etcdErr("delete", prefix, err)
		}
		deleted += del.Deleted
		if excess <= maxTrimBatch {
			break
		}
		if resp, err = oldest(); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// SweepAlerts trims the alerts of every tenant (TrimAlerts) and returns how
// many it deleted. It needs the all-tenants scope.
func (s *Store) SweepAlerts(ctx context.Context, scope Scope, now time.Time) (int64, error) {
	if err := scope.RequireAll("sweep alerts"); err != nil {
		return 0, err
	}
	tenants, err := s.tenantIDs(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	var errs []error
	for _, t := range tenants {
		n, err := s.TrimAlerts(ctx, scope, t, now)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", t, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// tenantIDs lists the ids of every tenant, reading keys only.
func (s *Store) tenantIDs(ctx context.Context) ([]string, error) {
	resp, err := s.cli.Get(ctx, tenantsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, etcdErr("range", tenantsPrefix, err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		if t, ok := parseTenantKey(string(kv.Key)); ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// DefaultAlertSweepInterval is how often an AlertSweeper sweeps by default.
const DefaultAlertSweepInterval = 5 * time.Minute

// AlertSweeperOptions configures an AlertSweeper.
type AlertSweeperOptions struct {
	// Interval between sweeps; 0 means DefaultAlertSweepInterval.
	Interval time.Duration
	// Logger receives the sweeps' failures and what they deleted; nil discards.
	Logger *slog.Logger
}

// AlertSweeper applies the alert retention to every tenant periodically,
// for tenants that stopped receiving alerts. Every central node may run one:
// sweeps are idempotent.
type AlertSweeper struct {
	st       *Store
	interval time.Duration
	log      *slog.Logger
}

// NewAlertSweeper returns a sweeper of st's alerts.
func NewAlertSweeper(st *Store, opts AlertSweeperOptions) *AlertSweeper {
	w := &AlertSweeper{st: st, interval: opts.Interval, log: opts.Logger}
	if w.interval <= 0 {
		w.interval = DefaultAlertSweepInterval
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("component", "alert-sweeper")
	return w
}

// Run sweeps once at once, then every interval, until ctx ends; it returns
// nil then. A failed sweep is logged and tried again at the next one.
func (w *AlertSweeper) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		n, err := w.st.SweepAlerts(ctx, AllTenants(), w.st.now())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			w.log.WarnContext(ctx, "alert sweep failed", "deleted", n, "err", err)
		case n > 0:
			w.log.InfoContext(ctx, "alerts past retention deleted", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// GetAlert returns an alert. tenant "" looks in every tenant of scope (a
// tenant scope: its own). An alert of another tenant, or past the retention's
// MaxAge, is ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, scope Scope, tenant, id string) (*ospreyv1.Alert, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if err := checkAlertID(id); err != nil {
		return nil, err
	}
	if at, _ := alertTime(id); at.Before(s.now().Add(-s.retention.MaxAge)) {
		return nil, fmt.Errorf("alert %q: %w", id, ErrNotFound)
	}
	tenants, err := s.scopeTenants(ctx, scope, tenant)
	if err != nil {
		return nil, err
	}
	for len(tenants) > 0 {
		batch := tenants[:min(len(tenants), maxTxnOps)]
		tenants = tenants[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, t := range batch {
			ops[i] = clientv3.OpGet(alertKey(t, id))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, etcdErr("txn", alertsPrefix, err)
		}
		for _, r := range resp.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				a := new(ospreyv1.Alert)
				if err := decode(kvs[0], a); err != nil {
					return nil, err
				}
				return a, nil
			}
		}
	}
	return nil, fmt.Errorf("alert %q: %w", id, ErrNotFound)
}

// scopeTenants returns the tenants a read names: tenant itself when set (if
// scope allows it; ErrNotFound otherwise), else the scope's tenant, else
// every tenant.
func (s *Store) scopeTenants(ctx context.Context, scope Scope, tenant string) ([]string, error) {
	switch {
	case tenant != "":
		if err := s.tenantReadScope(scope, tenant); err != nil {
			return nil, err
		}
		return []string{tenant}, nil
	case !scope.all:
		return []string{scope.tenant}, nil
	}
	return s.tenantIDs(ctx)
}

// Page sizes of the paged lists (ListAlerts, ListMessagesPage).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

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
	// Q keeps alerts where it occurs, ignoring case, in the subject, the
	// header From, To and Cc, the envelope sender and recipients, the
	// attachments' names and paths, or the matches' rule ids and descriptions.
	Q string
	// PageToken continues a list where the page that returned it ended.
	PageToken string
	// Limit is the most alerts to return: 0 means DefaultPageLimit; at most MaxPageLimit.
	Limit int
}

// check reports the query's bad fields by their names in the REST API.
func (q *AlertQuery) check() error {
	var errs validate.Errors
	if q.Limit < 0 || q.Limit > MaxPageLimit {
		errs = append(errs, validate.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", MaxPageLimit)})
	}
	if q.Tenant != "" && !validID(q.Tenant) {
		errs = append(errs, validate.FieldError{Field: "tenant", Message: "not a tenant id"})
	}
	if q.SensorID != "" && !validID(q.SensorID) {
		errs = append(errs, validate.FieldError{Field: "sensor", Message: "not a sensor id"})
	}
	if len(q.Q) > maxQueryBytes {
		errs = append(errs, validate.FieldError{Field: "q", Message: fmt.Sprintf("must be at most %d bytes long", maxQueryBytes)})
	}
	if q.MinSeverity < 0 || q.MinSeverity > ospreyv1.Severity_SEVERITY_CRITICAL {
		errs = append(errs, validate.FieldError{Field: "severity", Message: "must be low, medium, high or critical"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// AlertPage is one page of ListAlerts.
type AlertPage struct {
	Alerts []*ospreyv1.Alert
	// NextPageToken continues the list; "" when it has ended. A page may hold
	// fewer alerts than the limit, even none, and still have a next page: a
	// page examines a bounded number of alerts, so a rare filter does not
	// make one request read a whole tenant.
	NextPageToken string
}

// maxAlertsExamined bounds the alerts one ListAlerts call reads, and
// maxAlertsBuffered those it holds at once over every tenant.
const (
	maxAlertsExamined = 10000
	maxAlertsBuffered = 2000
)

// ListAlerts returns the alerts in scope that q selects, newest first
// (across tenants, by id), a page at a time. Alerts past the retention's
// MaxAge are not listed. A page examines at most 10,000 alerts and holds at
// most about 2,000 in memory at once, whatever the number of tenants.
// Problems with q are validate.Errors naming the REST API's parameters.
func (s *Store) ListAlerts(ctx context.Context, scope Scope, q AlertQuery) (*AlertPage, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if err := q.check(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageLimit
	}
	var after *alertCursor
	if q.PageToken != "" {
		c, err := parseAlertToken(q.PageToken)
		if err != nil {
			return nil, err
		}
		after = c
	}
	tenants, err := s.scopeTenants(ctx, scope, q.Tenant)
	if err != nil {
		return nil, err
	}
	from := s.now().Add(-s.retention.MaxAge)
	if q.Since.After(from) {
		from = q.Since
	}
	filtered := q.MinSeverity > 0 || q.SensorID != "" || q.Q != ""
	chunk := limit + 1
	if filtered {
		chunk = MaxPageLimit
	}
	chunk = max(4, min(chunk, maxAlertsBuffered/max(len(tenants), 1)))

	// One source per tenant, each reading its range newest first in chunks,
	// all at the revision of the first read; the merge takes the newest head.
	var rev int64
	srcs := make([]*alertSource, 0, len(tenants))
	for _, t := range tenants {
		prefix := tenantAlertsPrefix(t)
		src := &alertSource{tenant: t, start: prefix + alertTimePrefix(from), end: clientv3.GetPrefixRangeEnd(prefix)}
		if after != nil {
			// Continue strictly after the cursor in (id, tenant) descending order.
			src.end = alertKey(t, after.id)
			if t < after.tenant {
				src.end += "\x00"
			}
		}
		srcs = append(srcs, src)
	}
	fill := func(src *alertSource) error {
		if src.done || len(src.buf) > 0 {
			return nil
		}
		opts := []clientv3.OpOption{clientv3.WithRange(src.end), clientv3.WithLimit(int64(chunk)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, src.start, opts...)
		if err != nil {
			return etcdErr("range", src.start, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		src.buf = resp.Kvs
		if !resp.More {
			src.done = true
		}
		if n := len(resp.Kvs); n > 0 {
			src.end = string(resp.Kvs[n-1].Key)
		}
		return nil
	}
	page := &AlertPage{Alerts: []*ospreyv1.Alert{}}
	match := alertMatcher(q)
	var last *alertCursor
	for examined := 0; ; examined++ {
		var best *alertSource
		for _, src := range srcs {
			if err := fill(src); err != nil {
				return nil, err
			}
			if len(src.buf) == 0 {
				continue
			}
			if best == nil || newer(src, best) {
				best = src
			}
		}
		if best == nil {
			return page, nil // every source has ended
		}
		if len(page.Alerts) == limit || examined == maxAlertsExamined {
			page.NextPageToken = last.token()
			return page, nil
		}
		kv := best.buf[0]
		best.buf = best.buf[1:]
		a := new(ospreyv1.Alert)
		if err := decode(kv, a); err != nil {
			return nil, err
		}
		last = &alertCursor{id: string(kv.Key[len(tenantAlertsPrefix(best.tenant)):]), tenant: best.tenant}
		if match(a) {
			page.Alerts = append(page.Alerts, a)
		}
	}
}

// alertSource reads one tenant's alerts newest first, between start
// (inclusive) and end (exclusive), a chunk at a time.
type alertSource struct {
	tenant     string
	start, end string
	buf        []*mvccpb.KeyValue
	done       bool
}

// newer reports whether a's head comes before b's in the list: a newer id,
// or the same id in a later tenant.
func newer(a, b *alertSource) bool {
	ida := string(a.buf[0].Key[len(tenantAlertsPrefix(a.tenant)):])
	idb := string(b.buf[0].Key[len(tenantAlertsPrefix(b.tenant)):])
	if ida != idb {
		return ida > idb
	}
	return a.tenant > b.tenant
}

// alertMatcher returns the filter of q's severity, sensor and text.
func alertMatcher(q AlertQuery) func(*ospreyv1.Alert) bool {
	needle := strings.ToLower(q.Q)
	return func(a *ospreyv1.Alert) bool {
		if a.GetSeverity() < q.MinSeverity {
			return false
		}
		if q.SensorID != "" && a.GetSensorId() != q.SensorID {
			return false
		}
		return needle == "" || alertContains(a, needle)
	}
}

// alertContains reports whether needle (lower case) occurs in one of the
// alert's searched fields, ignoring case.
func alertContains(a *ospreyv1.Alert, needle string) bool {
	has := func(s string) bool { return s != "" && strings.Contains(strings.ToLower(s), needle) }
	hasAny := func(ss []string) bool {
		for _, s := range ss {
			if has(s) {
				return true
			}
		}
		return false
	}
	h, env := a.GetHeaders(), a.GetEnvelope()
	if has(h.GetSubject()) || has(h.GetFrom()) || hasAny(h.GetTo()) || hasAny(h.GetCc()) ||
		has(env.GetMailFrom()) || hasAny(env.GetRcptTo()) {
		return true
	}
	for _, at := range a.GetAttachments() {
		if has(at.GetFilename()) || has(at.GetPath()) {
			return true
		}
	}
	for _, m := range a.GetMatches() {
		if has(m.GetRuleId()) || has(m.GetWhat()) {
			return true
		}
	}
	return false
}

// alertCursor is the position of the last alert a page examined.
type alertCursor struct {
	id, tenant string
}

// alertTokenVersion starts every alert page token, so their format can change.
const alertTokenVersion = "a1"

func (c *alertCursor) token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(alertTokenVersion + "/" + c.tenant + "/" + c.id))
}

func parseAlertToken(tok string) (*alertCursor, error) {
	bad := fieldError("page_token", "not a page token of this list; start again without one")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, bad
	}
	f := strings.Split(string(b), "/")
	if len(f) != 3 || f[0] != alertTokenVersion || !validID(f[1]) || checkAlertID(f[2]) != nil {
		return nil, bad
	}
	return &alertCursor{tenant: f[1], id: f[2]}, nil
}

// MessageQuery selects message records for ListMessagesPage.
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

// MessagePage is one page of ListMessagesPage.
type MessagePage struct {
	Messages []*ospreyv1.MessageRecord
	// NextPageToken continues the list; "" when it has ended.
	NextPageToken string
}

// ListMessagesPage returns the message records in scope that q selects,
// ordered by tenant, sensor and message id, a page at a time. Records expire
// after MessageRetention. Problems with q are validate.Errors naming the
// REST API's parameters; a tenant or sensor outside scope is ErrNotFound.
func (s *Store) ListMessagesPage(ctx context.Context, scope Scope, q MessageQuery) (*MessagePage, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	var errs validate.Errors
	if q.Limit < 0 || q.Limit > MaxPageLimit {
		errs = append(errs, validate.FieldError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", MaxPageLimit)})
	}
	if q.Tenant != "" && !validID(q.Tenant) {
		errs = append(errs, validate.FieldError{Field: "tenant", Message: "not a tenant id"})
	}
	if q.SensorID != "" && !validID(q.SensorID) {
		errs = append(errs, validate.FieldError{Field: "sensor", Message: "not a sensor id"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageLimit
	}
	tenant := q.Tenant
	switch {
	case tenant != "" && !scope.Allows(tenant):
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	case tenant == "" && !scope.all:
		tenant = scope.tenant
	case tenant == "" && q.SensorID != "":
		t, err := s.sensorTenant(ctx, scope, q.SensorID)
		if err != nil {
			return nil, err
		}
		tenant = t
	}
	prefix := messagesPrefix
	switch {
	case q.SensorID != "":
		prefix = messagesSensorPrefix(tenant, q.SensorID)
	case tenant != "":
		prefix = messagesTenantPrefix(tenant)
	}
	start := prefix
	if q.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		last := messagesPrefix + string(b)
		if err != nil || !strings.HasPrefix(last, prefix) || len(last) == len(prefix) {
			return nil, fieldError("page_token", "not a page token of this list; start again without one")
		}
		start = last + "\x00"
	}
	resp, err := s.cli.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	page := &MessagePage{Messages: make([]*ospreyv1.MessageRecord, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		m := new(ospreyv1.MessageRecord)
		if err := decode(kv, m); err != nil {
			return nil, err
		}
		page.Messages = append(page.Messages, m)
	}
	if resp.More && len(resp.Kvs) > 0 {
		lastKey := string(resp.Kvs[len(resp.Kvs)-1].Key)
		page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(lastKey[len(messagesPrefix):]))
	}
	return page, nil
}
