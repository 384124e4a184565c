package httpapi

import (
	"net/http"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/pkg/validate"
)

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenants, err := s.store.ListTenants(r.Context(), scope(p))
	if err != nil {
		return err
	}
	out := api.TenantList{Tenants: make([]api.Tenant, 0, len(tenants))}
	for _, t := range tenants {
		out.Tenants = append(out.Tenants, convert.TenantFromProto(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.Tenant
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if !in.CreatedAt.IsZero() {
		return validate.Errors{{Field: "created_at", Message: "is set by the server; leave it out"}}
	}
	t := convert.TenantToProto(in)
	if t.Name == "" {
		t.Name = t.Id
	}
	t.CreatedAt = timestamppb.New(s.now())
	if _, err := s.store.CreateTenant(r.Context(), scope(p), t); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/tenants/"+t.Id)
	writeJSON(w, http.StatusCreated, convert.TenantFromProto(t))
	return nil
}
