package store

import (
	"context"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ListUsers returns the users in scope, ordered by name: all of them for
// AllTenants, otherwise those whose tenants are all in the scope.
func (s *Store) ListUsers(ctx context.Context, scope Scope) ([]*ospreyv1.User, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	all, err := list(ctx, s, usersPrefix, nil, func() *ospreyv1.User { return new(ospreyv1.User) })
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, u := range all {
		if scope.allowsUser(u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// GetUser returns a user and its version. Sign-in looks users up with
// AllTenants; a tenant scope finds only users whose tenants are all in it.
func (s *Store) GetUser(ctx context.Context, scope Scope, name string) (*ospreyv1.User, int64, error) {
	if err := scope.Check(); err != nil {
		return nil, 0, err
	}
	if err := checkUserName(name); err != nil {
		return nil, 0, err
	}
	u := new(ospreyv1.User)
	v, err := s.get(ctx, userKey(name), u)
	if err == nil && !scope.allowsUser(u) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("user %q: %w", name, err)
	}
	return u, v, nil
}

// scopeUser fills in and checks what a scope may write of a user: no tenants
// means the scope's one tenant; a tenant scope writes users of its own
// tenants only, never of all tenants (ErrForbidden). The tenants are stored
// sorted. No scope writes a user's origin: only ApplyPrimaryUpdate does.
func scopeUser(scope Scope, u *ospreyv1.User) error {
	if u.GetOrigin() != "" {
		return fmt.Errorf("user %q: origin is set by the link from the PCN only: %w", u.GetName(), ErrForbidden)
	}
	if u.GetAllTenants() {
		if !scope.all {
			return fmt.Errorf("user %q of all tenants: needs the all-tenants scope: %w", u.GetName(), ErrForbidden)
		}
		return nil
	}
	if len(u.GetTenants()) == 0 && scope.Tenant() != "" {
		u.Tenants = []string{scope.Tenant()}
	}
	for _, t := range u.GetTenants() {
		if validID(t) && !scope.Allows(t) {
			return fmt.Errorf("user %q: tenant %q outside scope %s: %w", u.GetName(), t, scope, ErrForbidden)
		}
	}
	return nil
}

// userTenantConds are the conditions that a user's tenants exist, with the
// probes that tell which one does not when they fail.
func userTenantConds(u *ospreyv1.User) ([]clientv3.Cmp, []clientv3.Op) {
	var conds []clientv3.Cmp
	var probes []clientv3.Op
	for _, t := range u.GetTenants() {
		conds, probes = append(conds, exists(tenantKey(t))), append(probes, probe(tenantKey(t)))
	}
	return conds, probes
}

// missingTenant names the first of u's tenants the probes found absent, as a
// field error (a form names them) wrapping ErrNotFound.
func missingTenant(u *ospreyv1.User, probes []*etcdserverpb.ResponseOp) error {
	for i, r := range probes {
		if !found(r) {
			return fmt.Errorf("tenant %q: %w", u.GetTenants()[i], ErrNotFound)
		}
	}
	return fmt.Errorf("user %q: %w", u.GetName(), ErrConflict)
}

// CreateUser stores a new user and returns its version (ErrExists when the
// name is taken). A tenant scope creates users of its own tenants only, and
// never of all tenants (ErrForbidden). A user's tenants must exist.
func (s *Store) CreateUser(ctx context.Context, scope Scope, u *ospreyv1.User) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	u = proto.Clone(u).(*ospreyv1.User)
	if err := scopeUser(scope, u); err != nil {
		return 0, err
	}
	name := u.GetName()
	if err := checkUserName(name); err != nil {
		return 0, err
	}
	if err := validateUser(u); err != nil {
		return 0, err
	}
	slices.Sort(u.Tenants) // stored sorted, once validated in the order written
	b, err := encode(u)
	if err != nil {
		return 0, err
	}
	key := userKey(name)
	tconds, tprobes := userTenantConds(u)
	return s.put(ctx, write{
		what: fmt.Sprintf("user %q", name), key: key, value: b, expect: AnyVersion,
		conds: append([]clientv3.Cmp{absent(key)}, tconds...), onFail: append([]clientv3.Op{probe(key)}, tprobes...),
		failErr: func(r []*etcdserverpb.ResponseOp) error {
			if found(r[0]) {
				return fmt.Errorf("user %q: %w", name, ErrExists)
			}
			return missingTenant(u, r[1:])
		},
	})
}

// UpdateUser replaces a user if its version is still expect, and returns the
// new version. A tenant scope finds only users of its tenant (ErrNotFound
// otherwise) and writes them under the same rules as CreateUser.
func (s *Store) UpdateUser(ctx context.Context, scope Scope, u *ospreyv1.User, expect int64) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	u = proto.Clone(u).(*ospreyv1.User)
	if err := scopeUser(scope, u); err != nil {
		return 0, err
	}
	name := u.GetName()
	if err := checkUserName(name); err != nil {
		return 0, err
	}
	if err := validateUser(u); err != nil {
		return 0, err
	}
	slices.Sort(u.Tenants) // stored sorted, once validated in the order written
	b, err := encode(u)
	if err != nil {
		return 0, err
	}
	key := userKey(name)
	var version int64
	err = retry(ctx, func() error {
		// The scope check is on the stored user; the write then compares the
		// revision that was checked, so the user cannot have moved meanwhile.
		stored, read, err := s.GetUser(ctx, scope, name)
		if err != nil {
			return err
		}
		if err := writableUser(stored); err != nil {
			return err
		}
		tconds, tprobes := userTenantConds(u)
		version, err = s.put(ctx, write{
			what: fmt.Sprintf("user %q", name), key: key, value: b, expect: expect,
			conds:  append([]clientv3.Cmp{unmodifiedSince(key, read)}, tconds...),
			onFail: append([]clientv3.Op{probe(key)}, tprobes...),
			failErr: func(r []*etcdserverpb.ResponseOp) error {
				if modRevision(r[0]) != read {
					return errRetry
				}
				return missingTenant(u, r[1:])
			},
		})
		return err
	})
	return version, err
}

// writableUser refuses a change to a user the PCN manages (on an SCN).
func writableUser(u *ospreyv1.User) error {
	if o := u.GetOrigin(); o != "" {
		return fmt.Errorf("user %q is managed by the PCN (origin %q): change it there: %w", u.GetName(), o, ErrForbidden)
	}
	return nil
}

// DeleteUser removes a user if its version is still expect (or with
// AnyVersion, whatever it is), and returns the user it removed. A tenant scope finds only users of its
// tenant (ErrNotFound otherwise) and never deletes an admin (ErrForbidden);
// a user the PCN manages is ErrForbidden. The user's API tokens stay until
// they are deleted, but authenticate no one (sign-in finds no user).
func (s *Store) DeleteUser(ctx context.Context, scope Scope, name string, expect int64) (*ospreyv1.User, error) {
	key := userKey(name)
	var out *ospreyv1.User
	err := retry(ctx, func() error {
		stored, read, err := s.GetUser(ctx, scope, name)
		if err != nil {
			return err
		}
		if err := writableUser(stored); err != nil {
			return err
		}
		if !scope.all && stored.GetRole() == ospreyv1.Role_ROLE_ADMIN {
			return fmt.Errorf("user %q: role admin needs the all-tenants scope: %w", name, ErrForbidden)
		}
		if expect != AnyVersion && read != expect {
			return fmt.Errorf("user %q: at version %d, not %d: %w", name, read, expect, ErrConflict)
		}
		resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, read)).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return etcdErr("txn", key, err)
		}
		if !resp.Succeeded {
			return errRetry
		}
		out = stored
		return nil
	})
	return out, err
}
