// Package store is the typed store of the configuration model over etcd:
// tenants, sensors and their SMTP and POP3 integrations, users and tokens,
// scan rules and SIEM exports; and of what scanning produces: message records
// and alerts (see alerts.go for exactly-once alerts and their retention).
// Every other part of a Central Node reads and writes configuration through it.
//
// Design note. Three rules shape every method.
//
// Scope. Each method takes a Scope, and tenant isolation is enforced here, not
// in handlers. Keys of tenant-owned configuration start with the tenant
// (tenants/<tenant>/...), and a tenant-scoped call only ever builds keys under
// its own tenant, so another tenant's sensor is simply absent (ErrNotFound, the
// same answer as for an id that does not exist). Users and tokens carry their
// tenant in the value; a tenant-scoped call that finds a foreign one answers
// ErrNotFound too, and a write that depends on such a check compares the
// ModRevision it checked, so the check cannot go stale before the write. A
// write that names another tenant in its message is refused with ErrForbidden.
//
// Versions. A value's version is the ModRevision of its key (0: never
// written). Writes are compare-and-swap against the version the caller read
// (or AnyVersion), done in one etcd transaction together with their
// preconditions (the tenant exists, the sensor exists in that tenant). The same
// transaction first compares the stored bytes with the new ones: a write that
// changes nothing stores nothing, makes no revision and wakes no watcher, and
// returns the current version (whatever version the caller expected, since
// nothing would be lost). Values are marshalled deterministically so that
// equal messages give equal bytes.
//
// Validation. Every write is checked by package validate before anything is
// sent to etcd; a refused write changes nothing and returns validate.Errors.
//
// SensorConfig reads a sensor's whole configuration with one range read, and
// a ConfigHub follows every sensor's with one watch per node, applying each
// watched change to a follower's snapshot, so a sensor always receives full
// configurations tagged with the revision they hold at; the same watch keeps
// the records of approved sensors that every upload checks.
//
// Lists of configuration read the whole range they cover in one request
// (consistent at one revision). That suits thousands of sensors; far more
// would want paging. Alerts and message records, which grow with the mail,
// are listed a page at a time (ListAlerts, ListMessagesPage), and the scanner
// reads rules from a watch-backed RuleCache rather than from etcd.
package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// AnyVersion as the expected version of a write skips the version check.
const AnyVersion int64 = -1

// Store reads and writes the configuration model in etcd. It is safe for
// concurrent use and holds nothing but the client.
type Store struct {
	cli *clientv3.Client
}

// New returns a Store over cli. The caller owns cli and closes it after the
// last call (and after every watch has ended).
func New(cli *clientv3.Client) *Store {
	return &Store{cli: cli}
}

var marshalOpts = proto.MarshalOptions{Deterministic: true}

func encode(m proto.Message) ([]byte, error) {
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return b, nil
}

func decode(kv *mvccpb.KeyValue, m proto.Message) error {
	if err := proto.Unmarshal(kv.Value, m); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return nil
}

// etcdErr wraps an error of an etcd call, turning compaction into
// ErrCompacted and a lost quorum into ErrUnavailable.
func etcdErr(op, key string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("etcd %s %s: %w: %w", op, key, ErrCompacted, err)
	case unavailable(err):
		return fmt.Errorf("etcd %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("etcd %s %s: %w", op, key, err)
}

// unavailable reports whether err says that etcd cannot serve for want of a
// quorum or a leader, rather than that the request was wrong.
func unavailable(err error) bool {
	for _, e := range []error{
		rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrNotCapable, rpctypes.ErrStopped, rpctypes.ErrUnhealthy,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return status.Code(err) == codes.Unavailable
}

// get reads key into m and returns its version, or ErrNotFound.
func (s *Store) get(ctx context.Context, key string, m proto.Message) (int64, error) {
	v, _, err := s.getAt(ctx, key, m)
	return v, err
}

// getAt is get that also returns the revision etcd read at.
func (s *Store) getAt(ctx context.Context, key string, m proto.Message) (version, rev int64, err error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, 0, etcdErr("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, ErrNotFound
	}
	if err := decode(resp.Kvs[0], m); err != nil {
		return 0, 0, err
	}
	return resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// list decodes every key under prefix accepted by keep, in key order.
func list[T proto.Message](ctx context.Context, s *Store, prefix string, keep func(key string) bool, newT func() T) ([]T, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	var out []T
	for _, kv := range resp.Kvs {
		if keep != nil && !keep(string(kv.Key)) {
			continue
		}
		m := newT()
		if err := decode(kv, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// write is one compare-and-swap write of one key (see put).
type write struct {
	// what names the object in errors ("sensor \"s1\" smtp").
	what  string
	key   string
	value []byte
	// expect is the version the caller read, or AnyVersion.
	expect int64
	// conds must all hold for anything to happen (the tenant exists, ...).
	conds []clientv3.Cmp
	// onFail are reads made when a condition fails; failErr turns their
	// responses into the error to return.
	onFail  []clientv3.Op
	failErr func([]*etcdserverpb.ResponseOp) error
	// also are further writes made together with key, only when key changes.
	also []clientv3.Op
}

// put runs w as one transaction:
//
//	if conds:
//	    if value(key) == new:        read key           (unchanged: no revision)
//	    elif modrev(key) == expect:  put key, also...   (written)
//	    else:                        read key           (ErrConflict)
//	else: onFail...                                     (failErr)
//
// and returns the version of key afterwards.
func (s *Store) put(ctx context.Context, w write) (int64, error) {
	change := append([]clientv3.Op{clientv3.OpPut(w.key, string(w.value))}, w.also...)
	var check []clientv3.Cmp
	if w.expect != AnyVersion {
		check = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(w.key), "=", w.expect)}
	}
	unchanged := []clientv3.Cmp{clientv3.Compare(clientv3.Value(w.key), "=", string(w.value))}
	resp, err := s.cli.Txn(ctx).If(w.conds...).Then(
		clientv3.OpTxn(unchanged,
			[]clientv3.Op{clientv3.OpGet(w.key, clientv3.WithKeysOnly())},
			[]clientv3.Op{clientv3.OpTxn(check, change, []clientv3.Op{clientv3.OpGet(w.key, clientv3.WithKeysOnly())})}),
	).Else(w.onFail...).Commit()
	if err != nil {
		return 0, etcdErr("txn", w.key, err)
	}
	if !resp.Succeeded {
		return 0, w.failErr(resp.Responses)
	}
	same := resp.Responses[0].GetResponseTxn()
	if same.Succeeded {
		return modRevision(same.Responses[0]), nil
	}
	changed := same.Responses[0].GetResponseTxn()
	if !changed.Succeeded {
		return 0, fmt.Errorf("%s: at version %d, not %d: %w", w.what, modRevision(changed.Responses[0]), w.expect, ErrConflict)
	}
	return resp.Header.Revision, nil
}

// modRevision is the ModRevision of the key a range response holds, or 0.
func modRevision(r *etcdserverpb.ResponseOp) int64 {
	if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
		return kvs[0].ModRevision
	}
	return 0
}

// found reports whether a range response holds a key.
func found(r *etcdserverpb.ResponseOp) bool {
	return len(r.GetResponseRange().GetKvs()) > 0
}

// exists and absent are transaction conditions on a key.
func exists(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
}

func absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

func unmodifiedSince(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// probe reads a key's existence (not its value) when a condition fails.
func probe(key string) clientv3.Op {
	return clientv3.OpGet(key, clientv3.WithKeysOnly())
}

// errRetry is what failErr returns when a checked object changed between the
// read and the write, and the method should read it again.
var errRetry = errors.New("changed concurrently; retry")

// retry runs f again while it returns errRetry.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !errors.Is(err, errRetry) {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
}

// Revision returns the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, clusterCAKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdErr("get", clusterCAKey, err)
	}
	return resp.Header.Revision, nil
}
