package store

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// bulkBatch is how many sensors one transaction of ApplySMTP writes: two
// operations each (a condition and a put) stay within etcd's default limit
// of 128 (--max-txn-ops), which an external etcd may keep.
const bulkBatch = 64

// bulkInFlight is how many of ApplySMTP's transactions are sent at once.
const bulkInFlight = 16

// ApplySMTP writes cfg as the SMTP integration of every sensor of tenant (as
// Symantec's "apply to all scanners" does), and returns how many sensors it
// changed and the revision of its last write. Each sensor keeps its stored
// TLS key when cfg leaves it empty (see secrets.go). Sensors whose value
// would not change are not written, so they are not woken. The writes go in
// transactions of up to 64 sensors, 16 transactions at a time: each batch
// is atomic, the whole is not (a sensor created meanwhile may miss it); it is
// last-writer-wins, with no version check. cfg is validated once, first.
func (s *Store) ApplySMTP(ctx context.Context, scope Scope, tenant string, cfg *ospreyv1.SmtpIntegration) (changed int, rev int64, err error) {
	if err := validateSMTP(cfg); err != nil {
		return 0, 0, err
	}
	if err := scope.Check(); err != nil {
		return 0, 0, err
	}
	if tenant, err = scope.Claim(tenant); err != nil {
		return 0, 0, err
	}
	if err := CheckID("tenant", tenant); err != nil {
		return 0, 0, err
	}
	prefix := tenantSensorsPrefix(tenant)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, 0, etcdErr("range", prefix, err)
	}
	type target struct {
		id    string
		msg   *ospreyv1.SmtpIntegration
		value []byte
	}
	stored := map[string]*ospreyv1.SmtpIntegration{}
	var ids []string
	for _, kv := range resp.Kvs {
		_, id, part, ok := parseSensorKey(string(kv.Key))
		if !ok {
			continue
		}
		switch part {
		case partMeta:
			ids = append(ids, id)
		case partSMTP:
			m := &ospreyv1.SmtpIntegration{}
			if err := decode(kv, m); err != nil {
				return 0, 0, err
			}
			stored[id] = m
		}
	}
	var targets []target
	for _, id := range ids {
		next := proto.Clone(cfg).(*ospreyv1.SmtpIntegration)
		old := stored[id]
		if old == nil {
			old = &ospreyv1.SmtpIntegration{}
		}
		mergeSMTPSecrets(old, next)
		if proto.Equal(old, next) {
			continue
		}
		b, err := encode(next)
		if err != nil {
			return 0, 0, err
		}
		targets = append(targets, target{id, next, b})
	}
	// The batches go concurrently: etcd commits the transactions that
	// reach it together with one write to its log (one fsync), where one
	// after the other each would wait for its own.
	var mu sync.Mutex
	var firstErr error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bulkInFlight)
	for start := 0; start < len(targets); start += bulkBatch {
		batch := targets[start:min(start+bulkBatch, len(targets))]
		g.Go(func() error {
			conds := make([]clientv3.Cmp, 0, len(batch))
			ops := make([]clientv3.Op, 0, len(batch))
			for _, t := range batch {
				conds = append(conds, exists(sensorKey(tenant, t.id, partMeta)))
				ops = append(ops, clientv3.OpPut(sensorKey(tenant, t.id, partSMTP), string(t.value)))
			}
			n, r := 0, int64(0)
			resp, err := s.cli.Txn(gctx).If(conds...).Then(ops...).Commit()
			switch {
			case err != nil:
				mu.Lock()
				if firstErr == nil {
					firstErr = etcdErr("txn", prefix, err)
				}
				mu.Unlock()
				return err
			case resp.Succeeded:
				n, r = len(batch), resp.Header.Revision
			default:
				// A sensor of the batch was deleted meanwhile: write the others one by one.
				for _, t := range batch {
					pr, err := s.putPart(gctx, scope, t.id, partSMTP, t.msg, AnyVersion)
					if err != nil {
						continue
					}
					n++
					r = max(r, pr)
				}
			}
			mu.Lock()
			changed += n
			rev = max(rev, r)
			mu.Unlock()
			return nil
		})
	}
	if g.Wait() != nil {
		return changed, rev, firstErr
	}
	if len(targets) > 0 && rev == 0 {
		return 0, 0, fmt.Errorf("apply SMTP to tenant %q: no sensor could be written", tenant)
	}
	return changed, rev, nil
}
