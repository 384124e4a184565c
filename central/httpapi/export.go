package httpapi

import (
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/pkg/validate"
)

func (s *Server) getExport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	e, err := s.store.GetExport(r.Context(), scope(p), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	setETag(w, e.GetVersion())
	writeJSON(w, http.StatusOK, convert.ExportFromProto(e))
	return nil
}

// putExport replaces a tenant's syslog export; with If-Match, only if it is
// still that version.
func (s *Server) putExport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	var in api.SyslogExport
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	e := convert.ExportToProto(&in)
	if err := validate.SyslogExport(e); err != nil {
		return err
	}
	stored, err := s.store.PutExport(r.Context(), scope(p), r.PathValue("tenant"), e, expect)
	if err != nil {
		return err
	}
	setETag(w, stored.GetVersion())
	writeJSON(w, http.StatusOK, convert.ExportFromProto(stored))
	return nil
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	pol, err := s.store.GetPolicy(r.Context(), scope(p), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	setETag(w, pol.GetVersion())
	writeJSON(w, http.StatusOK, convert.PolicyFromProto(pol))
	return nil
}

// putPolicy replaces a tenant's verdict policy; with If-Match, only if it
// is still that version.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	var in api.VerdictPolicy
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	pol, err := convert.PolicyToProto(&in)
	if err != nil {
		return err
	}
	stored, err := s.store.PutPolicy(r.Context(), scope(p), r.PathValue("tenant"), pol, expect)
	if err != nil {
		return err
	}
	setETag(w, stored.GetVersion())
	writeJSON(w, http.StatusOK, convert.PolicyFromProto(stored))
	return nil
}
