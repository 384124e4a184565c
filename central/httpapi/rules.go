package httpapi

import (
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func (s *Server) listRules(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rules, err := s.store.ListRules(r.Context(), scope(p), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	out := api.RuleList{Rules: make([]api.Rule, 0, len(rules))}
	for _, rl := range rules {
		out.Rules = append(out.Rules, convert.RuleFromProto(rl))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rl, err := s.store.GetRule(r.Context(), scope(p), r.PathValue("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	setETag(w, rl.GetVersion())
	writeJSON(w, http.StatusOK, convert.RuleFromProto(rl))
	return nil
}

// ruleFromRequest decodes a rule from a write to tenant's rules. The read-only
// fields a read returns (created_at, version) are accepted and ignored, so
// the body of a read can be edited and written back; a tenant other than the
// path's is refused.
func ruleFromRequest(w http.ResponseWriter, r *http.Request) (*ospreyv1.Rule, error) {
	var in api.Rule
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	rl, convErr := convert.RuleToProto(&in)
	tenant := r.PathValue("tenant")
	rl.Tenant = tenant
	var verr error
	if in.Tenant != "" && in.Tenant != tenant {
		verr = validate.Errors{{Field: "tenant", Message: "must be empty or the tenant of the path"}}
	}
	if convErr != nil || verr != nil {
		return nil, validate.Merge(convErr, verr, validate.Rule(rl))
	}
	return rl, nil
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rl, err := ruleFromRequest(w, r)
	if err != nil {
		return err
	}
	stored, err := s.store.CreateRule(r.Context(), scope(p), rl)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/tenants/"+stored.GetTenant()+"/rules/"+stored.GetId())
	setETag(w, stored.GetVersion())
	writeJSON(w, http.StatusCreated, convert.RuleFromProto(stored))
	return nil
}

// putRule replaces a rule; with If-Match, only if it is still that version.
func (s *Server) putRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	rl, err := ruleFromRequest(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if rl.GetId() != "" && rl.GetId() != id {
		return validate.Errors{{Field: "id", Message: "must be empty or the id of the path"}}
	}
	rl.Id = id
	stored, err := s.store.UpdateRule(r.Context(), scope(p), rl, expect)
	if err != nil {
		return err
	}
	setETag(w, stored.GetVersion())
	writeJSON(w, http.StatusOK, convert.RuleFromProto(stored))
	return nil
}

// deleteRule deletes a rule (with If-Match, only if it is still that
// version) and answers with the rule it deleted.
func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	gone, err := s.store.DeleteRule(r.Context(), scope(p), r.PathValue("tenant"), r.PathValue("id"), expect)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.RuleFromProto(gone))
	return nil
}

// writeVersion is the version a write's If-Match names, or store.AnyVersion
// without one.
func writeVersion(r *http.Request) (int64, error) {
	v, err := ifMatch(r)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return store.AnyVersion, nil
	}
	return v, nil
}
