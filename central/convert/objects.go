package convert

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TenantToProto converts a tenant from a write. CreatedAt is the server's to set and is
// not copied.
func TenantToProto(in api.Tenant) *ospreyv1.Tenant {
	return &ospreyv1.Tenant{Id: in.ID, Name: in.Name, Scn: in.SCN}
}

// TenantFromProto converts a tenant for a read.
func TenantFromProto(p *ospreyv1.Tenant) api.Tenant {
	return api.Tenant{ID: p.GetId(), Name: p.GetName(), SCN: p.GetScn(), CreatedAt: timeFromProto(p.GetCreatedAt())}
}

// SensorFromProto converts the durable record of a sensor for a read. The status fields
// (Online, Node, LastSeen, ConfigVersion, AppliedVersion, LastError, and the sensor's
// report: see SensorStatus) are not in the record; the caller fills them in from the
// sensor's status.
func SensorFromProto(p *ospreyv1.Sensor) api.Sensor {
	return api.Sensor{
		ID:              p.GetId(),
		Name:            p.GetName(),
		Tenant:          p.GetTenant(),
		State:           SensorStateFromProto(p.GetState()),
		CertFingerprint: p.GetCertFingerprint(),
		Local:           p.GetLocal(),
		Type:            SensorType(p.GetLocal()),
		CreatedAt:       timeFromProto(p.GetCreatedAt()),
	}
}

// UserToProto converts a user from a write. The password is not converted: hash it with
// auth.HashPassword into PasswordHash. A write's Tenant (of clients written before Tenants)
// means Tenants: [Tenant]. The only error is validate.Errors, for a missing or unknown role.
func UserToProto(in api.User) (*ospreyv1.User, error) {
	var errs fieldErrors
	role, err := RoleToProto(in.Role)
	errs.check("role", err)
	if err := errs.err(); err != nil {
		return nil, err
	}
	tenants := slices.Clone(in.Tenants)
	if len(tenants) == 0 && in.Tenant != "" {
		tenants = []string{in.Tenant}
	}
	return &ospreyv1.User{Name: in.Name, Role: role, Tenants: tenants, AllTenants: in.AllTenants}, nil
}

// UserFromProto converts a user for a read, without the password hash. A record of before
// the product's roles that no node could migrate shows its one tenant in Tenants.
func UserFromProto(p *ospreyv1.User) api.User {
	tenants := slices.Clone(p.GetTenants())
	if len(tenants) == 0 && p.GetTenant() != "" {
		tenants = []string{p.GetTenant()}
	}
	return api.User{
		Name:       p.GetName(),
		Role:       RoleFromProto(p.GetRole()),
		Tenants:    tenants,
		AllTenants: p.GetAllTenants(),
		CreatedAt:  timeFromProto(p.GetCreatedAt()),
		Origin:     p.GetOrigin(),
	}
}

// TokenFromRequest builds the token a request asks for, created at now: kind, tenant,
// description, uses, and the expiry TTLSeconds after now (none for 0). The caller fills in
// the id, the secret's hash and, for an API token, the user. The only error is
// validate.Errors, for a missing or unknown kind.
func TokenFromRequest(in api.TokenRequest, now time.Time) (*ospreyv1.Token, error) {
	var errs fieldErrors
	kind, err := TokenKindToProto(in.Kind)
	errs.check("kind", err)
	if err := errs.err(); err != nil {
		return nil, err
	}
	t := &ospreyv1.Token{
		Kind:        kind,
		Tenant:      in.Tenant,
		Description: in.Description,
		MaxUses:     in.MaxUses,
		UsesLeft:    in.MaxUses,
		CreatedAt:   timestamppb.New(now),
	}
	if in.TTLSeconds > 0 {
		t.ExpiresAt = timestamppb.New(now.Add(time.Duration(in.TTLSeconds) * time.Second))
	}
	return t, nil
}

// TokenFromProto converts a token for a read. Only the hash of the secret is stored, so
// Secret is empty: the response that creates a token sets it.
func TokenFromProto(p *ospreyv1.Token) api.Token {
	return api.Token{
		ID:          p.GetId(),
		Kind:        TokenKindFromProto(p.GetKind()),
		Tenant:      p.GetTenant(),
		User:        p.GetUser(),
		Description: p.GetDescription(),
		CreatedAt:   timeFromProto(p.GetCreatedAt()),
		ExpiresAt:   timeFromProto(p.GetExpiresAt()),
		MaxUses:     p.GetMaxUses(),
		UsesLeft:    p.GetUsesLeft(),
	}
}

// timeFromProto returns t in UTC, or the zero time for a nil timestamp (which the JSON
// types omit).
func timeFromProto(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}
