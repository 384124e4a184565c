// Package auth authenticates callers of a Central Node's API and web UI, and says what
// they may do.
//
// Users sign in with a password, kept as a bcrypt hash; automation uses API tokens, bearer
// strings "osp_<id>_<secret>" of which only a SHA-256 of the secret is kept. An
// Authenticator turns the credentials of a request into a Principal (a user name, a role
// and the tenants the user may see) or into ErrUnauthenticated, which never says whether
// the name, the password or the token was wrong, and costs the same bcrypt comparison
// whether or not the user exists, so that neither the answer nor its timing tells which
// names exist.
//
// What a principal may do is one table, role to capabilities (see roles.go); where it may
// do it is its tenants, which the store enforces (store.Scope).
//
// The package looks users and tokens up through two one-method interfaces; the store
// satisfies them through small adapters (see UsersFunc and TokensFunc).
package auth

import (
	"slices"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name is the user's name; a token authenticates as the user who owns it.
	Name string
	Role ospreyv1.Role
	// AllTenants lets the principal see every tenant; Tenants are the ones it may see
	// otherwise (sorted, never empty for a principal that Authenticate returns).
	AllTenants bool
	Tenants    []string
}

// Can reports whether p's role grants c. A capability that reaches beyond tenants
// (Global) needs all tenants too.
func (p Principal) Can(c Capability) bool {
	if c.Global() && !p.AllTenants {
		return false
	}
	return slices.Contains(roleCapabilities[p.Role], c)
}

// CanAccessTenant reports whether p may see tenant t.
func (p Principal) CanAccessTenant(t string) bool {
	if t == "" || !knownRole(p.Role) {
		return false
	}
	return p.AllTenants || slices.Contains(p.Tenants, t)
}

// OnlyTenant returns p's tenant when it may see exactly one, else "": the tenant a form
// or a write of p's means when it names none.
func (p Principal) OnlyTenant() string {
	if !p.AllTenants && len(p.Tenants) == 1 {
		return p.Tenants[0]
	}
	return ""
}

// principalOf returns the principal of a user record, or false for a record that grants
// nothing coherent: an unknown or retired role, or no tenant at all. A record written before
// the product's roles reads as Upgrade makes it (nodes migrate them at start; one written
// meanwhile by an older node must not lock its user out).
func principalOf(u *ospreyv1.User) (Principal, bool) {
	if IsLegacy(u) {
		u = cloneUser(u)
		Upgrade(u)
	}
	p := Principal{Name: u.GetName(), Role: u.GetRole(), AllTenants: u.GetAllTenants()}
	if !p.AllTenants {
		p.Tenants = slices.Sorted(slices.Values(u.GetTenants()))
	}
	if p.Name == "" || !knownRole(p.Role) || !p.AllTenants && len(p.Tenants) == 0 {
		return Principal{}, false
	}
	return p, true
}

// Grants reports whether user record u still grants what p holds: the same
// role and tenants. A session whose user changed is ended.
func Grants(u *ospreyv1.User, p Principal) bool {
	q, ok := principalOf(u)
	return ok && q.Name == p.Name && q.Role == p.Role && q.AllTenants == p.AllTenants && slices.Equal(q.Tenants, p.Tenants)
}
