package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ListTenants returns the tenants in scope, ordered by id: every tenant for
// AllTenants, the scope's own tenants (those that exist) otherwise.
func (s *Store) ListTenants(ctx context.Context, scope Scope) ([]*ospreyv1.Tenant, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if !scope.all {
		var out []*ospreyv1.Tenant
		for _, id := range scope.tenants {
			t, _, err := s.GetTenant(ctx, scope, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	}
	return list(ctx, s, tenantsPrefix, func(key string) bool {
		_, ok := parseTenantKey(key)
		return ok
	}, func() *ospreyv1.Tenant { return new(ospreyv1.Tenant) })
}

// GetTenant returns a tenant and its version.
func (s *Store) GetTenant(ctx context.Context, scope Scope, id string) (*ospreyv1.Tenant, int64, error) {
	if err := scope.Check(); err != nil {
		return nil, 0, err
	}
	if err := CheckID("tenant", id); err != nil {
		return nil, 0, err
	}
	if !scope.Allows(id) {
		return nil, 0, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	t := new(ospreyv1.Tenant)
	v, err := s.get(ctx, tenantKey(id), t)
	if err != nil {
		return nil, 0, fmt.Errorf("tenant %q: %w", id, err)
	}
	return t, v, nil
}

// CreateTenant stores a new tenant and returns its version. It needs the
// all-tenants scope (ErrForbidden otherwise) and fails with ErrExists when the
// id is taken.
func (s *Store) CreateTenant(ctx context.Context, scope Scope, t *ospreyv1.Tenant) (int64, error) {
	if err := scope.RequireAll("create tenant"); err != nil {
		return 0, err
	}
	if err := CheckID("tenant", t.GetId()); err != nil {
		return 0, err
	}
	if err := validateTenant(t); err != nil {
		return 0, err
	}
	b, err := encode(t)
	if err != nil {
		return 0, err
	}
	key := tenantKey(t.GetId())
	return s.put(ctx, write{
		what: fmt.Sprintf("tenant %q", t.GetId()), key: key, value: b, expect: AnyVersion,
		conds: []clientv3.Cmp{absent(key)},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("tenant %q: %w", t.GetId(), ErrExists)
		},
	})
}

// UpdateTenant replaces a tenant (name, SCN) if its version is still expect,
// and returns the new version. It needs the all-tenants scope.
func (s *Store) UpdateTenant(ctx context.Context, scope Scope, t *ospreyv1.Tenant, expect int64) (int64, error) {
	if err := scope.RequireAll("update tenant"); err != nil {
		return 0, err
	}
	if err := CheckID("tenant", t.GetId()); err != nil {
		return 0, err
	}
	if err := validateTenant(t); err != nil {
		return 0, err
	}
	b, err := encode(t)
	if err != nil {
		return 0, err
	}
	key := tenantKey(t.GetId())
	return s.put(ctx, write{
		what: fmt.Sprintf("tenant %q", t.GetId()), key: key, value: b, expect: expect,
		conds: []clientv3.Cmp{exists(key)},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("tenant %q: %w", t.GetId(), ErrNotFound)
		},
	})
}
