package remotesensors

import (
	"testing"

	"github.com/ospreysec/osprey/central/auth"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestAllowed(t *testing.T) {
	admin := auth.Principal{Name: "a", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}
	taA := auth.Principal{Name: "t", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"a"}}
	audA := auth.Principal{Name: "u", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"a"}}
	audAll := auth.Principal{Name: "v", Role: ospreyv1.Role_ROLE_AUDITOR, AllTenants: true}
	officerA := auth.Principal{Name: "o", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"a"}}
	localA := auth.Principal{Name: "l", Role: ospreyv1.Role_ROLE_LOCAL_ADMIN, Tenants: []string{"a"}}
	for _, tt := range []struct {
		name   string
		p      auth.Principal
		tenant string
		write  bool
		want   bool
	}{
		{"admin reads", admin, "a", false, true},
		{"admin writes", admin, "b", true, true},
		{"tenant admin reads its tenant's SCN", taA, "a", false, true},
		{"tenant admin writes its tenant's SCN", taA, "a", true, true},
		{"tenant admin reads another tenant's SCN", taA, "b", false, false},
		{"tenant admin writes another tenant's SCN", taA, "b", true, false},
		{"auditor reads its tenant's SCN", audA, "a", false, true},
		{"auditor writes its tenant's SCN", audA, "a", true, false},
		{"auditor reads another tenant's SCN", audA, "b", false, false},
		{"auditor of every tenant reads", audAll, "b", false, true},
		{"auditor of every tenant writes", audAll, "b", true, false},
		{"security officer reads no configuration", officerA, "a", false, false},
		{"local administrator writes its tenant's SCN", localA, "a", true, true},
		{"no role", auth.Principal{Name: "x"}, "a", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.p, tt.tenant, tt.write); got != tt.want {
				t.Errorf("Allowed(%+v, %q, write %v) = %v, want %v", tt.p, tt.tenant, tt.write, got, tt.want)
			}
		})
	}
}
