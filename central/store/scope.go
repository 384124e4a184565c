package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Scope is the set of tenants a caller may see and change. Every Store method
// takes one, and the store enforces it: a tenant-scoped caller can neither read
// nor write another tenant's keys, whatever ids it passes.
//
// The zero Scope, and a scope naming an invalid id, allow nothing: every
// method refuses them with ErrForbidden.
type Scope struct {
	tenants []string // sorted, each once
	all     bool
}

// AllTenants is the scope of a user of every tenant, and of the node's own
// machinery (configuration push, enrollment, authentication).
func AllTenants() Scope { return Scope{all: true} }

// TenantScope is the scope of a caller confined to one tenant.
func TenantScope(tenant string) Scope { return Scope{tenants: []string{tenant}} }

// TenantsScope is the scope of a caller confined to the tenants named; with
// none it allows nothing.
func TenantsScope(tenants ...string) Scope {
	ts := slices.Compact(slices.Sorted(slices.Values(tenants)))
	if len(ts) == 0 {
		ts = []string{""} // the zero Scope's refusal, whatever else is added
	}
	return Scope{tenants: ts}
}

// IsAll reports whether s is the all-tenants scope.
func (s Scope) IsAll() bool { return s.all }

// Tenant returns the tenant of a scope of exactly one tenant, and "" for
// AllTenants and for a scope of several.
func (s Scope) Tenant() string {
	if len(s.tenants) == 1 {
		return s.tenants[0]
	}
	return ""
}

// Tenants returns the tenants of a tenant scope, sorted, and nil for
// AllTenants.
func (s Scope) Tenants() []string {
	if s.all {
		return nil
	}
	return slices.Clone(s.tenants)
}

// String returns "all tenants", "tenant <id>" or "tenants <id>, <id>".
func (s Scope) String() string {
	switch {
	case s.all:
		return "all tenants"
	case len(s.tenants) == 1:
		return fmt.Sprintf("tenant %q", s.tenants[0])
	}
	return fmt.Sprintf("tenants %q", strings.Join(s.tenants, ", "))
}

// Check refuses the zero Scope and a tenant scope naming an invalid id.
func (s Scope) Check() error {
	if s.all {
		return nil
	}
	if len(s.tenants) == 0 || !all(s.tenants, validID) {
		return fmt.Errorf("scope %s: %w", s, ErrForbidden)
	}
	return nil
}

// Allows reports whether objects of tenant are visible in s. Objects with no
// tenant (users of every tenant, their API tokens) are visible only to
// AllTenants.
func (s Scope) Allows(tenant string) bool {
	if s.all {
		return true
	}
	_, ok := slices.BinarySearch(s.tenants, tenant)
	return ok && tenant != ""
}

// Covers reports whether every one of tenants is in s (and, for allTenants,
// whether s is AllTenants): whether s may see a user who sees those.
func (s Scope) Covers(allTenants bool, tenants []string) bool {
	if s.all {
		return true
	}
	return !allTenants && len(tenants) > 0 && all(tenants, s.Allows)
}

// RequireAll refuses every scope but AllTenants.
func (s Scope) RequireAll(what string) error {
	if err := s.Check(); err != nil {
		return err
	}
	if !s.all {
		return fmt.Errorf("%s needs the all-tenants scope: %w", what, ErrForbidden)
	}
	return nil
}

// Claim resolves the tenant a write names: an empty tenant in a scope of one
// tenant means that tenant, and in a scope of several is a field error (which
// one?); naming a tenant outside the scope is ErrForbidden.
func (s Scope) Claim(tenant string) (string, error) {
	switch {
	case s.all:
		return tenant, nil
	case tenant == "" && s.Tenant() != "":
		return s.Tenant(), nil
	case tenant == "":
		return "", validate.Errors{{Field: "tenant", Message: "required: one of " + strings.Join(s.tenants, ", ")}}
	case !s.Allows(tenant):
		return "", fmt.Errorf("tenant %q outside scope %s: %w", tenant, s, ErrForbidden)
	}
	return tenant, nil
}

// allowsUser reports whether u is visible in s: a user of every tenant only to
// AllTenants, any other only to a scope that covers all its tenants (so that
// a user never shows another tenant's name to whoever may see one of its
// tenants). A record of before the product's roles counts its one tenant.
func (s Scope) allowsUser(u *ospreyv1.User) bool {
	tenants := u.GetTenants()
	if len(tenants) == 0 && !u.GetAllTenants() && u.GetTenant() != "" {
		tenants = []string{u.GetTenant()}
	}
	return s.Covers(u.GetAllTenants() || len(tenants) == 0, tenants)
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}
