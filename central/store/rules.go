package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Scan rules (indicators of compromise) of a tenant, at tenants/<tenant>/rules/<id>.
// A rule's version is the ModRevision of its key; the stored value has
// version 0, and every read sets Version from the key. Values are stored in
// the canonical form of validate.CanonicalRuleValue.

// ListRules returns a tenant's rules, enabled and disabled, ordered by id,
// each with its Version. Another tenant's rules are ErrNotFound.
func (s *Store) ListRules(ctx context.Context, scope Scope, tenant string) ([]*ospreyv1.Rule, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return nil, err
	}
	prefix := tenantRulesPrefix(tenant)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	out := make([]*ospreyv1.Rule, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, _, ok := parseRuleKey(string(kv.Key)); !ok {
			continue
		}
		r := new(ospreyv1.Rule)
		if err := decode(kv, r); err != nil {
			return nil, err
		}
		r.Version = kv.ModRevision
		out = append(out, r)
	}
	return out, nil
}

// GetRule returns a rule with its Version.
func (s *Store) GetRule(ctx context.Context, scope Scope, tenant, id string) (*ospreyv1.Rule, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return nil, err
	}
	if err := CheckID("rule", id); err != nil {
		return nil, err
	}
	r := new(ospreyv1.Rule)
	v, err := s.get(ctx, ruleKey(tenant, id), r)
	if err != nil {
		return nil, fmt.Errorf("rule %q of tenant %q: %w", id, tenant, err)
	}
	r.Version = v
	return r, nil
}

// tenantReadScope checks a read of tenant's rules.
func (s *Store) tenantReadScope(scope Scope, tenant string) error {
	if err := scope.Check(); err != nil {
		return err
	}
	if err := CheckID("tenant", tenant); err != nil {
		return err
	}
	if !scope.Allows(tenant) {
		return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	return nil
}

// CreateRule stores a new rule and returns it as stored: with its tenant
// (an empty tenant means the scope's own; naming another is ErrForbidden),
// its id (generated when empty; ErrExists when taken), its value in
// canonical form, created_at (now, when unset) and Version. The tenant must
// exist (ErrNotFound).
func (s *Store) CreateRule(ctx context.Context, scope Scope, r *ospreyv1.Rule) (*ospreyv1.Rule, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	r = proto.Clone(r).(*ospreyv1.Rule)
	tenant, err := scope.Claim(r.GetTenant())
	if err != nil {
		return nil, err
	}
	r.Tenant = tenant
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	if r.GetId() == "" {
		r.Id = newRuleID()
	}
	if err := CheckID("rule", r.GetId()); err != nil {
		return nil, err
	}
	if r.GetCreatedAt() == nil {
		r.CreatedAt = timestamppb.Now()
	}
	b, err := encodeRule(r)
	if err != nil {
		return nil, err
	}
	key, tk := ruleKey(tenant, r.GetId()), tenantKey(tenant)
	v, err := s.put(ctx, write{
		what: fmt.Sprintf("rule %q", r.GetId()), key: key, value: b, expect: AnyVersion,
		conds:  []clientv3.Cmp{exists(tk), absent(key)},
		onFail: []clientv3.Op{probe(tk)},
		failErr: func(resp []*etcdserverpb.ResponseOp) error {
			if !found(resp[0]) {
				return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
			}
			return fmt.Errorf("rule %q of tenant %q: %w", r.GetId(), tenant, ErrExists)
		},
	})
	if err != nil {
		return nil, err
	}
	r.Version = v
	return r, nil
}

// UpdateRule replaces a rule if its version is still expect (or with
// AnyVersion, whatever it is), keeping its created_at, and returns it as
// stored. A rule that does not exist in scope is ErrNotFound; a tenant
// scope naming another tenant is ErrForbidden.
func (s *Store) UpdateRule(ctx context.Context, scope Scope, r *ospreyv1.Rule, expect int64) (*ospreyv1.Rule, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	r = proto.Clone(r).(*ospreyv1.Rule)
	tenant, err := scope.Claim(r.GetTenant())
	if err != nil {
		return nil, err
	}
	r.Tenant = tenant
	id := r.GetId()
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	if err := CheckID("rule", id); err != nil {
		return nil, err
	}
	// Validate before the read, so a bad write is refused even for a rule
	// that changed meanwhile.
	if err := validateRule(r); err != nil {
		return nil, err
	}
	key := ruleKey(tenant, id)
	err = retry(ctx, func() error {
		stored, err := s.GetRule(ctx, scope, tenant, id)
		if err != nil {
			return err
		}
		if expect != AnyVersion && stored.GetVersion() != expect {
			return fmt.Errorf("rule %q: at version %d, not %d: %w", id, stored.GetVersion(), expect, ErrConflict)
		}
		r.CreatedAt = stored.GetCreatedAt()
		b, err := encodeRule(r)
		if err != nil {
			return err
		}
		v, err := s.put(ctx, write{
			what: fmt.Sprintf("rule %q", id), key: key, value: b, expect: stored.GetVersion(),
			conds: []clientv3.Cmp{exists(key)},
			failErr: func([]*etcdserverpb.ResponseOp) error {
				return fmt.Errorf("rule %q of tenant %q: %w", id, tenant, ErrNotFound)
			},
		})
		if errors.Is(err, ErrConflict) && expect == AnyVersion {
			return errRetry
		}
		r.Version = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteRule removes a rule if its version is still expect (or with
// AnyVersion, whatever it is), and returns the rule it removed. A rule that
// does not exist in scope is ErrNotFound.
func (s *Store) DeleteRule(ctx context.Context, scope Scope, tenant, id string, expect int64) (*ospreyv1.Rule, error) {
	var out *ospreyv1.Rule
	err := retry(ctx, func() error {
		stored, err := s.GetRule(ctx, scope, tenant, id)
		if err != nil {
			return err
		}
		if expect != AnyVersion && stored.GetVersion() != expect {
			return fmt.Errorf("rule %q: at version %d, not %d: %w", id, stored.GetVersion(), expect, ErrConflict)
		}
		key := ruleKey(tenant, id)
		resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, stored.GetVersion())).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return etcdErr("txn", key, err)
		}
		if !resp.Succeeded {
			return errRetry // changed or deleted meanwhile: read again
		}
		out = stored
		return nil
	})
	return out, err
}

// encodeRule validates r, puts its value in canonical form and encodes it
// without its version (output only: the key's ModRevision).
func encodeRule(r *ospreyv1.Rule) ([]byte, error) {
	if err := validateRule(r); err != nil {
		return nil, err
	}
	v, err := validate.CanonicalRuleValue(r.GetKind(), r.GetValue())
	if err != nil {
		return nil, err // validateRule has refused it already
	}
	r.Value, r.Version = v, 0
	return encode(r)
}

// newRuleID returns a random id of 16 hex digits.
func newRuleID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
