// Package auth authenticates callers of a Central Node's API and web UI, and says what
// they may do.
//
// Users sign in with a password, kept as a bcrypt hash; automation uses API tokens, bearer
// strings "osp_<id>_<secret>" of which only a SHA-256 of the secret is kept. An
// Authenticator turns the credentials of a request into a Principal (a user name, role and
// tenant) or into ErrUnauthenticated, which never says whether the name, the password or the
// token was wrong, and costs the same bcrypt comparison whether or not the user exists, so
// that neither the answer nor its timing tells which names exist.
//
// The package looks users and tokens up through two one-method interfaces; the store
// satisfies them through small adapters (see UsersFunc and TokensFunc).
package auth

import (
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name is the user's name; a token authenticates as the user who owns it.
	Name string
	Role ospreyv1.Role
	// Tenant is the one tenant of a tenant_admin or a tenant's auditor; empty for an admin
	// and for an auditor of every tenant.
	Tenant string
}

// IsAdmin reports whether p may do everything, across tenants.
func (p Principal) IsAdmin() bool {
	return p.Role == ospreyv1.Role_ROLE_ADMIN
}

// CanWrite reports whether p may change things (in the tenants it can access): admins and
// tenant admins can, auditors cannot.
func (p Principal) CanWrite() bool {
	return p.Role == ospreyv1.Role_ROLE_ADMIN || p.Role == ospreyv1.Role_ROLE_TENANT_ADMIN
}

// CanAccessTenant reports whether p may see tenant t: an admin every tenant, an auditor
// without a tenant every tenant, anyone else only their own.
func (p Principal) CanAccessTenant(t string) bool {
	switch p.Role {
	case ospreyv1.Role_ROLE_ADMIN:
		return true
	case ospreyv1.Role_ROLE_AUDITOR:
		return p.Tenant == "" || p.Tenant == t
	case ospreyv1.Role_ROLE_TENANT_ADMIN:
		return p.Tenant != "" && p.Tenant == t
	}
	return false
}

// principalOf returns the principal of a user record, or false for a record that grants
// nothing coherent: an unknown role, or a tenant admin without a tenant (which would
// otherwise read as "every tenant" to code that scopes by Tenant).
func principalOf(u *ospreyv1.User) (Principal, bool) {
	p := Principal{Name: u.GetName(), Role: u.GetRole(), Tenant: u.GetTenant()}
	switch p.Role {
	case ospreyv1.Role_ROLE_ADMIN:
		p.Tenant = "" // an admin is not confined to a tenant, whatever the record says
	case ospreyv1.Role_ROLE_AUDITOR:
	case ospreyv1.Role_ROLE_TENANT_ADMIN:
		if p.Tenant == "" {
			return Principal{}, false
		}
	default:
		return Principal{}, false
	}
	return p, p.Name != ""
}
