package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A tenant's SIEM export, at tenants/<tenant>/export, and its verdict
// policy, at tenants/<tenant>/policy: one value per tenant each. Like an
// integration, a value never written is the zero message at version 0
// (export disabled, the policy's defaults); the stored value has version 0
// and reads set Version from the key.

// GetExport returns a tenant's syslog export with its Version (0 and a
// disabled export when none was ever written). A tenant that does not exist
// in scope is ErrNotFound.
func (s *Store) GetExport(ctx context.Context, scope Scope, tenant string) (*ospreyv1.SyslogExport, error) {
	e := new(ospreyv1.SyslogExport)
	v, err := s.getTenantValue(ctx, scope, tenant, exportKey(tenant), e)
	e.Version = v
	return e, err
}

// PutExport replaces a tenant's syslog export if its version is still
// expect (0: never written; AnyVersion: whatever it is), and returns it as
// stored with its new Version. An empty tenant means the scope's own; a
// tenant scope naming another is ErrForbidden; the tenant must exist
// (ErrNotFound).
func (s *Store) PutExport(ctx context.Context, scope Scope, tenant string, e *ospreyv1.SyslogExport, expect int64) (*ospreyv1.SyslogExport, error) {
	e = proto.CloneOf(e)
	e.Version = 0
	v, err := putTenantValue(ctx, s, scope, tenant, "export", exportKey, e, validateExport, expect)
	if err != nil {
		return nil, err
	}
	e.Version = v
	return e, nil
}

// GetPolicy returns a tenant's verdict policy as stored, with its Version
// (0 and an empty policy, which means every default, when none was ever
// written). A tenant that does not exist in scope is ErrNotFound.
func (s *Store) GetPolicy(ctx context.Context, scope Scope, tenant string) (*ospreyv1.VerdictPolicy, error) {
	p := new(ospreyv1.VerdictPolicy)
	v, err := s.getTenantValue(ctx, scope, tenant, policyKey(tenant), p)
	p.Version = v
	return p, err
}

// PutPolicy replaces a tenant's verdict policy if its version is still
// expect, as PutExport does.
func (s *Store) PutPolicy(ctx context.Context, scope Scope, tenant string, p *ospreyv1.VerdictPolicy, expect int64) (*ospreyv1.VerdictPolicy, error) {
	p = proto.CloneOf(p)
	p.Version = 0
	v, err := putTenantValue(ctx, s, scope, tenant, "policy", policyKey, p, validatePolicy, expect)
	if err != nil {
		return nil, err
	}
	p.Version = v
	return p, nil
}

// getTenantValue reads the value at key of a tenant into m and returns its
// version (0 when never written).
func (s *Store) getTenantValue(ctx context.Context, scope Scope, tenant, key string, m proto.Message) (int64, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return 0, err
	}
	tk := tenantKey(tenant)
	resp, err := s.cli.Txn(ctx).Then(probe(tk), clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, etcdErr("txn", key, err)
	}
	if !found(resp.Responses[0]) {
		return 0, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, nil
	}
	if err := decode(kvs[0], m); err != nil {
		return 0, err
	}
	return kvs[0].ModRevision, nil
}

// putTenantValue validates m and stores it at the key of a tenant, if its
// version is still expect, and returns the new version.
func putTenantValue[M proto.Message](ctx context.Context, s *Store, scope Scope, tenant, what string, key func(string) string,
	m M, validate func(M) error, expect int64) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	tenant, err := scope.Claim(tenant)
	if err != nil {
		return 0, err
	}
	if err := CheckID("tenant", tenant); err != nil {
		return 0, err
	}
	if err := validate(m); err != nil {
		return 0, err
	}
	b, err := encode(m)
	if err != nil {
		return 0, err
	}
	return s.put(ctx, write{
		what: fmt.Sprintf("tenant %q %s", tenant, what), key: key(tenant), value: b, expect: expect,
		conds: []clientv3.Cmp{exists(tenantKey(tenant))},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
		},
	})
}
