package remotesensors

import (
	"github.com/ospreysec/osprey/central/auth"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Allowed says whether p, on the PCN, may read (write false) or write the
// sensors of an SCN that serves tenant: reading needs access to the
// tenant, writing also needs a role that writes. It is the one check of
// these routes, for the API and the UI alike.
func Allowed(p auth.Principal, tenant string, write bool) bool {
	return p.CanAccessTenant(tenant) && (!write || p.CanWrite())
}

// PCNPrincipal is who a call from the PCN acts as on the SCN: an
// administrator of the SCN's sensors, named after the PCN account.
func PCNPrincipal(caller string) auth.Principal {
	return auth.Principal{Name: "pcn:" + caller, Role: ospreyv1.Role_ROLE_ADMIN}
}
