package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// pageSize is the number of sensors on one page of the server list.
const pageSize = 50

// sensorRow is one sensor as the server list shows it.
type sensorRow struct {
	ID, Name, Tenant string
	State            string
	Local            bool
	// Type is what the product calls the sensor: the Sensor component of a
	// Central Node, or a remote sensor.
	Type             string
	Fingerprint      string // SHA-256 of the client certificate, hex
	ShortFingerprint string
	Online           bool
	Node             string
	LastSeen         time.Time
	LastSeenAgo      string
	Applied, Stored  int64
	Sync             string // see syncState
	// ConfigError is the error of the configuration the sensor refused.
	ConfigError string
	// LastError is what fails now (api.Sensor.Faults: a refused
	// configuration, then SMTP, POP3, the spool), LastErrorAt when it
	// last happened.
	LastError   string
	LastErrorAt time.Time
	Software    string
	SMTP, POP3  partState
	Spool       string // the spool's state: ok, low_disk, failing, unknown
	// Problems are the sensor's problems, most urgent first; Alerts and
	// Risks count those of the two most urgent levels.
	Problems      []api.Problem
	Alerts, Risks int
	// Status is the sensor with its status as the API shows it.
	Status api.Sensor
	// Gateway: the sensor runs as a mail gateway (its SMTP mode), or
	// reports a gateway's queue; its Queue page is linked.
	Gateway bool
}

// partState is an integration's state at a glance: its state and, as a
// tooltip, what it serves and its error.
type partState struct {
	State string `json:"state"` // api.IntegrationState, or "unknown"
	Title string `json:"title"`
}

func newPartState(name string, st *api.IntegrationStatus) partState {
	if st == nil {
		return partState{State: string(api.IntegrationUnknown), Title: name + ": not reported yet"}
	}
	title := name + ": " + string(st.State)
	if st.Target != "" {
		title += " · " + st.Target
	}
	if st.LastError != "" {
		title += " · " + st.LastError
	}
	return partState{State: string(st.State), Title: title}
}

// sensorTypeName is the product's name of a sensor type.
func sensorTypeName(t api.SensorType) string {
	if t == api.SensorCentralNodeComponent {
		return "Central node component"
	}
	return "Remote sensor"
}

// shortFingerprint is the start of a fingerprint, to compare by eye; the
// whole of it is the tooltip and on the sensor's page.
func shortFingerprint(fp string) string {
	if len(fp) <= 12 {
		return fp
	}
	return fp[:12] + "…"
}

// syncState compares the version a sensor applied with the stored one:
// "none" (nothing stored yet), "in-sync", "refused" (the sensor refused the
// stored version) or "behind".
func syncState(applied, stored, nack int64, lastErr string) string {
	switch {
	case stored == 0:
		return "none"
	case applied == stored:
		return "in-sync"
	case nack == stored && lastErr != "":
		return "refused"
	}
	return "behind"
}

func newSensorRow(sn *ospreyv1.Sensor, st *ospreyv1.SensorRuntime, now time.Time) sensorRow {
	v := convert.SensorFromProto(sn)
	convert.SensorStatus(&v, st)
	row := sensorRow{
		ID: sn.GetId(), Name: sn.GetName(), Tenant: sn.GetTenant(),
		State: stateName(sn.GetState()), Local: sn.GetLocal(),
		Type:        sensorTypeName(v.Type),
		Fingerprint: v.CertFingerprint, ShortFingerprint: shortFingerprint(v.CertFingerprint),
		Online: v.Online, Node: v.Node, LastSeen: v.LastSeen,
		Applied: v.AppliedVersion, ConfigError: v.LastError, Software: v.SoftwareVersion,
		SMTP: newPartState("SMTP", v.SMTPStatus), POP3: newPartState("POP3", v.POP3Status),
		Spool:    string(api.SpoolUnknown),
		Problems: v.Problems,
		Status:   v,
		Gateway:  v.GatewayStatus != nil,
	}
	if row.Name == "" {
		row.Name = row.ID
	}
	if v.SpoolStatus != nil {
		row.Spool = string(v.SpoolStatus.State)
	}
	if f := v.Faults(); len(f) > 0 {
		row.LastError, row.LastErrorAt = f[0].Part+": "+f[0].Error, f[0].At
	}
	for _, p := range v.Problems {
		switch p.Level {
		case api.ProblemAlert:
			row.Alerts++
		case api.ProblemRisk:
			row.Risks++
		}
	}
	row.LastSeenAgo = ago(now, row.LastSeen)
	return row
}

// fillStored sets the stored configuration version of each row: one read per
// sensor, a few at a time, for one page of the list.
func (s *Server) fillStored(ctx context.Context, sc store.Scope, rows []sensorRow, statuses map[string]*ospreyv1.SensorRuntime) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range rows {
		g.Go(func() error {
			cfg, err := s.store.SensorConfig(ctx, sc, rows[i].ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil // removed since the list was read
			}
			if err != nil {
				return err
			}
			rows[i].Stored = cfg.Version()
			rows[i].Gateway = rows[i].Gateway || gatewayMode(cfg.SMTP)
			st := statuses[rows[i].ID]
			rows[i].Sync = syncState(rows[i].Applied, rows[i].Stored, st.GetNackVersion(), rows[i].ConfigError)
			return nil
		})
	}
	return g.Wait()
}

// sensorFilter is the server list's query: text, state, connection, tenant, page.
type sensorFilter struct {
	Q, State, Conn, Tenant string
	Page                   int
}

func parseSensorFilter(q url.Values) sensorFilter {
	f := sensorFilter{
		Q:      strings.TrimSpace(q.Get("q")),
		State:  q.Get("state"),
		Conn:   q.Get("conn"),
		Tenant: q.Get("tenant"),
	}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	f.Page = max(f.Page, 1)
	return f
}

func (f sensorFilter) match(r sensorRow) bool {
	if f.State != "" && r.State != f.State {
		return false
	}
	if f.Tenant != "" && r.Tenant != f.Tenant {
		return false
	}
	switch f.Conn {
	case "online":
		if !r.Online {
			return false
		}
	case "offline":
		if r.Online {
			return false
		}
	}
	if f.Q != "" {
		q := strings.ToLower(f.Q)
		hay := strings.ToLower(r.ID + " " + r.Name + " " + r.Tenant + " " + r.Node)
		if !strings.Contains(hay, q) {
			return false
		}
	}
	return true
}

// query returns the filter as a query string, for page p.
func (f sensorFilter) query(p int) string {
	v := url.Values{}
	for k, val := range map[string]string{"q": f.Q, "state": f.State, "conn": f.Conn, "tenant": f.Tenant} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

type sensorListData struct {
	Filter   sensorFilter
	Tenants  []*ospreyv1.Tenant
	Rows     []sensorRow
	Pending  []sensorRow
	Total    int // sensors in scope
	Matching int // sensors the filter matches
	First    int // 1-based index of the first row shown
	Last     int
	Page     int
	Pages    int
	PrevURL  string
	NextURL  string
	// Return is this page's URL, for the action forms to come back to.
	Return string
}

func (s *Server) sensorList(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	f := parseSensorFilter(r.URL.Query())
	sensors, err := s.store.ListSensors(ctx, req.scope)
	if err != nil {
		return err
	}
	statuses, err := s.store.Statuses(ctx, req.scope)
	if err != nil {
		return err
	}
	now := s.now()
	d := sensorListData{Filter: f, Total: len(sensors), Return: "/sensors" + f.query(f.Page)}
	var matching []sensorRow
	for _, sn := range sensors {
		row := newSensorRow(sn, statuses[sn.GetId()], now)
		if sn.GetState() == ospreyv1.SensorState_SENSOR_STATE_PENDING {
			d.Pending = append(d.Pending, row)
		}
		if f.match(row) {
			matching = append(matching, row)
		}
	}
	d.Matching = len(matching)
	d.Pages = max(1, (len(matching)+pageSize-1)/pageSize)
	d.Page = min(f.Page, d.Pages)
	start := (d.Page - 1) * pageSize
	end := min(start+pageSize, len(matching))
	d.Rows = matching[start:end]
	d.First, d.Last = start+1, end
	if d.Page > 1 {
		d.PrevURL = "/sensors" + f.query(d.Page-1)
	}
	if d.Page < d.Pages {
		d.NextURL = "/sensors" + f.query(d.Page+1)
	}
	if err := s.fillStored(ctx, req.scope, d.Rows, statuses); err != nil {
		return err
	}
	if req.severalTenants() {
		if d.Tenants, err = s.store.ListTenants(ctx, req.scope); err != nil {
			return err
		}
	}
	s.render(w, http.StatusOK, req, "sensors", page{Title: "Server list", Nav: "sensors", Data: d})
	return nil
}

// liveSensor is one sensor in the server list's live update.
type liveSensor struct {
	ID          string        `json:"id"`
	State       string        `json:"state"`
	Online      bool          `json:"online"`
	Node        string        `json:"node"`
	LastSeen    string        `json:"last_seen"`
	LastSeenAgo string        `json:"last_seen_ago"`
	Applied     int64         `json:"applied_version"`
	Stored      int64         `json:"config_version"`
	Sync        string        `json:"sync"`
	LastError   string        `json:"last_error"`
	LastErrorAt string        `json:"last_error_at"`
	SMTP        partState     `json:"smtp"`
	POP3        partState     `json:"pop3"`
	Spool       string        `json:"spool"`
	Problems    []api.Problem `json:"problems"`
}

type liveList struct {
	Sensors []liveSensor `json:"sensors"`
	// Pending and Total count the sensors in scope, so the page can say when
	// sensors were added since it was loaded.
	Pending int `json:"pending"`
	Total   int `json:"total"`
}

// maxLiveIDs bounds the sensors one live update asks about (a page's worth, and then some).
const maxLiveIDs = 200

// sensorStatus answers the server list's polling: the status of the sensors
// named by id= parameters (those on the page), within the user's scope.
func (s *Server) sensorStatus(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	ids := r.URL.Query()["id"]
	if len(ids) > maxLiveIDs {
		ids = ids[:maxLiveIDs]
	}
	sensors, err := s.store.ListSensors(ctx, req.scope)
	if err != nil {
		return err
	}
	statuses, err := s.store.Statuses(ctx, req.scope)
	if err != nil {
		return err
	}
	now := s.now()
	out := liveList{Sensors: []liveSensor{}, Total: len(sensors)}
	byID := map[string]*ospreyv1.Sensor{}
	for _, sn := range sensors {
		byID[sn.GetId()] = sn
		if sn.GetState() == ospreyv1.SensorState_SENSOR_STATE_PENDING {
			out.Pending++
		}
	}
	var rows []sensorRow
	for _, id := range ids {
		if sn, ok := byID[id]; ok {
			rows = append(rows, newSensorRow(sn, statuses[id], now))
		}
	}
	if err := s.fillStored(ctx, req.scope, rows, statuses); err != nil {
		return err
	}
	for _, row := range rows {
		ls := liveSensor{
			ID: row.ID, State: row.State, Online: row.Online, Node: row.Node,
			LastSeen: formatTime(row.LastSeen), LastSeenAgo: row.LastSeenAgo,
			Applied: row.Applied, Stored: row.Stored, Sync: row.Sync, LastError: row.LastError,
			SMTP: row.SMTP, POP3: row.POP3, Spool: row.Spool, Problems: row.Problems,
		}
		if !row.LastErrorAt.IsZero() {
			ls.LastErrorAt = formatTime(row.LastErrorAt)
		}
		if ls.Problems == nil {
			ls.Problems = []api.Problem{} // the page's script expects a list
		}
		out.Sensors = append(out.Sensors, ls)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) approveSensor(w http.ResponseWriter, r *http.Request, req *request) error {
	return s.setSensorState(w, r, req, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "approved")
}

// rejectSensor refuses a pending sensor: it is revoked, and stays so until
// an administrator approves it.
func (s *Server) rejectSensor(w http.ResponseWriter, r *http.Request, req *request) error {
	return s.setSensorState(w, r, req, ospreyv1.SensorState_SENSOR_STATE_REVOKED, "rejected")
}

func (s *Server) revokeSensor(w http.ResponseWriter, r *http.Request, req *request) error {
	return s.setSensorState(w, r, req, ospreyv1.SensorState_SENSOR_STATE_REVOKED, "revoked")
}

// setSensorState moves a sensor to state as the API does, retrying when a
// concurrent write (an enrollment renewal, another administrator) changed the
// record in between, and goes back to the list with a message.
func (s *Server) setSensorState(w http.ResponseWriter, r *http.Request, req *request, state ospreyv1.SensorState, verb string) error {
	id := r.PathValue("id")
	back := localPath(r.PostFormValue("return"), "/sensors")
	for attempt := 0; ; attempt++ {
		sn, version, err := s.store.GetSensor(r.Context(), req.scope, id)
		if err != nil {
			return err
		}
		if sn.GetLocal() && state == ospreyv1.SensorState_SENSOR_STATE_REVOKED {
			s.flash(req, "error", "Sensor %s is the Sensor component of a Central Node; it cannot be %s.", id, verb)
			redirect(w, r, back)
			return nil
		}
		if sn.GetState() != state {
			sn.State = state
			_, err = s.store.UpdateSensor(r.Context(), req.scope, sn, version)
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("set sensor %s %s: %w", id, state, err)
			}
		}
		s.log.InfoContext(r.Context(), "sensor state changed", "sensor", id, "state", stateName(state), "user", req.p.Name)
		s.flash(req, "ok", "Sensor %s %s.", id, verb)
		redirect(w, r, back)
		return nil
	}
}
