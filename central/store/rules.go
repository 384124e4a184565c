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

// Scan rules (indicators of compromise): a tenant's at
// tenants/<tenant>/rules/<id>, and the global ones, which apply to every
// tenant, at global-rules/<id>. A rule's version is the ModRevision of its
// key; the stored value has version 0, and every read sets Version from the
// key. Values are stored in the canonical form of validate.CanonicalRuleValue.
//
// Global rules are read by any scope (they apply to its tenant's messages)
// and written by AllTenants only. A global rule with an origin (one an SCN
// got from its PCN) is read-only: only ApplyPrimaryUpdate writes it.

// ruleLoc is where rules live: one tenant's, or the global ones.
type ruleLoc struct {
	tenant string
	global bool
}

func (l ruleLoc) key(id string) string {
	if l.global {
		return globalRuleKey(id)
	}
	return ruleKey(l.tenant, id)
}

func (l ruleLoc) prefix() string {
	if l.global {
		return globalRulesPrefix
	}
	return tenantRulesPrefix(l.tenant)
}

func (l ruleLoc) parse(key string) (string, string, bool) {
	if l.global {
		return parseGlobalRuleKey(key)
	}
	return parseRuleKey(key)
}

// name names a rule in errors.
func (l ruleLoc) name(id string) string {
	if l.global {
		return fmt.Sprintf("global rule %q", id)
	}
	return fmt.Sprintf("rule %q of tenant %q", id, l.tenant)
}

// ListRules returns a tenant's rules, enabled and disabled, ordered by id,
// each with its Version. Another tenant's rules are ErrNotFound.
func (s *Store) ListRules(ctx context.Context, scope Scope, tenant string) ([]*ospreyv1.Rule, error) {
	if err := s.tenantReadScope(scope, tenant); err != nil {
		return nil, err
	}
	return s.listRules(ctx, ruleLoc{tenant: tenant})
}

// ListGlobalRules returns the global rules, ordered by id, each with its
// Version. Every scope reads them.
func (s *Store) ListGlobalRules(ctx context.Context, scope Scope) ([]*ospreyv1.Rule, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	return s.listRules(ctx, ruleLoc{global: true})
}

func (s *Store) listRules(ctx context.Context, loc ruleLoc) ([]*ospreyv1.Rule, error) {
	prefix := loc.prefix()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	out := make([]*ospreyv1.Rule, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, _, ok := loc.parse(string(kv.Key)); !ok {
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
	return s.getRule(ctx, ruleLoc{tenant: tenant}, id)
}

// GetGlobalRule returns a global rule with its Version.
func (s *Store) GetGlobalRule(ctx context.Context, scope Scope, id string) (*ospreyv1.Rule, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	return s.getRule(ctx, ruleLoc{global: true}, id)
}

func (s *Store) getRule(ctx context.Context, loc ruleLoc, id string) (*ospreyv1.Rule, error) {
	if err := CheckID("rule", id); err != nil {
		return nil, err
	}
	r := new(ospreyv1.Rule)
	v, err := s.get(ctx, loc.key(id), r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.name(id), err)
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
	if r.GetGlobal() {
		return nil, validate.Errors{{Field: "global", Message: "a tenant's rule cannot be global: write it to /api/v1/rules"}}
	}
	tk := tenantKey(tenant)
	return s.createRule(ctx, ruleLoc{tenant: tenant}, r, []clientv3.Cmp{exists(tk)}, []clientv3.Op{probe(tk)},
		fmt.Errorf("tenant %q: %w", tenant, ErrNotFound))
}

// CreateGlobalRule stores a new global rule (AllTenants only) and returns
// it as CreateRule does.
func (s *Store) CreateGlobalRule(ctx context.Context, scope Scope, r *ospreyv1.Rule) (*ospreyv1.Rule, error) {
	r, err := globalWrite(scope, r)
	if err != nil {
		return nil, err
	}
	return s.createRule(ctx, ruleLoc{global: true}, r, nil, nil, nil)
}

// createRule stores r at loc if its id is free and conds hold; with conds
// failing (onFail's first response empty), the error is condErr.
func (s *Store) createRule(ctx context.Context, loc ruleLoc, r *ospreyv1.Rule, conds []clientv3.Cmp, onFail []clientv3.Op, condErr error) (*ospreyv1.Rule, error) {
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
	key := loc.key(r.GetId())
	v, err := s.put(ctx, write{
		what: loc.name(r.GetId()), key: key, value: b, expect: AnyVersion,
		conds:  append(conds, absent(key)),
		onFail: onFail,
		failErr: func(resp []*etcdserverpb.ResponseOp) error {
			if len(resp) > 0 && !found(resp[0]) {
				return condErr
			}
			return fmt.Errorf("%s: %w", loc.name(r.GetId()), ErrExists)
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
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	if r.GetGlobal() {
		return nil, validate.Errors{{Field: "global", Message: "a tenant's rule cannot be global: write it to /api/v1/rules"}}
	}
	return s.updateRule(ctx, ruleLoc{tenant: tenant}, r, expect, func() (*ospreyv1.Rule, error) {
		return s.GetRule(ctx, scope, tenant, r.GetId())
	})
}

// UpdateGlobalRule replaces a global rule (AllTenants only) as UpdateRule
// does. A rule the PCN manages is ErrForbidden.
func (s *Store) UpdateGlobalRule(ctx context.Context, scope Scope, r *ospreyv1.Rule, expect int64) (*ospreyv1.Rule, error) {
	r, err := globalWrite(scope, r)
	if err != nil {
		return nil, err
	}
	return s.updateRule(ctx, ruleLoc{global: true}, r, expect, func() (*ospreyv1.Rule, error) {
		return s.getWritableGlobalRule(ctx, r.GetId())
	})
}

// globalWrite checks a write of a global rule (AllTenants only, no
// origin) and returns a copy of r marked global.
func globalWrite(scope Scope, r *ospreyv1.Rule) (*ospreyv1.Rule, error) {
	if err := scope.RequireAll("a global rule"); err != nil {
		return nil, err
	}
	r = proto.Clone(r).(*ospreyv1.Rule)
	r.Global = true
	if r.GetOrigin() != "" {
		return nil, validate.Errors{{Field: "origin", Message: "is set by the link from the PCN; leave it out"}}
	}
	return r, nil
}

// getWritableGlobalRule reads a global rule that this node may change:
// one the PCN manages is ErrForbidden.
func (s *Store) getWritableGlobalRule(ctx context.Context, id string) (*ospreyv1.Rule, error) {
	stored, err := s.getRule(ctx, ruleLoc{global: true}, id)
	if err != nil {
		return nil, err
	}
	if stored.GetOrigin() != "" {
		return nil, fmt.Errorf("global rule %q is managed by the PCN (origin %q): change it there: %w", id, stored.GetOrigin(), ErrForbidden)
	}
	return stored, nil
}

// updateRule replaces the rule at loc that read returns.
func (s *Store) updateRule(ctx context.Context, loc ruleLoc, r *ospreyv1.Rule, expect int64, read func() (*ospreyv1.Rule, error)) (*ospreyv1.Rule, error) {
	id := r.GetId()
	if err := CheckID("rule", id); err != nil {
		return nil, err
	}
	// Validate before the read, so a bad write is refused even for a rule
	// that changed meanwhile.
	if err := validateRule(r); err != nil {
		return nil, err
	}
	key := loc.key(id)
	err := retry(ctx, func() error {
		stored, err := read()
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
			what: loc.name(id), key: key, value: b, expect: stored.GetVersion(),
			conds: []clientv3.Cmp{exists(key)},
			failErr: func([]*etcdserverpb.ResponseOp) error {
				return fmt.Errorf("%s: %w", loc.name(id), ErrNotFound)
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
	return s.deleteRule(ctx, ruleLoc{tenant: tenant}, id, expect, func() (*ospreyv1.Rule, error) {
		return s.GetRule(ctx, scope, tenant, id)
	})
}

// DeleteGlobalRule removes a global rule (AllTenants only) as DeleteRule
// does. A rule the PCN manages is ErrForbidden.
func (s *Store) DeleteGlobalRule(ctx context.Context, scope Scope, id string, expect int64) (*ospreyv1.Rule, error) {
	if err := scope.RequireAll("a global rule"); err != nil {
		return nil, err
	}
	return s.deleteRule(ctx, ruleLoc{global: true}, id, expect, func() (*ospreyv1.Rule, error) {
		return s.getWritableGlobalRule(ctx, id)
	})
}

func (s *Store) deleteRule(ctx context.Context, loc ruleLoc, id string, expect int64, read func() (*ospreyv1.Rule, error)) (*ospreyv1.Rule, error) {
	var out *ospreyv1.Rule
	err := retry(ctx, func() error {
		stored, err := read()
		if err != nil {
			return err
		}
		if expect != AnyVersion && stored.GetVersion() != expect {
			return fmt.Errorf("rule %q: at version %d, not %d: %w", id, stored.GetVersion(), expect, ErrConflict)
		}
		key := loc.key(id)
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
