package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The SIEM export follows the alerts of the SQL store (see package
// siemfeed): one central node at a time, elected under ExportLeaderPrefix,
// reads each exporting tenant's alerts by their number and keeps here, per
// tenant, the number up to which they have reached the tenant's receiver.

// ErrNotLeader is the error of a cursor write by a node that is no longer
// the export's leader.
var ErrNotLeader = errors.New("not the SIEM export leader")

// ExportLeaderPrefix is the prefix of the election of the node that
// exports alerts.
func ExportLeaderPrefix() string { return exportLeaderPrefix }

// ExportCursor returns the number up to which tenant's alerts were
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

// SetExportCursor records that tenant's alerts up to number rev were
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
