package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The SIEM export follows the alerts in etcd (see package siemfeed): one
// central node at a time, elected under ExportLeaderPrefix, reads each
// exporting tenant's alerts in the order etcd stored them (by ModRevision:
// WatchNewAlerts, or AlertsAfter once etcd's history is compacted) and
// keeps, per tenant, the revision up to which they have reached the
// tenant's receiver.

// ErrNotLeader is the error of a cursor write by a node that is no longer
// the export's leader.
var ErrNotLeader = errors.New("not the SIEM export leader")

// ExportLeaderPrefix is the prefix of the election of the node that
// exports alerts.
func ExportLeaderPrefix() string { return exportLeaderPrefix }

// StoredAlert is an alert with the etcd revision that stored it.
type StoredAlert struct {
	Alert    *ospreyv1.Alert
	Revision int64
}

// AlertsAfter returns up to limit alerts of tenant stored after revision
// rev, oldest first by revision, and the store's revision at the read.
// Alerts are never rewritten, so their ModRevision is when they were made.
func (s *Store) AlertsAfter(ctx context.Context, scope Scope, tenant string, rev int64, limit int) ([]StoredAlert, int64, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		return nil, 0, errors.New("alerts after: limit must be positive")
	}
	prefix := tenantAlertsPrefix(tenant)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithMinModRev(rev+1),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, 0, etcdErr("range", prefix, err)
	}
	out := make([]StoredAlert, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a := new(ospreyv1.Alert)
		if err := decode(kv, a); err != nil {
			return nil, 0, err
		}
		out = append(out, StoredAlert{Alert: a, Revision: kv.ModRevision})
	}
	return out, resp.Header.Revision, nil
}

// Revision returns the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, clusterCAKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdErr("get", clusterCAKey, err)
	}
	return resp.Header.Revision, nil
}

// AlertBatch is what WatchNewAlerts delivers: alerts in the order etcd
// stored them, or the error that ended the watch (ErrCompacted when the
// history from the requested revision is gone: read it with AlertsAfter).
type AlertBatch struct {
	Alerts []StoredAlert
	Err    error
}

// WatchNewAlerts streams the alerts of tenant stored after revision rev,
// from etcd's history and then as they are stored, until ctx ends or an
// error does (the last batch then carries it, and the channel closes). It
// reads no alert twice and, unlike a range read, none that it is not
// asked for.
func (s *Store) WatchNewAlerts(ctx context.Context, tenant string, rev int64) (<-chan AlertBatch, error) {
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	prefix := tenantAlertsPrefix(tenant)
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	out := make(chan AlertBatch)
	go func() {
		defer close(out)
		send := func(b AlertBatch) bool {
			select {
			case out <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if err := resp.Err(); err != nil {
				send(AlertBatch{Err: etcdErr("watch", prefix, err)})
				return
			}
			var b AlertBatch
			for _, ev := range resp.Events {
				if !ev.IsCreate() {
					continue // alerts are written once: a rewrite is not a new alert
				}
				a := new(ospreyv1.Alert)
				if err := decode(ev.Kv, a); err != nil {
					send(AlertBatch{Err: err})
					return
				}
				b.Alerts = append(b.Alerts, StoredAlert{Alert: a, Revision: ev.Kv.ModRevision})
			}
			if len(b.Alerts) > 0 && !send(b) {
				return
			}
		}
		if ctx.Err() == nil {
			send(AlertBatch{Err: fmt.Errorf("etcd watch %s: %w", prefix, ErrUnavailable)})
		}
	}()
	return out, nil
}

// ExportCursor returns the revision up to which tenant's alerts were
// exported, and false when none was recorded.
func (s *Store) ExportCursor(ctx context.Context, tenant string) (int64, bool, error) {
	if err := CheckID("tenant", tenant); err != nil {
		return 0, false, err
	}
	key := exportCursorKey(tenant)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, false, etcdErr("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	rev, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("export cursor %s: %w", key, err)
	}
	return rev, true, nil
}

// SetExportCursor records that tenant's alerts up to revision rev were
// exported, if leader (the compare of the election's leader key) still
// holds; otherwise it fails with ErrNotLeader and changes nothing.
func (s *Store) SetExportCursor(ctx context.Context, tenant string, rev int64, leader clientv3.Cmp) error {
	if err := CheckID("tenant", tenant); err != nil {
		return err
	}
	return s.leaderTxn(ctx, exportCursorKey(tenant), leader, clientv3.OpPut(exportCursorKey(tenant), strconv.FormatInt(rev, 10)))
}

// DeleteExportCursor forgets tenant's cursor, when its export is turned
// off: turned on again, it starts with the alerts made from then on.
func (s *Store) DeleteExportCursor(ctx context.Context, tenant string, leader clientv3.Cmp) error {
	if err := CheckID("tenant", tenant); err != nil {
		return err
	}
	return s.leaderTxn(ctx, exportCursorKey(tenant), leader, clientv3.OpDelete(exportCursorKey(tenant)))
}

func (s *Store) leaderTxn(ctx context.Context, key string, leader clientv3.Cmp, op clientv3.Op) error {
	resp, err := s.cli.Txn(ctx).If(leader).Then(op).Commit()
	if err != nil {
		return etcdErr("txn", key, err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}
