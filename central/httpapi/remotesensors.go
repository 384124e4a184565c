package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/remotesensors"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Sensors managed from the PCN. On a PCN: an SCN's sensors
// (/api/v1/servers/{id}/sensors) and their settings documents, read and
// written through the link (central/remotesensors); who may is
// remotesensors.Allowed's to say. On an SCN: its administrator's switch
// (/api/v1/pcn/sensor-management), and SensorDocument, which runs the
// PCN's calls through this API's own handlers.

// remoteServer checks that p may read (or write) the sensors of SCN id and
// returns the SCN's tenant.
func (s *Server) remoteServer(r *http.Request, p auth.Principal, write bool) error {
	if s.primary == nil || s.remote == nil {
		return errNotPrimary
	}
	srv, err := s.primary.Server(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !remotesensors.Allowed(p, srv.Tenant, write) {
		return errForbidden
	}
	return nil
}

func (s *Server) listServerSensors(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := s.remoteServer(r, p, false); err != nil {
		return err
	}
	v, err := s.remote.Sensors(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// remoteDocuments are the documents of a sensor the PCN reads and writes,
// by name, each a new value of its type.
var remoteDocuments = map[string]func() any{
	"smtp": func() any { return new(api.SMTPIntegration) },
	"pop3": func() any { return new(api.POP3Integration) },
}

// serverSensorDocument reads (write false) or writes a settings document
// of an SCN's sensor through the link, and answers what the SCN's own API
// answered: the document and its ETag, or its error (400 with the field
// errors, 404, 409 for a stale If-Match, 403 when the SCN refuses the
// PCN's writes).
func serverSensorDocument(doc string, write bool) func(*Server, http.ResponseWriter, *http.Request, auth.Principal) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		call := &ospreyv1.RemoteSensorCall{Sensor: r.PathValue("sensor"), Document: doc, Write: write, Caller: p.Name}
		if write {
			v, err := ifMatch(r)
			if err != nil {
				return err
			}
			// A body that is not one JSON object of the document's shape
			// is refused here, as the SCN's own route would (the same
			// decoder); what its values mean is the SCN's to check.
			if call.Body, err = readJSON(w, r, remoteDocuments[doc]()); err != nil {
				return err
			}
			call.IfMatch = v
		}
		if err := s.remoteServer(r, p, write); err != nil {
			return err
		}
		a, err := s.remote.Call(r.Context(), scope(p), r.PathValue("id"), call)
		switch {
		case errors.Is(err, remotesensors.ErrOffline):
			return &sensorError{status: http.StatusServiceUnavailable, msg: err.Error()}
		case errors.Is(err, remotesensors.ErrNoAnswer):
			return &sensorError{status: http.StatusGatewayTimeout, msg: err.Error()}
		case err != nil:
			return err
		}
		setETag(w, a.GetVersion())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(int(a.GetHttpStatus()))
		_, _ = w.Write(a.GetBody()) // the client went away: nothing to do
		return nil
	}
}

// SensorDocument runs a call of the PCN (remotesensors.Documents) through
// this API's own handlers of GET and PUT /api/v1/sensors/{id}/smtp and
// /pop3, as remotesensors.PCNPrincipal, so the PCN gets exactly what a
// local caller would: the same decoding, validation, version check and
// errors.
func (s *Server) SensorDocument(ctx context.Context, call *ospreyv1.RemoteSensorCall) (status int, body []byte, version int64) {
	handlers := map[string][2]handlerFunc{
		"smtp": {s.getSMTP, s.putSMTP},
		"pop3": {s.getPOP3, s.putPOP3},
	}
	pair, ok := handlers[call.GetDocument()]
	if !ok {
		return s.answer(badRequest("document %q: want smtp or pop3", call.GetDocument()))
	}
	h, method := pair[0], http.MethodGet
	if call.GetWrite() {
		h, method = pair[1], http.MethodPut
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, method, "/api/v1/sensors/"+url.PathEscape(call.GetSensor())+"/"+call.GetDocument(), bytes.NewReader(call.GetBody()))
	if err != nil {
		return s.answer(badRequest("sensor %q: %v", call.GetSensor(), err))
	}
	r.SetPathValue("id", call.GetSensor())
	if v := call.GetIfMatch(); v > 0 {
		r.Header.Set("If-Match", api.FormatETag(v))
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	if err := h(rec, r, remotesensors.PCNPrincipal(call.GetCaller())); err != nil {
		if code, _ := s.errorResponse(err); code >= 500 {
			s.log.ErrorContext(ctx, "the PCN's call to a sensor failed", "sensor", call.GetSensor(), "document", call.GetDocument(), "err", err)
		}
		return s.answer(err)
	}
	if etag := rec.header.Get("ETag"); etag != "" {
		version, _ = api.ParseETag(etag) // set by setETag: always well-formed
	}
	return rec.code, rec.body.Bytes(), version
}

// answer is err as writeError would answer it.
func (s *Server) answer(err error) (int, []byte, int64) {
	code, body := s.errorResponse(err)
	b, _ := json.Marshal(body) // a plain struct: never fails
	return code, b, 0
}

// recorder is the response of a handler run for the PCN.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func (s *Server) getSensorManagement(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	m, err := s.store.SensorManagement(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sensorManagementView(m))
	return nil
}

func (s *Server) putSensorManagement(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.SensorManagement
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	m := &ospreyv1.SensorManagement{RefuseWrites: !in.PCNWrites, ChangedBy: p.Name, ChangedAt: timestamppb.New(s.now())}
	if err := s.store.PutSensorManagement(r.Context(), m); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "sensor management from the PCN changed", "pcn_writes", in.PCNWrites, "by", p.Name)
	writeJSON(w, http.StatusOK, sensorManagementView(m))
	return nil
}

func sensorManagementView(m *ospreyv1.SensorManagement) api.SensorManagement {
	v := api.SensorManagement{PCNWrites: !m.GetRefuseWrites(), ChangedBy: m.GetChangedBy()}
	if m.GetChangedAt() != nil {
		t := m.GetChangedAt().AsTime().UTC()
		v.ChangedAt = &t
	}
	return v
}
