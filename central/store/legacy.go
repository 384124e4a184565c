package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// An earlier version kept message records and alerts in etcd. The SQL
// store holds them now, and package upgrade moves what is left in etcd
// there: these are the reads and deletes it needs, and nothing else uses
// them.

// LegacyAlert is an alert an earlier version stored in etcd, with the
// revision that stored it and its key.
type LegacyAlert struct {
	Alert    *ospreyv1.Alert
	Revision int64
	Key      string
}

// LegacyAlerts returns up to limit of the alerts left in etcd, oldest first
// by the revision that stored them (the order the SIEM export followed),
// of the tenant whose alerts come first by key.
func (s *Store) LegacyAlerts(ctx context.Context, limit int) ([]LegacyAlert, error) {
	first, err := s.cli.Get(ctx, legacyAlertsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil {
		return nil, etcdErr("range", legacyAlertsPrefix, err)
	}
	if len(first.Kvs) == 0 {
		return nil, nil
	}
	tenant, _, ok := strings.Cut(strings.TrimPrefix(string(first.Kvs[0].Key), legacyAlertsPrefix), "/")
	if !ok {
		return nil, fmt.Errorf("legacy alert key %q: no tenant", first.Kvs[0].Key)
	}
	prefix := legacyAlertsPrefix + tenant + "/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	out := make([]LegacyAlert, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a := new(ospreyv1.Alert)
		if err := decode(kv, a); err != nil {
			return nil, err
		}
		if a.GetTenant() == "" {
			a.Tenant = tenant
		}
		out = append(out, LegacyAlert{Alert: a, Revision: kv.ModRevision, Key: string(kv.Key)})
	}
	return out, nil
}

// LegacyMessage is a message record an earlier version stored in etcd,
// with its key.
type LegacyMessage struct {
	Record *ospreyv1.MessageRecord
	Key    string
}

// LegacyMessages returns up to limit of the message records left in etcd.
func (s *Store) LegacyMessages(ctx context.Context, limit int) ([]LegacyMessage, error) {
	resp, err := s.cli.Get(ctx, legacyMessagesPrefix, clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, etcdErr("range", legacyMessagesPrefix, err)
	}
	out := make([]LegacyMessage, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec := new(ospreyv1.MessageRecord)
		if err := decode(kv, rec); err != nil {
			return nil, err
		}
		out = append(out, LegacyMessage{Record: rec, Key: string(kv.Key)})
	}
	return out, nil
}

// LegacyExportCursors returns, by tenant, the revisions up to which an
// earlier version had exported each tenant's alerts.
func (s *Store) LegacyExportCursors(ctx context.Context) (map[string]int64, error) {
	resp, err := s.cli.Get(ctx, legacyCursorPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("range", legacyCursorPrefix, err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		rev, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("legacy export cursor %s: %w", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), legacyCursorPrefix)] = rev
	}
	return out, nil
}

// PutExportCursor records tenant's export cursor without the leader's
// check: for the upgrade, which runs before the node exports anything.
func (s *Store) PutExportCursor(ctx context.Context, tenant string, n int64) error {
	if err := CheckID("tenant", tenant); err != nil {
		return err
	}
	key := exportCursorKey(tenant)
	if _, err := s.cli.Put(ctx, key, strconv.FormatInt(n, 10)); err != nil {
		return etcdErr("put", key, err)
	}
	return nil
}

// DeleteLegacy deletes keys an earlier version stored (as returned by
// LegacyAlerts and LegacyMessages), in transactions of up to 128.
func (s *Store) DeleteLegacy(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxTxnOps)]
		keys = keys[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			if !strings.HasPrefix(k, legacyAlertsPrefix) && !strings.HasPrefix(k, legacyMessagesPrefix) {
				return fmt.Errorf("delete %q: not a key of an earlier version's alerts or records", k)
			}
			ops[i] = clientv3.OpDelete(k)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return etcdErr("txn", legacyAlertsPrefix, err)
		}
	}
	return nil
}

// DeleteLegacyIndexes deletes what an earlier version kept beside its
// records and alerts once they are moved: the index of POP3 messages and
// the export cursors by revision.
func (s *Store) DeleteLegacyIndexes(ctx context.Context) error {
	for _, prefix := range []string{legacyPOP3SeenPrefix, legacyCursorPrefix} {
		if _, err := s.cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
			return etcdErr("delete", prefix, err)
		}
	}
	return nil
}
