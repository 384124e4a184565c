package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	"github.com/ospreysec/osprey/pkg/validate"
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

// An earlier version kept a gateway's outbound acceptance list as the
// trusted_networks of its SMTP integration. MigrateTrustedNetworks moves
// them into the list, which the push carries on its own.

// TrustedMigration is what MigrateTrustedNetworks did.
type TrustedMigration struct {
	// Moved are the sensors whose trusted networks were moved.
	Moved []string
	// Failed are the sensors whose trusted networks could not be moved,
	// with why (an entry the outbound list holds with the opposite '!');
	// their integration keeps them, and their sensors run them while the
	// outbound list is empty.
	Failed map[string]error
}

// migrateAttempts bounds how often one sensor's move is tried again when
// its integration or its list changes meanwhile.
const migrateAttempts = 5

// MigrateTrustedNetworks moves the trusted networks of every sensor's SMTP
// integration into its outbound acceptance list, beside the entries the
// list holds, and clears them: one swap of the list's head, with the
// integration, in one transaction that checks both versions. A node runs
// it at every start; it costs a read of each sensor's integration, and
// several nodes running it at once move each sensor once (the loser of a
// swap reads again, and finds nothing to move).
func (s *Store) MigrateTrustedNetworks(ctx context.Context) (TrustedMigration, error) {
	out := TrustedMigration{Failed: map[string]error{}}
	index, err := s.cli.Get(ctx, sensorTenantPrefix, clientv3.WithPrefix())
	if err != nil {
		return out, etcdErr("range", sensorTenantPrefix, err)
	}
	for _, kv := range index.Kvs {
		id, tenant := strings.TrimPrefix(string(kv.Key), sensorTenantPrefix), string(kv.Value)
		if !validID(id) || !validID(tenant) {
			continue
		}
		moved, err := s.migrateTrusted(ctx, tenant, id)
		switch {
		case err != nil && isFieldError(err):
			out.Failed[id] = err
		case err != nil:
			return out, fmt.Errorf("move the trusted networks of sensor %q: %w", id, err)
		case moved:
			out.Moved = append(out.Moved, id)
		}
	}
	return out, nil
}

// migrateTrusted moves one sensor's trusted networks, and reports whether
// there were any.
func (s *Store) migrateTrusted(ctx context.Context, tenant, id string) (bool, error) {
	key := sensorKey(tenant, id, partSMTP)
	for range migrateAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return false, etcdErr("get", key, err)
		}
		if len(resp.Kvs) == 0 {
			return false, nil
		}
		cfg := new(ospreyv1.SmtpIntegration)
		if err := decode(resp.Kvs[0], cfg); err != nil {
			return false, err
		}
		//lint:ignore SA1019 what is moved
		trusted := cfg.GetGateway().GetTrustedNetworks()
		if len(trusted) == 0 {
			return false, nil
		}
		list, err := s.readAcceptance(ctx, tenant, id, ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, 0, 0)
		if errors.Is(err, ErrCompacted) {
			continue // compacted under the read: read again
		}
		if err != nil {
			return false, err
		}
		cur, err := acceptlist.Parse(list.Entries)
		if err != nil {
			return false, fmt.Errorf("stored outbound acceptance list: %w", err)
		}
		merged, err := cur.Edit(trusted, nil)
		if err != nil {
			return false, validate.AcceptanceErrors(err)
		}
		//lint:ignore SA1019 cleared
		cfg.Gateway.TrustedNetworks = nil
		b, err := encode(cfg)
		if err != nil {
			return false, err
		}
		_, err = s.writeAcceptance(ctx, tenant, id, ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, merged.Entries(), list.Version,
			[]clientv3.Cmp{unmodifiedSince(key, resp.Kvs[0].ModRevision)}, []clientv3.Op{clientv3.OpPut(key, string(b))})
		if errors.Is(err, errRetry) || errors.Is(err, ErrConflict) {
			continue
		}
		return err == nil, err
	}
	return false, fmt.Errorf("sensor %q changed %d times while its trusted networks were moved: %w", id, migrateAttempts, ErrConflict)
}

func isFieldError(err error) bool {
	_, ok := validate.AsErrors(err)
	return ok
}

// Before the product's roles, a user had one role of admin, tenant_admin and
// auditor, and one tenant. MigrateUsers rewrites such records as upgrade
// says (auth.Upgrade maps them), each in a transaction that checks the
// version it read. A node runs it at every start; it costs a read of the
// users, and several nodes running it at once rewrite each user once (the
// loser of a swap reads again, and finds nothing to change).
func (s *Store) MigrateUsers(ctx context.Context, upgrade func(*ospreyv1.User) bool) ([]string, error) {
	resp, err := s.cli.Get(ctx, usersPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, etcdErr("range", usersPrefix, err)
	}
	var migrated []string
	for _, kv := range resp.Kvs {
		changed, err := s.migrateUser(ctx, string(kv.Key), upgrade)
		if err != nil {
			return migrated, err
		}
		if changed != "" {
			migrated = append(migrated, changed)
		}
	}
	return migrated, nil
}

// migrateUser rewrites the user at key if upgrade changes it, and returns its
// name if it did.
func (s *Store) migrateUser(ctx context.Context, key string, upgrade func(*ospreyv1.User) bool) (string, error) {
	for range migrateAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return "", etcdErr("get", key, err)
		}
		if len(resp.Kvs) == 0 {
			return "", nil // deleted meanwhile
		}
		u := new(ospreyv1.User)
		if err := decode(resp.Kvs[0], u); err != nil {
			return "", err
		}
		if !upgrade(u) {
			return "", nil
		}
		b, err := encode(u)
		if err != nil {
			return "", err
		}
		txn, err := s.cli.Txn(ctx).If(unmodifiedSince(key, resp.Kvs[0].ModRevision)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return "", etcdErr("txn", key, err)
		}
		if txn.Succeeded {
			return u.GetName(), nil
		}
	}
	return "", fmt.Errorf("%s changed %d times while its role was migrated: %w", key, migrateAttempts, ErrConflict)
}
