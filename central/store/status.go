package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// maxTxnOps is etcd's default limit of operations in one transaction.
const maxTxnOps = 128

// StatusWrite is one sensor's status to store: live (under lease, gone when
// the writing node's lease expires) and, when Durable, also as the sensor's
// last known state.
type StatusWrite struct {
	Status  *ospreyv1.SensorRuntime
	Durable bool
	// Offline deletes the live entry (the stream ended) and stores Status as
	// the last known state.
	Offline bool
}

// PutStatuses writes a batch of sensor statuses in as few transactions as
// etcd allows, the live entries under lease. It is the node's machinery, not a
// caller's: it takes no scope.
func (s *Store) PutStatuses(ctx context.Context, lease clientv3.LeaseID, writes []StatusWrite) error {
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return etcdErr("txn", statusPrefix, err)
		}
		ops = ops[:0]
		return nil
	}
	for _, w := range writes {
		id := w.Status.GetSensorId()
		if err := CheckID("sensor", id); err != nil {
			return err
		}
		b, err := encode(w.Status)
		if err != nil {
			return err
		}
		if len(ops)+2 > maxTxnOps {
			if err := flush(); err != nil {
				return err
			}
		}
		switch {
		case w.Offline:
			ops = append(ops, clientv3.OpDelete(statusKey(id)), clientv3.OpPut(lastSeenKey(id), string(b)))
		case w.Durable:
			ops = append(ops, clientv3.OpPut(statusKey(id), string(b), clientv3.WithLease(lease)), clientv3.OpPut(lastSeenKey(id), string(b)))
		default:
			ops = append(ops, clientv3.OpPut(statusKey(id), string(b), clientv3.WithLease(lease)))
		}
	}
	return flush()
}

// Statuses returns the status of every sensor in scope, by sensor id: the
// live entry of an online sensor, else its last known state (Online false).
func (s *Store) Statuses(ctx context.Context, scope Scope) (map[string]*ospreyv1.SensorRuntime, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	out := map[string]*ospreyv1.SensorRuntime{}
	for _, prefix := range []string{lastSeenPrefix, statusPrefix} {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, etcdErr("range", prefix, err)
		}
		for _, kv := range resp.Kvs {
			st := &ospreyv1.SensorRuntime{}
			if err := decode(kv, st); err != nil {
				return nil, err
			}
			if !scope.Allows(st.GetTenant()) {
				continue
			}
			if prefix == lastSeenPrefix {
				st.Online = false
			}
			out[st.GetSensorId()] = st
		}
	}
	return out, nil
}

// Status returns one sensor's status as Statuses does, or nil when the sensor
// has never connected.
func (s *Store) Status(ctx context.Context, scope Scope, sensorID string) (*ospreyv1.SensorRuntime, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if err := CheckID("sensor", sensorID); err != nil {
		return nil, err
	}
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(statusKey(sensorID)), clientv3.OpGet(lastSeenKey(sensorID))).Commit()
	if err != nil {
		return nil, etcdErr("txn", statusKey(sensorID), err)
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue
		}
		st := &ospreyv1.SensorRuntime{}
		if err := decode(kvs[0], st); err != nil {
			return nil, err
		}
		if !scope.Allows(st.GetTenant()) {
			return nil, nil
		}
		if i == 1 {
			st.Online = false
		}
		return st, nil
	}
	return nil, nil
}

// Lease grants a lease of ttl seconds for a node's live entries.
func (s *Store) Lease(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	resp, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd grant lease: %w", err)
	}
	return resp.ID, nil
}

// KeepAlive keeps lease alive until ctx ends; the channel closes when the
// lease is lost (expired, or etcd unreachable for longer than its TTL).
func (s *Store) KeepAlive(ctx context.Context, lease clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ch, err := s.cli.KeepAlive(ctx, lease)
	if err != nil {
		return nil, fmt.Errorf("etcd keep lease alive: %w", err)
	}
	return ch, nil
}

// Revoke ends lease at once, deleting every live entry written under it.
func (s *Store) Revoke(ctx context.Context, lease clientv3.LeaseID) error {
	if _, err := s.cli.Revoke(ctx, lease); err != nil {
		return fmt.Errorf("etcd revoke lease: %w", err)
	}
	return nil
}

// CountOnline returns how many sensors hold a stream with some node of the
// cluster: the live status entries, which each node keeps under its lease
// (so a dead node's drop out with its lease). It is for the nodes'
// balancing of streams and reads a count only, no tenant's data.
func (s *Store) CountOnline(ctx context.Context) (int, error) {
	resp, err := s.cli.Get(ctx, statusPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdErr("range", statusPrefix, err)
	}
	return int(resp.Count), nil
}
