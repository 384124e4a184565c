package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A tenant's SIEM export, at tenants/<tenant>/export. Like an integration,
// an export never written is the zero (disabled) message at version 0; the
// stored value has version 0 and reads set Version from the key.

// GetExport returns a tenant's syslog export with its Version (0 and a
// disabled export when none was ever written). A tenant that does not exist
// in scope is ErrNotFound.
func (s *Store) GetExport(ctx context.Context, scope Scope, tenant string) (*ospreyv1.SyslogExport, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return nil, err
	}
	tk, key := tenantKey(tenant), exportKey(tenant)
	resp, err := s.cli.Txn(ctx).Then(probe(tk), clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, etcdErr("txn", key, err)
	}
	if !found(resp.Responses[0]) {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	e := new(ospreyv1.SyslogExport)
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if err := decode(kvs[0], e); err != nil {
			return nil, err
		}
		e.Version = kvs[0].ModRevision
	}
	return e, nil
}

// PutExport replaces a tenant's syslog export if its version is still
// expect (0: never written; AnyVersion: whatever it is), and returns it as
// stored with its new Version. An empty tenant means the scope's own; a
// tenant scope naming another is ErrForbidden; the tenant must exist
// (ErrNotFound).
func (s *Store) PutExport(ctx context.Context, scope Scope, tenant string, e *ospreyv1.SyslogExport, expect int64) (*ospreyv1.SyslogExport, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	tenant, err := scope.Claim(tenant)
	if err != nil {
		return nil, err
	}
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	e = proto.Clone(e).(*ospreyv1.SyslogExport)
	e.Version = 0
	if err := validateExport(e); err != nil {
		return nil, err
	}
	b, err := encode(e)
	if err != nil {
		return nil, err
	}
	tk := tenantKey(tenant)
	v, err := s.put(ctx, write{
		what: fmt.Sprintf("tenant %q export", tenant), key: exportKey(tenant), value: b, expect: expect,
		conds: []clientv3.Cmp{exists(tk)},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
		},
	})
	if err != nil {
		return nil, err
	}
	e.Version = v
	return e, nil
}
