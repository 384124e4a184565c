package httpapi

import (
	"context"
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
	writeRules(w, rules)
	return nil
}

func writeRules(w http.ResponseWriter, rules []*ospreyv1.Rule) {
	out := api.RuleList{Rules: make([]api.Rule, 0, len(rules))}
	for _, rl := range rules {
		out.Rules = append(out.Rules, convert.RuleFromProto(rl))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rl, err := s.store.GetRule(r.Context(), scope(p), r.PathValue("tenant"), r.PathValue("id"))
	return writeRule(w, http.StatusOK, rl, err)
}

// writeRule answers with rl and its ETag, or returns err.
func writeRule(w http.ResponseWriter, code int, rl *ospreyv1.Rule, err error) error {
	if err != nil {
		return err
	}
	setETag(w, rl.GetVersion())
	writeJSON(w, code, convert.RuleFromProto(rl))
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
	return replaceRule(w, r, p, ruleFromRequest, s.store.UpdateRule)
}

// replaceRule decodes the rule of a PUT and writes it with update, at the
// version If-Match names (any without one).
func replaceRule(w http.ResponseWriter, r *http.Request, p auth.Principal,
	decode func(http.ResponseWriter, *http.Request) (*ospreyv1.Rule, error),
	update func(context.Context, store.Scope, *ospreyv1.Rule, int64) (*ospreyv1.Rule, error)) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	rl, err := decode(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if rl.GetId() != "" && rl.GetId() != id {
		return validate.Errors{{Field: "id", Message: "must be empty or the id of the path"}}
	}
	rl.Id = id
	stored, err := update(r.Context(), scope(p), rl, expect)
	return writeRule(w, http.StatusOK, stored, err)
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

// globalRuleFromRequest decodes a global rule from a write to
// /api/v1/rules; the read-only fields (created_at, version, global, origin)
// are accepted and ignored, and a tenant is refused.
func globalRuleFromRequest(w http.ResponseWriter, r *http.Request) (*ospreyv1.Rule, error) {
	var in api.Rule
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	rl, convErr := convert.RuleToProto(&in)
	rl.Global = true
	var verr error
	if in.Tenant != "" {
		verr = validate.Errors{{Field: "tenant", Message: "must be empty: a global rule applies to every tenant"}}
	}
	if convErr != nil || verr != nil {
		return nil, validate.Merge(convErr, verr, validate.Rule(rl))
	}
	return rl, nil
}

func (s *Server) listGlobalRules(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rules, err := s.store.ListGlobalRules(r.Context(), scope(p))
	if err != nil {
		return err
	}
	writeRules(w, rules)
	return nil
}

func (s *Server) getGlobalRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rl, err := s.store.GetGlobalRule(r.Context(), scope(p), r.PathValue("id"))
	return writeRule(w, http.StatusOK, rl, err)
}

func (s *Server) createGlobalRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rl, err := globalRuleFromRequest(w, r)
	if err != nil {
		return err
	}
	stored, err := s.store.CreateGlobalRule(r.Context(), scope(p), rl)
	if err == nil {
		w.Header().Set("Location", "/api/v1/rules/"+stored.GetId())
	}
	return writeRule(w, http.StatusCreated, stored, err)
}

// putGlobalRule replaces a global rule; with If-Match, only if it is still
// that version.
func (s *Server) putGlobalRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return replaceRule(w, r, p, globalRuleFromRequest, s.store.UpdateGlobalRule)
}

// deleteGlobalRule deletes a global rule (with If-Match, only if it is
// still that version) and answers with the rule it deleted.
func (s *Server) deleteGlobalRule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	gone, err := s.store.DeleteGlobalRule(r.Context(), scope(p), r.PathValue("id"), expect)
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
