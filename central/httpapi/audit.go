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

// listAudit answers one page of the message audit log, newest first.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "tenant", "sensor", "from", "to", "kind", "sender", "recipient", "subject",
		"message_id", "client_ip", "verdict", "reason", "page_token", "limit")
	if err != nil {
		return err
	}
	q := sqlstore.AuditQuery{
		Tenant: v.Get("tenant"), SensorID: v.Get("sensor"), Kind: v.Get("kind"), Sender: v.Get("sender"),
		Recipient: v.Get("recipient"), Subject: v.Get("subject"), MessageID: v.Get("message_id"),
		ClientIP: v.Get("client_ip"), Verdict: v.Get("verdict"), Reason: v.Get("reason"), PageToken: v.Get("page_token"),
	}
	var errs validate.Errors
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs = append(errs, validate.FieldError{Field: name, Message: "must be a time in RFC 3339 form, such as 2026-01-02T15:04:05Z"})
			}
			*dst = t
		}
	}
	if q.Limit, err = limitParam(v); err != nil {
		es, _ := validate.AsErrors(err)
		errs = append(errs, es...)
	}
	if len(errs) > 0 {
		return errs
	}
	page, err := s.messages.ListAudit(r.Context(), scope(p), q)
	if err != nil {
		return err
	}
	out := api.AuditList{Events: make([]api.AuditEvent, 0, len(page.Events)), NextPageToken: page.NextPageToken}
	for _, e := range page.Events {
		out.Events = append(out.Events, convert.AuditEventFromStore(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
