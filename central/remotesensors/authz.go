package remotesensors

import (
	"github.com/ospreysec/osprey/central/auth"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Allowed says whether p, on the PCN, may read (write false) or write the
// sensors of an SCN that serves tenant: reading needs access to the
// tenant and a role that reads configuration, writing a role that
// configures. It is the one check of these routes (besides the routes'
// own capabilities), for the API and the UI alike.
func Allowed(p auth.Principal, tenant string, write bool) bool {
	if !p.CanAccessTenant(tenant) {
		return false
	}
	if write {
		return p.Can(auth.Configure)
	}
	return p.Can(auth.ReadConfig)
}

// PCNPrincipal is who a call from the PCN acts as on the SCN: an
// administrator of the SCN's sensors, named after the PCN account. It is
// of every tenant of the SCN, which serves one tenant of the PCN: the PCN
// checked the caller's access to that tenant (Allowed).
func PCNPrincipal(caller string) auth.Principal {
	return auth.Principal{Name: "pcn:" + caller, Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}
}
