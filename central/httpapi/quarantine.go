package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The quarantine: listed from the SQL store across sensors; one message's
// preview, download and actions go to its sensor.

func (s *Server) listQuarantine(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if s.quarantine == nil {
		return &sensorError{http.StatusServiceUnavailable, "this node has no quarantine service"}
	}
	v, err := queryParams(r, "tenant", "sensor", "state", "sender", "recipient", "subject", "since", "until", "limit", "page_token")
	if err != nil {
		return err
	}
	q := sqlstore.QuarantineQuery{Tenant: v.Get("tenant"), SensorID: v.Get("sensor"), State: v.Get("state"),
		Sender: v.Get("sender"), Rcpt: v.Get("recipient"), Subject: v.Get("subject"), After: v.Get("page_token")}
	var errs validate.Errors
	switch api.QuarantineState(q.State) {
	case "", api.QuarantineHeld, api.QuarantineReleased, api.QuarantineDeleted, api.QuarantineEvicted, api.QuarantineNotHeld:
	default:
		errs = append(errs, validate.FieldError{Field: "state", Message: "must be quarantined, released, deleted, evicted or not_held"})
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if text := v.Get(f.name); text != "" {
			t, err := time.Parse(time.RFC3339Nano, text)
			if err != nil {
				errs = append(errs, validate.FieldError{Field: f.name, Message: "must be a time in RFC 3339 form, such as 2026-01-02T15:04:05Z"})
			}
			*f.dst = t
		}
	}
	if text := v.Get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > 500 {
			errs = append(errs, validate.FieldError{Field: "limit", Message: "must be a number from 1 to 500"})
		}
		q.Limit = n
	}
	if len(errs) > 0 {
		return errs
	}
	msgs, next, err := s.quarantine.List(r.Context(), scope(p), q)
	if errors.Is(err, sqlstore.ErrInvalidCursor) {
		return validate.Errors{{Field: "page_token", Message: "not a page token of this listing: start again without one"}}
	}
	if err != nil {
		return err
	}
	out := api.QuarantineList{Messages: make([]api.QuarantinedMessage, 0, len(msgs)), NextPageToken: next}
	for _, m := range msgs {
		out.Messages = append(out.Messages, quarantinedFromStore(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQuarantined(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if s.quarantine == nil {
		return &sensorError{http.StatusServiceUnavailable, "this node has no quarantine service"}
	}
	v, err := queryParams(r, "preview")
	if err != nil {
		return err
	}
	preview, err := boolParam(v.Get("preview"), "preview")
	if err != nil {
		return err
	}
	d, err := s.quarantine.Get(r.Context(), scope(p), r.PathValue("id"), r.PathValue("msg"), preview)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, quarantineDetailFromStore(d))
	return nil
}

func boolParam(text, field string) (bool, error) {
	switch text {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, validate.Errors{{Field: field, Message: "must be true or false"}}
}

func (s *Server) releaseQuarantined(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.QuarantineRelease
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	action := quarantine.ActionRelease
	if len(in.To) > 0 {
		action = quarantine.ActionReleaseTo
	}
	return s.actOnQuarantined(w, r, p, action, in.To)
}

func (s *Server) deleteQuarantined(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.actOnQuarantined(w, r, p, quarantine.ActionDelete, nil)
}

func (s *Server) actOnQuarantined(w http.ResponseWriter, r *http.Request, p auth.Principal, action string, to []string) error {
	if s.quarantine == nil {
		return &sensorError{http.StatusServiceUnavailable, "this node has no quarantine service"}
	}
	sensor, id := r.PathValue("id"), r.PathValue("msg")
	out, err := s.quarantine.Act(r.Context(), scope(p), p.Name, sensor, id, action, to)
	if err != nil {
		return quarantineError(sensor, err)
	}
	d, err := s.quarantine.Get(r.Context(), scope(p), sensor, id, false)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !out.Done {
		status = http.StatusAccepted
	}
	writeJSON(w, status, api.QuarantineActionResult{Done: out.Done, QueueID: out.QueueID, Message: quarantineDetailFromStore(d)})
	return nil
}

// downloadQuarantined serves a quarantined message as it arrived, read
// from its sensor, as an .eml attachment.
func (s *Server) downloadQuarantined(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if s.quarantine == nil {
		return &sensorError{http.StatusServiceUnavailable, "this node has no quarantine service"}
	}
	sensor, id := r.PathValue("id"), r.PathValue("msg")
	started := false
	err := s.quarantine.Download(r.Context(), scope(p), sensor, id, func(size int64) {
		started = true
		quarantine.StartDownload(w, sensor, id, size)
	}, w)
	if err != nil && started {
		// The status went out: cut the response short, so the client sees
		// fewer bytes than Content-Length promised.
		s.log.WarnContext(r.Context(), "quarantine download cut short", "sensor", sensor, "message", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		return quarantineError(sensor, err)
	}
	s.log.InfoContext(r.Context(), "quarantined message downloaded", "sensor", sensor, "message", id, "user", p.Name)
	return nil
}

// quarantineError turns what a quarantine action failed with into the
// API's answer.
func quarantineError(sensor string, err error) error {
	var (
		refused *sensorrpc.RefusedError
		verrs   validate.Errors
	)
	switch {
	case errors.As(err, &verrs):
		return verrs
	case errors.Is(err, quarantine.ErrNotHeld):
		return &sensorError{http.StatusConflict, err.Error()}
	case errors.Is(err, quarantine.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, sensorrpc.ErrOffline):
		return &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s is not connected: the message is on the sensor", sensor)}
	case errors.Is(err, sensorrpc.ErrUnavailable):
		return &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s did not answer in time: retry", sensor)}
	case errors.As(err, &refused):
		switch refused.Code {
		case ospreyv1.SensorError_CODE_INVALID:
			return badRequest("%s", refused.Message)
		case ospreyv1.SensorError_CODE_UNAVAILABLE:
			return &sensorError{http.StatusConflict, refused.Message}
		}
		return &sensorError{http.StatusBadGateway, "the sensor failed: " + refused.Message}
	}
	return err
}
