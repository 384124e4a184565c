package validate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestTenant(t *testing.T) {
	tests := []struct {
		name       string
		in         *ospreyv1.Tenant
		wantFields []string
	}{
		{name: "valid", in: &ospreyv1.Tenant{Id: "acme", Name: "ACME Corp.", Scn: "scn-1.example.com"}},
		{name: "id assigned later", in: &ospreyv1.Tenant{Name: "ACME"}},
		{name: "unicode name", in: &ospreyv1.Tenant{Name: "Société Générale"}},
		{name: "nil", in: nil, wantFields: []string{"name"}},
		{name: "name required", in: &ospreyv1.Tenant{Id: "acme"}, wantFields: []string{"name"}},
		{name: "name padded", in: &ospreyv1.Tenant{Name: " ACME"}, wantFields: []string{"name"}},
		{name: "name control", in: &ospreyv1.Tenant{Name: "AC\nME"}, wantFields: []string{"name"}},
		{name: "name too long", in: &ospreyv1.Tenant{Name: strings.Repeat("n", 129)}, wantFields: []string{"name"}},
		{name: "name bad utf-8", in: &ospreyv1.Tenant{Name: "AC\xffME"}, wantFields: []string{"name"}},
		{name: "id upper case", in: &ospreyv1.Tenant{Id: "ACME", Name: "ACME"}, wantFields: []string{"id"}},
		{name: "id slash", in: &ospreyv1.Tenant{Id: "a/b", Name: "ACME"}, wantFields: []string{"id"}},
		{name: "id leading hyphen", in: &ospreyv1.Tenant{Id: "-acme", Name: "ACME"}, wantFields: []string{"id"}},
		{name: "id too long", in: &ospreyv1.Tenant{Id: strings.Repeat("a", 64), Name: "ACME"}, wantFields: []string{"id"}},
		{name: "scn space", in: &ospreyv1.Tenant{Name: "ACME", Scn: "scn 1"}, wantFields: []string{"scn"}},
		{name: "all at once", in: &ospreyv1.Tenant{Id: "A", Scn: "a\tb"}, wantFields: []string{"id", "name", "scn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Tenant(tt.in)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Errorf("Tenant() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
		})
	}
}

func TestSensor(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	ok := func() *ospreyv1.Sensor {
		return &ospreyv1.Sensor{Id: "s-0123456789ab", Tenant: "acme", Name: "mx1.example.com", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED, CertFingerprint: fp}
	}
	with := func(f func(*ospreyv1.Sensor)) *ospreyv1.Sensor { sn := ok(); f(sn); return sn }
	tests := []struct {
		name       string
		in         *ospreyv1.Sensor
		wantFields []string
	}{
		{name: "valid", in: ok()},
		{name: "local, no certificate", in: with(func(sn *ospreyv1.Sensor) { sn.CertFingerprint, sn.Local = "", true })},
		{name: "renewed", in: with(func(sn *ospreyv1.Sensor) { sn.PreviousCertFingerprint = strings.Repeat("01", 32) })},
		{name: "pending", in: with(func(sn *ospreyv1.Sensor) { sn.State = ospreyv1.SensorState_SENSOR_STATE_PENDING })},
		{name: "unicode name", in: with(func(sn *ospreyv1.Sensor) { sn.Name = "Capteur de Bâle" })},
		{name: "nil", in: nil, wantFields: []string{"name", "state"}},
		{name: "name required", in: with(func(sn *ospreyv1.Sensor) { sn.Name = "" }), wantFields: []string{"name"}},
		{name: "name too long", in: with(func(sn *ospreyv1.Sensor) { sn.Name = strings.Repeat("n", 65) }), wantFields: []string{"name"}},
		{name: "name control", in: with(func(sn *ospreyv1.Sensor) { sn.Name = "mx1\n" }), wantFields: []string{"name"}},
		{name: "name padded", in: with(func(sn *ospreyv1.Sensor) { sn.Name = " mx1" }), wantFields: []string{"name"}},
		{name: "state unknown", in: with(func(sn *ospreyv1.Sensor) { sn.State = 9 }), wantFields: []string{"state"}},
		{name: "fingerprint upper case", in: with(func(sn *ospreyv1.Sensor) { sn.CertFingerprint = strings.ToUpper(fp) }), wantFields: []string{"cert_fingerprint"}},
		{name: "fingerprint short", in: with(func(sn *ospreyv1.Sensor) { sn.CertFingerprint = fp[:62] }), wantFields: []string{"cert_fingerprint"}},
		{name: "previous without current", in: with(func(sn *ospreyv1.Sensor) { sn.CertFingerprint, sn.PreviousCertFingerprint = "", fp }), wantFields: []string{"previous_cert_fingerprint"}},
		{name: "previous malformed", in: with(func(sn *ospreyv1.Sensor) { sn.PreviousCertFingerprint = "xyz" }), wantFields: []string{"previous_cert_fingerprint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Sensor(tt.in)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Errorf("Sensor() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
		})
	}
}

func TestUser(t *testing.T) {
	tests := []struct {
		name       string
		in         *ospreyv1.User
		wantFields []string
		wantText   string
	}{
		{name: "administrator of all tenants", in: &ospreyv1.User{Name: "admin", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}},
		{name: "administrator of one tenant", in: &ospreyv1.User{Name: "alice@example.com", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"acme"}}},
		{name: "local administrator", in: &ospreyv1.User{Name: "ops", Role: ospreyv1.Role_ROLE_LOCAL_ADMIN, Tenants: []string{"acme", "beta"}}},
		{name: "senior officer", in: &ospreyv1.User{Name: "soc1", Role: ospreyv1.Role_ROLE_SENIOR_OFFICER, AllTenants: true}},
		{name: "officer", in: &ospreyv1.User{Name: "soc2", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"acme"}}},
		{name: "auditor", in: &ospreyv1.User{Name: "bob_1", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"acme"}}},
		{name: "tenant admin retired", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_TENANT_ADMIN, Tenants: []string{"acme"}}, wantFields: []string{"role"}, wantText: "retired"},
		{name: "old tenant field", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_AUDITOR, Tenant: "acme", Tenants: []string{"acme"}}, wantFields: []string{"tenant"}},
		{name: "no tenants", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_OFFICER}, wantFields: []string{"tenants"}, wantText: "required"},
		{name: "tenants and all tenants", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_OFFICER, AllTenants: true, Tenants: []string{"acme"}}, wantFields: []string{"tenants"}},
		{name: "tenant twice", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"acme", "acme"}}, wantFields: []string{"tenants[1]"}},
		{name: "too many tenants", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: manyTenants(MaxUserTenants + 1)}, wantFields: []string{"tenants"}},
		{name: "role required", in: &ospreyv1.User{Name: "alice", AllTenants: true}, wantFields: []string{"role"}},
		{name: "role unknown", in: &ospreyv1.User{Name: "alice", Role: 9, AllTenants: true}, wantFields: []string{"role"}},
		{name: "name required", in: &ospreyv1.User{Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}, wantFields: []string{"name"}},
		{name: "name space", in: &ospreyv1.User{Name: "alice smith", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}, wantFields: []string{"name"}},
		{name: "name leading dot", in: &ospreyv1.User{Name: ".alice", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}, wantFields: []string{"name"}},
		{name: "name unicode", in: &ospreyv1.User{Name: "jörg", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}, wantFields: []string{"name"}},
		{name: "name too long", in: &ospreyv1.User{Name: strings.Repeat("a", 65), Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}, wantFields: []string{"name"}},
		{name: "name of 64", in: &ospreyv1.User{Name: strings.Repeat("a", 64), Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true}},
		{name: "bad tenant", in: &ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"Acme Corp"}}, wantFields: []string{"tenants[0]"}},
		{name: "all at once", in: &ospreyv1.User{Name: "a b", Role: ospreyv1.Role_ROLE_TENANT_ADMIN}, wantFields: []string{"name", "role", "tenants"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := User(tt.in)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("User() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("User() = %v, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

func manyTenants(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%d", i)
	}
	return out
}

func TestToken(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hash := make([]byte, 32)
	tests := []struct {
		name       string
		in         *ospreyv1.Token
		wantFields []string
	}{
		{name: "join", in: &ospreyv1.Token{Id: "j1", Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "acme", MaxUses: 5, UsesLeft: 5, SecretHash: hash}},
		{name: "join unlimited", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "acme"}},
		{name: "api", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice", Description: "CI deploys",
			CreatedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Hour))}},
		{name: "kind required", in: &ospreyv1.Token{Tenant: "acme"}, wantFields: []string{"kind"}},
		{name: "kind unknown", in: &ospreyv1.Token{Kind: 3}, wantFields: []string{"kind"}},
		{name: "join needs tenant", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN}, wantFields: []string{"tenant"}},
		{name: "join uses over max", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "acme", MaxUses: 2, UsesLeft: 3}, wantFields: []string{"uses_left"}},
		{name: "join uses without max", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "acme", UsesLeft: 3}, wantFields: []string{"uses_left"}},
		{name: "api needs user", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API}, wantFields: []string{"user"}},
		{name: "api has no uses", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice", MaxUses: 1, UsesLeft: 1}, wantFields: []string{"max_uses", "uses_left"}},
		{name: "bad hash", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice", SecretHash: []byte("short")}, wantFields: []string{"secret_hash"}},
		{name: "expires before created", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice",
			CreatedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now)}, wantFields: []string{"expires_at"}},
		{name: "invalid time", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice",
			CreatedAt: &timestamppb.Timestamp{Nanos: -1}}, wantFields: []string{"created_at"}},
		{name: "description control", in: &ospreyv1.Token{Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "alice", Description: "a\x00b"}, wantFields: []string{"description"}},
		{name: "all at once", in: &ospreyv1.Token{Id: "Bad Id", Tenant: "T", User: "a b", Description: strings.Repeat("d", 257)},
			wantFields: []string{"id", "tenant", "user", "kind", "description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Token(tt.in)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Errorf("Token() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
		})
	}
}
