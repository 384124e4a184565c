package httpapi

import (
	"net/http"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/pkg/validate"
)

// listAlerts answers one page of the alerts the query selects, newest first.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "tenant", "severity", "since", "sensor", "server", "q", "page_token", "limit")
	if err != nil {
		return err
	}
	q := sqlstore.AlertQuery{
		Tenant: v.Get("tenant"), SensorID: v.Get("sensor"), ServerID: v.Get("server"), Q: v.Get("q"), PageToken: v.Get("page_token"),
	}
	var errs validate.Errors
	if sev, err := convert.SeverityToProto(api.Severity(v.Get("severity"))); err != nil {
		errs = append(errs, validate.FieldError{Field: "severity", Message: err.Error()})
	} else {
		q.MinSeverity = sev
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			errs = append(errs, validate.FieldError{Field: "since", Message: "must be a time in RFC 3339 form, such as 2026-01-02T15:04:05Z"})
		}
		q.Since = t
	}
	if q.Limit, err = limitParam(v); err != nil {
		es, _ := validate.AsErrors(err)
		errs = append(errs, es...)
	}
	if len(errs) > 0 {
		return errs
	}
	page, err := s.messages.ListAlerts(r.Context(), scope(p), q)
	if err != nil {
		return err
	}
	out := api.AlertList{Alerts: make([]api.Alert, 0, len(page.Alerts)), NextPageToken: page.NextPageToken}
	for _, a := range page.Alerts {
		out.Alerts = append(out.Alerts, convert.AlertFromProto(a))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getAlert answers one alert. Without ?tenant= it is looked for in every
// tenant the caller may see; another tenant's alert is 404.
func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "tenant")
	if err != nil {
		return err
	}
	a, err := s.messages.GetAlert(r.Context(), scope(p), v.Get("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.AlertFromProto(a))
	return nil
}
