package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/remotesensors"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ---- An SCN's sensors, on its PCN ----
//
// The sensors an SCN last reported, with each one's configuration version
// and ACK/NACK; and an editor of a sensor's SMTP (gateway included) or
// POP3 document, as JSON, written through the link with the version read
// (a stale one is refused) and validated by the SCN (its field errors
// shown here). Who may is remotesensors.Allowed's to say, as for the API.
// On an SCN, the Servers page carries its administrator's switch.

type serverSensorsData struct {
	List    api.ServerSensors
	CanEdit bool
	// Editor is the document open for editing, if any.
	Editor *remoteEditor
}

type remoteEditor struct {
	Sensor, Doc string
	Version     int64
	Text        string
	Error       string
	Fields      []api.FieldError
}

// remoteDocs are the documents the editor opens.
var remoteDocs = map[string]bool{"smtp": true, "pop3": true}

// remoteServer checks that req may read (or write) SCN id's sensors and
// returns its tenant.
func (s *Server) remoteServer(r *http.Request, req *request, write bool) error {
	if s.primary == nil || s.remote == nil {
		return store.ErrNotFound
	}
	srv, err := s.primary.Server(r.Context(), req.scope, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !remotesensors.Allowed(req.p, srv.Tenant, write) {
		return errForbidden
	}
	return nil
}

func (s *Server) serverSensorsPage(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := s.remoteServer(r, req, false); err != nil {
		return err
	}
	d, err := s.serverSensorsData(r, req)
	if err != nil {
		return err
	}
	sensor, doc := r.URL.Query().Get("sensor"), r.URL.Query().Get("doc")
	if sensor != "" && remoteDocs[doc] {
		e := &remoteEditor{Sensor: sensor, Doc: doc}
		a, err := s.remote.Call(r.Context(), req.scope, d.List.Server, &ospreyv1.RemoteSensorCall{Sensor: sensor, Document: doc, Caller: req.p.Name})
		switch {
		case err != nil && !errors.Is(err, remotesensors.ErrOffline) && !errors.Is(err, remotesensors.ErrNoAnswer):
			return err
		case err != nil:
			e.Error = err.Error()
		case a.GetHttpStatus() != http.StatusOK:
			e.Error, e.Fields = answerError(a)
		default:
			e.Version, e.Text = a.GetVersion(), indentJSON(a.GetBody())
		}
		d.Editor = e
	}
	s.render(w, http.StatusOK, req, "serversensors", page{Title: "Sensors of " + d.List.Server, Nav: "servers", Data: d})
	return nil
}

func (s *Server) serverSensorsData(r *http.Request, req *request) (*serverSensorsData, error) {
	id := r.PathValue("id")
	list, err := s.remote.Sensors(r.Context(), req.scope, id)
	if err != nil {
		return nil, err
	}
	srv, err := s.primary.Server(r.Context(), req.scope, id)
	if err != nil {
		return nil, err
	}
	return &serverSensorsData{List: list, CanEdit: remotesensors.Allowed(req.p, srv.Tenant, true) && !list.WritesRefused}, nil
}

// serverSensorWrite writes the edited document through the link: back to
// the list once the SCN took it, else the editor again with the SCN's
// errors.
func (s *Server) serverSensorWrite(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := s.remoteServer(r, req, true); err != nil {
		return err
	}
	id, sensor, doc := r.PathValue("id"), r.PathValue("sensor"), r.PathValue("doc")
	if !remoteDocs[doc] {
		return store.ErrNotFound
	}
	version, _ := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	text := r.PostFormValue("document")
	a, err := s.remote.Call(r.Context(), req.scope, id, &ospreyv1.RemoteSensorCall{
		Sensor: sensor, Document: doc, Write: true, Body: []byte(text), IfMatch: max(version, 0), Caller: req.p.Name,
	})
	e := &remoteEditor{Sensor: sensor, Doc: doc, Version: version, Text: text}
	switch {
	case err != nil && !errors.Is(err, remotesensors.ErrOffline) && !errors.Is(err, remotesensors.ErrNoAnswer):
		return err
	case err != nil:
		e.Error = err.Error()
	case a.GetHttpStatus() == http.StatusOK:
		s.flash(req, "ok", "Sensor %s of %s: %s settings written (version %d); its ACK shows below once it applied them.", sensor, id, strings.ToUpper(doc), a.GetVersion())
		redirect(w, r, "/servers/"+id+"/sensors")
		return nil
	default:
		e.Error, e.Fields = answerError(a)
	}
	d, err := s.serverSensorsData(r, req)
	if err != nil {
		return err
	}
	d.Editor = e
	s.render(w, http.StatusOK, req, "serversensors", page{Title: "Sensors of " + id, Nav: "servers", Data: d})
	return nil
}

// answerError is the message and field errors of an SCN's error answer.
func answerError(a *ospreyv1.RemoteSensorAnswer) (string, []api.FieldError) {
	var e api.Error
	if err := json.Unmarshal(a.GetBody(), &e); err != nil || e.Message == "" {
		return "the SCN answered " + http.StatusText(int(a.GetHttpStatus())), nil
	}
	return e.Message, e.Fields
}

func indentJSON(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(b)
	}
	return string(out)
}

// sensorManagement records the SCN administrator's switch.
func (s *Server) sensorManagement(w http.ResponseWriter, r *http.Request, req *request) error {
	on := r.PostFormValue("pcn_writes") == "on"
	m := &ospreyv1.SensorManagement{RefuseWrites: !on, ChangedBy: req.p.Name, ChangedAt: timestamppb.New(s.now())}
	if err := s.store.PutSensorManagement(r.Context(), m); err != nil {
		return err
	}
	if on {
		s.flash(req, "ok", "The PCN may write the settings of this server's sensors.")
	} else {
		s.flash(req, "ok", "The PCN's writes of this server's sensors' settings are refused from now on; it still lists them.")
	}
	redirect(w, r, "/servers")
	return nil
}
