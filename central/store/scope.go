package store

import "fmt"

// Scope is the set of tenants a caller may see and change. Every Store method
// takes one, and the store enforces it: a tenant-scoped caller can neither read
// nor write another tenant's keys, whatever ids it passes.
//
// The zero Scope, and a TenantScope of an invalid id, allow nothing: every
// method refuses them with ErrForbidden.
type Scope struct {
	tenant string
	all    bool
}

// AllTenants is the scope of an administrator across tenants, and of the
// node's own machinery (configuration push, enrollment, authentication).
func AllTenants() Scope { return Scope{all: true} }

// TenantScope is the scope of a caller confined to one tenant.
func TenantScope(tenant string) Scope { return Scope{tenant: tenant} }

// IsAll reports whether s is the all-tenants scope.
func (s Scope) IsAll() bool { return s.all }

// Tenant returns the tenant of a tenant scope, and "" for AllTenants.
func (s Scope) Tenant() string { return s.tenant }

// String returns "all tenants" or "tenant <id>".
func (s Scope) String() string {
	if s.all {
		return "all tenants"
	}
	return fmt.Sprintf("tenant %q", s.tenant)
}

// Check refuses the zero Scope and a tenant scope of an invalid id.
func (s Scope) Check() error {
	if s.all || validID(s.tenant) {
		return nil
	}
	return fmt.Errorf("scope %s: %w", s, ErrForbidden)
}

// Allows reports whether objects of tenant are visible in s. Objects with no
// tenant (admin users, their API tokens) are visible only to AllTenants.
func (s Scope) Allows(tenant string) bool {
	return s.all || (s.tenant != "" && tenant == s.tenant)
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

// Claim resolves the tenant a write names: an empty tenant in a tenant scope
// means the scope's own tenant; naming another tenant is ErrForbidden.
func (s Scope) Claim(tenant string) (string, error) {
	if s.all {
		return tenant, nil
	}
	if tenant == "" {
		return s.tenant, nil
	}
	if tenant != s.tenant {
		return "", fmt.Errorf("tenant %q outside scope %s: %w", tenant, s, ErrForbidden)
	}
	return tenant, nil
}
