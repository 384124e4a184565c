package store

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ListTokens returns the tokens in scope, ordered by id: all of them for
// AllTenants, the tokens of the scope's tenant otherwise.
func (s *Store) ListTokens(ctx context.Context, scope Scope) ([]*ospreyv1.Token, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	all, err := list(ctx, s, tokensPrefix, nil, func() *ospreyv1.Token { return new(ospreyv1.Token) })
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, t := range all {
		if scope.Allows(t.GetTenant()) {
			out = append(out, t)
		}
	}
	return out, nil
}

// GetToken returns a token and its version. Authentication looks tokens up
// with AllTenants; a tenant scope finds only tokens of its tenant.
func (s *Store) GetToken(ctx context.Context, scope Scope, id string) (*ospreyv1.Token, int64, error) {
	if err := scope.Check(); err != nil {
		return nil, 0, err
	}
	if err := CheckID("token", id); err != nil {
		return nil, 0, err
	}
	t := new(ospreyv1.Token)
	v, err := s.get(ctx, tokenKey(id), t)
	if err == nil && !scope.Allows(t.GetTenant()) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("token %q: %w", id, err)
	}
	return t, v, nil
}

// CreateToken stores a new token and returns its version (ErrExists when the
// id is taken). A join token's empty tenant means the scope's own; a tenant
// scope naming another tenant gets ErrForbidden. The tenant, if any, must
// exist. An API token's user must exist in scope (ErrNotFound); the token
// belongs to the user's tenant when it has exactly one, and to no tenant
// otherwise (naming another is a validation error).
func (s *Store) CreateToken(ctx context.Context, scope Scope, t *ospreyv1.Token) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	t = proto.Clone(t).(*ospreyv1.Token)
	api := t.GetKind() == ospreyv1.TokenKind_TOKEN_KIND_API
	if !api {
		tenant, err := scope.Claim(t.GetTenant())
		if err != nil {
			return 0, err
		}
		t.Tenant = tenant
	}
	if tenant := t.GetTenant(); tenant != "" {
		if err := CheckID("tenant", tenant); err != nil {
			return 0, err
		}
	}
	id := t.GetId()
	if err := CheckID("token", id); err != nil {
		return 0, err
	}
	key := tokenKey(id)
	var version int64
	err := retry(ctx, func() error {
		var userRead int64
		var userConds []clientv3.Cmp
		var userProbes []clientv3.Op
		if api {
			// An API token belongs to its user's one tenant, or to none (a
			// user of several or of all), whatever the request says.
			u, read, err := s.GetUser(ctx, scope, t.GetUser())
			if err != nil {
				return err
			}
			if tenant := tokenTenant(u); t.GetTenant() == "" || t.GetTenant() == tenant {
				t.Tenant = tenant
			} else {
				return fieldError("tenant", fmt.Sprintf("must be the tenant of user %q (%q)", u.GetName(), tenant))
			}
			userRead = read
			userConds = []clientv3.Cmp{unmodifiedSince(userKey(u.GetName()), read)}
			userProbes = []clientv3.Op{probe(userKey(u.GetName()))}
		}
		if err := validateToken(t); err != nil {
			return err
		}
		b, err := encode(t)
		if err != nil {
			return err
		}
		tenant := t.GetTenant()
		conds, onFail := []clientv3.Cmp{absent(key)}, []clientv3.Op{probe(key)}
		if tenant != "" {
			conds = append(conds, exists(tenantKey(tenant)))
			onFail = append(onFail, probe(tenantKey(tenant)))
		}
		conds, onFail = append(conds, userConds...), append(onFail, userProbes...)
		version, err = s.put(ctx, write{
			what: fmt.Sprintf("token %q", id), key: key, value: b, expect: AnyVersion,
			conds: conds, onFail: onFail,
			failErr: func(r []*etcdserverpb.ResponseOp) error {
				switch {
				case found(r[0]):
					return fmt.Errorf("token %q: %w", id, ErrExists)
				case tenant != "" && !found(r[1]):
					return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
				case userRead != 0 && modRevision(r[len(r)-1]) != userRead:
					return errRetry
				}
				return fmt.Errorf("token %q: unexpected precondition failure", id)
			},
		})
		return err
	})
	return version, err
}

// DeleteToken removes a token in scope (ErrNotFound otherwise).
func (s *Store) DeleteToken(ctx context.Context, scope Scope, id string) error {
	key := tokenKey(id)
	return retry(ctx, func() error {
		_, read, err := s.GetToken(ctx, scope, id)
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, read)).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return etcdErr("txn", key, err)
		}
		if !resp.Succeeded {
			return errRetry
		}
		return nil
	})
}

// ConsumeJoinToken uses one enrollment of a join token in scope as of now, and
// returns the token as stored afterwards. It refuses an expired token with
// ErrTokenExpired, one with no uses left with ErrTokenUsedUp, and anything
// else than a join token in scope with ErrNotFound. Concurrent calls never
// spend one use twice: the decrement is a compare-and-swap, retried on
// conflict. A token with max_uses 0 has unlimited uses and is not written.
//
// The caller checks the token's secret before consuming it; the decrement
// itself is not revalidated (it only lowers uses_left of a validated token).
func (s *Store) ConsumeJoinToken(ctx context.Context, scope Scope, id string, now time.Time) (*ospreyv1.Token, error) {
	key := tokenKey(id)
	var out *ospreyv1.Token
	err := retry(ctx, func() error {
		t, read, err := s.GetToken(ctx, scope, id)
		if err != nil {
			return err
		}
		if t.GetKind() != ospreyv1.TokenKind_TOKEN_KIND_JOIN {
			return fmt.Errorf("join token %q: %w", id, ErrNotFound)
		}
		if exp := t.GetExpiresAt(); exp != nil && !now.Before(exp.AsTime()) {
			return fmt.Errorf("join token %q expired at %s: %w", id, exp.AsTime().Format(time.RFC3339), ErrTokenExpired)
		}
		if t.GetMaxUses() == 0 {
			out = t
			return nil
		}
		if t.GetUsesLeft() == 0 {
			return fmt.Errorf("join token %q: %w", id, ErrTokenUsedUp)
		}
		t.UsesLeft--
		b, err := encode(t)
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, read)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return etcdErr("txn", key, err)
		}
		if !resp.Succeeded {
			return errRetry
		}
		out = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tokenTenant is the tenant an API token of u belongs to: u's one tenant, or
// none for a user of several tenants or of all (its tokens are then seen
// only with the all-tenants scope).
func tokenTenant(u *ospreyv1.User) string {
	switch {
	case u.GetAllTenants():
		return ""
	case len(u.GetTenants()) == 1:
		return u.GetTenants()[0]
	case len(u.GetTenants()) == 0:
		return u.GetTenant() // a record of before the product's roles
	}
	return ""
}
