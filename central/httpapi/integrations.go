package httpapi

import (
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
)

// ifMatch returns the version a PUT's If-Match names, or 0 when it has none
// (an unconditional write).
func ifMatch(r *http.Request) (int64, error) {
	h := r.Header.Get("If-Match")
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := api.ParseETag(h)
	if err != nil {
		return 0, badRequest("If-Match: %v", err)
	}
	return v, nil
}

func setETag(w http.ResponseWriter, version int64) {
	if version > 0 {
		w.Header().Set("ETag", api.FormatETag(version))
	}
}

func (s *Server) getSMTP(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cfg, version, err := s.store.GetSMTP(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, convert.SMTPFromProto(cfg))
	return nil
}

// putSMTP replaces a sensor's SMTP integration. The stored private key is kept
// when the write leaves key_pem empty (see store.PutSMTP); without If-Match,
// the store ties the write to the version it read, so a concurrent change is
// a 409, never a silent overwrite.
func (s *Server) putSMTP(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	var in api.SMTPIntegration
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	cfg, err := convert.SMTPToProto(&in)
	if err != nil {
		return validate.Merge(err, validate.SMTPIntegration(cfg))
	}
	newVersion, err := s.store.PutSMTP(r.Context(), scope(p), r.PathValue("id"), cfg, expect)
	if err != nil {
		return err
	}
	setETag(w, newVersion)
	writeJSON(w, http.StatusOK, convert.SMTPFromProto(cfg))
	return nil
}

func (s *Server) getPOP3(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	cfg, version, err := s.store.GetPOP3(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, convert.POP3FromProto(cfg))
	return nil
}

// putPOP3 replaces a sensor's POP3 integration; an empty password keeps the
// stored one while server and user name are unchanged (store.PutPOP3).
func (s *Server) putPOP3(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	var in api.POP3Integration
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	cfg, err := convert.POP3ToProto(&in)
	if err != nil {
		return validate.Merge(err, validate.POP3Integration(cfg))
	}
	newVersion, err := s.store.PutPOP3(r.Context(), scope(p), r.PathValue("id"), cfg, expect)
	if err != nil {
		return err
	}
	setETag(w, newVersion)
	writeJSON(w, http.StatusOK, convert.POP3FromProto(cfg))
	return nil
}

// applySMTP applies one SMTP integration to every sensor of a tenant; each
// sensor keeps its own stored key when the write leaves key_pem empty.
func (s *Server) applySMTP(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.SMTPIntegration
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	cfg, err := convert.SMTPToProto(&in)
	if err != nil {
		return validate.Merge(err, validate.SMTPIntegration(cfg))
	}
	changed, version, err := s.store.ApplySMTP(r.Context(), scope(p), r.PathValue("tenant"), cfg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ApplyResult{Changed: changed, Version: version})
	return nil
}

// copySMTPToTenant applies a sensor's SMTP integration to every other sensor
// of its tenant, each keeping its own listen addresses and certificates
// (store.CopySMTPToTenant). Each sensor's outcome is in the answer, its
// error translated as a request's would be; the request itself fails only
// when the source cannot be read.
func (s *Server) copySMTPToTenant(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, results, err := s.store.CopySMTPToTenant(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := api.SMTPApplyResult{Source: r.PathValue("id"), Tenant: tenant, Sensors: make([]api.SensorApplyResult, 0, len(results))}
	for _, res := range results {
		sr := api.SensorApplyResult{Sensor: res.Sensor, Version: res.Version}
		switch res.Outcome {
		case store.CopyApplied:
			sr.Result = api.ApplyApplied
		case store.CopyUnchanged:
			sr.Result = api.ApplyUnchanged
		default:
			status, body := s.errorResponse(res.Err)
			if status >= 500 {
				s.log.ErrorContext(r.Context(), "apply smtp to sensor", "source", out.Source, "sensor", res.Sensor, "err", res.Err)
			}
			sr.Result, sr.Error, sr.Fields = api.ApplyError, body.Message, body.Fields
		}
		out.Sensors = append(out.Sensors, sr)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
