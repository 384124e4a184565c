package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The Quarantine pages: what the gateways hold in their quarantines,
// listed across the sensors of the user's scope from the SQL store
// (quarantine.Service.List), newest first, filtered and paged with the
// store's page tokens; and one message's page, with its history and a
// preview its sensor is asked for each time the page is shown. Release,
// release to other addresses and delete are POSTs that come back to the
// message's page saying in a flash what was done, or that the action
// waits for a sensor that is not connected (the service carries it out
// once the sensor is back). The .eml download streams from the sensor
// through this node, behind the session like every other page.
//
// Everything shown of a message was written by its sender, so each value
// goes through display or short and reaches the page as text: the
// preview's text part, HTML included, is shown in a <pre> as its source,
// never rendered.

// quarantinePageSize is the number of messages on one page of the list.
const quarantinePageSize = 50

// quarantineFilter is the Quarantine page's query, as typed. Its URL
// parameters are the API's (GET /api/v1/quarantine).
type quarantineFilter struct {
	Tenant, Sensor, State      string
	Sender, Recipient, Subject string
	Since                      string // as typed: "2026-03-01T09:30", "2026-03-01" or RFC 3339, in UTC
	Token                      string
}

func parseQuarantineFilter(q url.Values) quarantineFilter {
	get := func(name string) string { return strings.TrimSpace(q.Get(name)) }
	return quarantineFilter{Tenant: get("tenant"), Sensor: get("sensor"), State: get("state"), Sender: get("sender"),
		Recipient: get("recipient"), Subject: get("subject"), Since: get("since"), Token: q.Get("page_token")}
}

// params are the filter's URL parameters, in the form's order.
func (f quarantineFilter) params() [][2]string {
	return [][2]string{{"tenant", f.Tenant}, {"sensor", f.Sensor}, {"state", f.State}, {"sender", f.Sender},
		{"recipient", f.Recipient}, {"subject", f.Subject}, {"since", f.Since}}
}

// url is the list's URL with this filter, on the page that token starts.
func (f quarantineFilter) url(token string) string {
	return filterURL("/quarantine", f.params(), token)
}

// Filtered reports whether any filter is set.
func (f quarantineFilter) Filtered() bool { return anySet(f.params()) }

// quarantineStates are the states of a quarantined message, for the
// filter; the first is the one it is listed in while its sensor holds it.
var quarantineStates = []choice{
	{sqlstore.QuarantineHeld, "quarantined (held on its sensor)"},
	{sqlstore.QuarantineReleased, "released"},
	{sqlstore.QuarantineDeleted, "deleted"},
	{sqlstore.QuarantineEvicted, "evicted (by the quarantine's bounds)"},
	{sqlstore.QuarantineNotHeld, "not held (nothing was left to hold)"},
}

// query turns the filter into the store's query, or the errors of the
// fields that cannot be read.
func (f quarantineFilter) query(limit int) (sqlstore.QuarantineQuery, []fieldError) {
	q := sqlstore.QuarantineQuery{Tenant: f.Tenant, SensorID: f.Sensor, State: f.State, Sender: f.Sender, Rcpt: f.Recipient,
		Subject: f.Subject, Limit: limit, After: f.Token}
	var errs []fieldError
	if f.State != "" && !slices.ContainsFunc(quarantineStates, func(c choice) bool { return c.Value == f.State }) {
		errs = append(errs, fieldError{"state", "must be one of the states listed"})
	}
	if f.Since != "" {
		t, ok := parseUTC(f.Since)
		if !ok {
			errs = append(errs, fieldError{"since", "not a time: use the date picker, or write 2026-03-01T09:30 (UTC)"})
		}
		q.Since = t
	}
	return q, errs
}

var quarantineFilterFields = map[string]formField{
	"tenant":     {"Tenant", "qf-tenant"},
	"sensor":     {"Sensor", "qf-sensor"},
	"state":      {"State", "qf-state"},
	"sender":     {"Sender", "qf-sender"},
	"recipient":  {"Recipient", "qf-recipient"},
	"subject":    {"Subject", "qf-subject"},
	"since":      {"Since (UTC)", "qf-since"},
	"page_token": {"Page", ""},
}

// quarantineFields are the filter form's fields, with f's values and the
// errors of each; tenants is nil for a user of one tenant, who has no
// tenant field.
func quarantineFields(f quarantineFilter, sensors, tenants []choice, errs *fieldErrors) []filterField {
	input := func(name, value, typ, placeholder string) filterField {
		ff := quarantineFilterFields[name]
		return filterField{Label: ff.label, ID: ff.id, Name: name, Value: value, Type: typ, Placeholder: placeholder,
			Errors: errs.For(name)}
	}
	sel := func(name, value, anyLabel string, options []choice) filterField {
		ff := quarantineFilterFields[name]
		return filterField{Label: ff.label, ID: ff.id, Name: name, Value: value, Select: true, Any: anyLabel,
			Options: withCurrent(options, value), Errors: errs.For(name)}
	}
	var fields []filterField
	if tenants != nil {
		fields = append(fields, sel("tenant", f.Tenant, "All tenants", tenants))
	}
	return append(fields,
		sel("sensor", f.Sensor, "Any", sensors),
		sel("state", f.State, "Any", quarantineStates),
		input("sender", f.Sender, "search", "Any part"),
		input("recipient", f.Recipient, "search", "Any part"),
		input("subject", f.Subject, "search", "Any part"),
		input("since", f.Since, "datetime-local", ""),
	)
}

// quarantineRow is one quarantined message as the list, and the top of
// its own page, show it.
type quarantineRow struct {
	At                 time.Time
	Tenant             string
	SensorID, Sensor   string // the sensor's id, and its name (or id)
	MessageID, ShortID string
	Sender             string
	Rcpts              string
	MoreRcpt           int
	Subject            string
	Reason, Verdict    string
	Direction          string
	Size               string
	State, StateLabel  string
	// Unavailable: held on a sensor that is not connected, so that its
	// preview, download and actions wait for the sensor.
	Unavailable bool
	// Pending says what action waits for the sensor, and who asked.
	Pending string
	URL     string
}

func newQuarantineRow(m quarantine.Message, names map[string]string) quarantineRow {
	row := quarantineRow{
		At: m.At, Tenant: m.Tenant, SensorID: m.SensorID, Sensor: m.SensorID, MessageID: m.MessageID,
		ShortID: shortFingerprint(m.MessageID), Sender: short(m.Sender), Subject: short(m.Subject),
		Reason: short(m.Reason), Verdict: short(m.Verdict), Direction: m.Direction, Size: formatSize(m.Size),
		State: m.State, StateLabel: quarantineStateLabel(m.State),
		Unavailable: m.State == sqlstore.QuarantineHeld && !m.Available,
		URL:         quarantineMessageURL(m.SensorID, m.MessageID),
	}
	if name := names[m.SensorID]; name != "" {
		row.Sensor = name
	}
	if row.Sender == "" {
		row.Sender = "<>" // the null sender
	}
	row.Rcpts, row.MoreRcpt = rcptList(m.Rcpts)
	if m.Pending != "" {
		row.Pending = pendingText(m.Pending, m.PendingTo) + " waits for the sensor"
		if m.PendingBy != "" {
			row.Pending += " (asked by " + short(m.PendingBy) + ")"
		}
	}
	return row
}

// quarantineStateLabel is a state as a badge says it.
func quarantineStateLabel(state string) string {
	if state == sqlstore.QuarantineNotHeld {
		return "not held"
	}
	return display(state)
}

// pendingText names an action waiting for its sensor.
func pendingText(action string, to []string) string {
	switch action {
	case quarantine.ActionRelease:
		return "Release"
	case quarantine.ActionReleaseTo:
		return "Release to " + short(strings.Join(to, ", "))
	case quarantine.ActionDelete:
		return "Deletion"
	}
	return short(action)
}

func quarantineMessageURL(sensor, msg string) string {
	return "/quarantine/" + url.PathEscape(sensor) + "/" + url.PathEscape(msg)
}

type quarantineListData struct {
	Filter quarantineFilter
	Fields []filterField
	Errs   *fieldErrors
	Rows   []quarantineRow
	// FirstURL leads back to the newest messages when this is a later
	// page; NextURL to older ones when there are more.
	FirstURL, NextURL string
}

// errNoQuarantine is a node without the quarantine service.
var errNoQuarantine = errors.New("this node has no quarantine service")

func (s *Server) quarantineList(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.quarantine == nil {
		return errNoQuarantine
	}
	ctx := r.Context()
	f := parseQuarantineFilter(r.URL.Query())
	if !req.severalTenants() {
		f.Tenant = "" // a tenant operator's quarantine is their tenant's
	}
	names, sensors, err := s.sensorNames(ctx, req.scope)
	if err != nil {
		return err
	}
	tenants, err := s.tenantChoices(ctx, req.scope)
	if err != nil {
		return err
	}
	q, problems := f.query(quarantinePageSize)
	if !q.Since.IsZero() {
		f.Since = pickerTime(q.Since) // as the date picker writes it
	}
	d := quarantineListData{Filter: f}
	if len(problems) == 0 {
		msgs, next, err := s.quarantine.List(ctx, req.scope, q)
		switch {
		case errors.Is(err, sqlstore.ErrInvalidCursor):
			problems = append(problems, fieldError{"page_token", "not a page of this list: start again from the newest"})
		case err != nil:
			return err
		default:
			here := f.url(f.Token)
			for _, m := range msgs {
				row := newQuarantineRow(m, names)
				if here != "/quarantine" {
					row.URL += "?back=" + url.QueryEscape(here)
				}
				d.Rows = append(d.Rows, row)
			}
			if next != "" {
				d.NextURL = f.url(next)
			}
		}
	}
	status := http.StatusOK
	if len(problems) > 0 {
		status = http.StatusBadRequest
		d.Errs = newFieldErrors(problems, quarantineFilterFields, nil)
	}
	if f.Token != "" {
		d.FirstURL = f.url("")
	}
	d.Fields = quarantineFields(f, sensors, tenants, d.Errs)
	s.render(w, status, req, "quarantine", page{Title: "Quarantine", Nav: "quarantine", Data: d})
	return nil
}

// ---- One message ----

type quarantineMessageData struct {
	quarantineRow
	Recipients []string
	History    []quarantineEventView
	// Held: its sensor holds it, so it may be previewed, downloaded,
	// released or deleted.
	Held         bool
	Preview      *previewView
	PreviewError string
	// Back is the page of the list the message was opened from, when it
	// was; Return this page's URL, for the action forms to come back to.
	Back, Return string
}

type quarantineEventView struct {
	At                    time.Time
	Action, Label, Detail string
	Actor                 string
}

// quarantineEventLabels say what each step of a message's history was.
var quarantineEventLabels = map[string]string{
	sqlstore.QuarantineHeld:    "Quarantined",
	quarantine.ActionRelease:   "Release asked",
	quarantine.ActionReleaseTo: "Release to other addresses asked",
	quarantine.ActionDelete:    "Deletion asked",
	"released":                 "Released to its recipients",
	"released_to":              "Copy released to",
	"deleted":                  "Deleted",
	sqlstore.QuarantineEvicted: "Evicted by the quarantine's bounds",
	sqlstore.QuarantineNotHeld: "Not held by the sensor",
}

// previewView is a sensor's preview of a message, as text for the page.
type previewView struct {
	Headers       []headerFieldView
	Text          string
	TextType      string
	TextTruncated bool
	Attachments   []previewAttachment
	Notes         []string
}

type headerFieldView struct{ Name, Value string }

type previewAttachment struct {
	Filename, ContentType, Size, SHA256 string
}

func newPreviewView(p *ospreyv1.MessagePreview) *previewView {
	if p == nil {
		return nil
	}
	v := &previewView{Text: displayText(p.GetText()), TextType: display(p.GetTextType()), TextTruncated: p.GetTextTruncated(),
		Notes: displayAll(p.GetNotes())}
	for _, h := range p.GetHeaders() {
		v.Headers = append(v.Headers, headerFieldView{Name: display(h.GetName()), Value: display(h.GetValue())})
	}
	for _, a := range p.GetAttachments() {
		v.Attachments = append(v.Attachments, previewAttachment{Filename: display(a.GetFilename()), ContentType: display(a.GetContentType()),
			Size: formatSize(a.GetSize()), SHA256: display(a.GetSha256())})
	}
	return v
}

// displayText is display for the lines of a text: line breaks (CRLF or
// LF) and tabs are kept, every other hidden character is shown escaped.
func displayText(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = display(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}

func (s *Server) quarantineMessagePage(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.quarantine == nil {
		return errNoQuarantine
	}
	ctx := r.Context()
	sensor, id := r.PathValue("sensor"), r.PathValue("msg")
	det, err := s.quarantine.Get(ctx, req.scope, sensor, id, true)
	if err != nil {
		return err
	}
	names, _, err := s.sensorNames(ctx, req.scope)
	if err != nil {
		return err
	}
	d := quarantineMessageData{
		quarantineRow: newQuarantineRow(det.Message, names), Recipients: displayAll(det.Rcpts),
		Held: det.State == sqlstore.QuarantineHeld, Preview: newPreviewView(det.Preview), PreviewError: display(det.PreviewError),
		Return: r.URL.RequestURI(),
	}
	for _, e := range det.History {
		label := quarantineEventLabels[e.Action]
		if label == "" {
			label = display(e.Action)
		}
		d.History = append(d.History, quarantineEventView{At: e.At, Action: e.Action, Label: label, Detail: display(e.Detail),
			Actor: display(e.Actor)})
	}
	if back := r.URL.Query().Get("back"); back == "/quarantine" || strings.HasPrefix(back, "/quarantine?") {
		d.Back = localPath(back, "")
	}
	title := "Quarantine · message"
	if d.Subject != "" {
		title = "Quarantine · " + d.Subject
	}
	s.render(w, http.StatusOK, req, "quarantinemsg", page{Title: title, Nav: "quarantine", Data: d})
	return nil
}

// quarantineActions are the actions on a quarantined message, by the
// last part of their path.
var quarantineActions = map[string]string{
	"release":    quarantine.ActionRelease,
	"release-to": quarantine.ActionReleaseTo,
	"delete":     quarantine.ActionDelete,
}

// quarantineAction does what the message page's form asks, and goes back
// to that page saying what was done, that it waits for the sensor, or why
// nothing was done.
func (s *Server) quarantineAction(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.quarantine == nil {
		return errNoQuarantine
	}
	action, ok := quarantineActions[r.PathValue("action")]
	if !ok {
		return store.ErrNotFound
	}
	sensor, id := r.PathValue("sensor"), r.PathValue("msg")
	here := quarantineMessageURL(sensor, id)
	back := localPath(r.PostFormValue("return"), here)
	if back != here && !strings.HasPrefix(back, here+"?") {
		back = here
	}
	var to []string
	if action == quarantine.ActionReleaseTo {
		to = (&formReader{r: r}).list("to")
		if len(to) == 0 {
			s.flash(req, "error", "Nothing was done: give the addresses to release a copy to.")
			redirect(w, r, back)
			return nil
		}
	}
	out, err := s.quarantine.Act(r.Context(), req.scope, req.p.Name, sensor, id, action, to)
	if err != nil {
		_, msg, ok := quarantineProblem(sensor, err)
		if !ok {
			return err
		}
		s.flash(req, "error", "%s", msg)
		redirect(w, r, back)
		return nil
	}
	sid := shortFingerprint(id)
	switch {
	case !out.Done:
		s.flash(req, "ok", "%s of message %s waits for the sensor: sensor %s is not connected, and it is carried out when the sensor is back.",
			pendingText(action, to), sid, sensor)
	case action == quarantine.ActionRelease:
		s.flash(req, "ok", "Message %s released: it is delivered to its recipients%s.", sid, queuedAs(out.QueueID))
	case action == quarantine.ActionReleaseTo:
		s.flash(req, "ok", "A copy of message %s released to %s%s; the message stays in the quarantine.", sid,
			display(strings.Join(to, ", ")), queuedAs(out.QueueID))
	default:
		s.flash(req, "ok", "Message %s deleted from the quarantine.", sid)
	}
	redirect(w, r, back)
	return nil
}

func queuedAs(queueID string) string {
	if queueID == "" {
		return ""
	}
	return " (queued as " + shortFingerprint(display(queueID)) + ")"
}

// quarantineProblem says, for the page, why an action on (or a download
// of) a quarantined message of sensor did nothing, with the status of a
// page that shows it; ok is false for an error that is not about the
// quarantine or the sensor (the store's), which the handler returns.
func quarantineProblem(sensor string, err error) (status int, msg string, ok bool) {
	var refused *sensorrpc.RefusedError
	switch {
	case errors.Is(err, quarantine.ErrNotHeld):
		return http.StatusConflict, "Nothing was done: the message is no longer in the quarantine (it was released, deleted or evicted meanwhile).", true
	case errors.Is(err, quarantine.ErrInvalid):
		return http.StatusBadRequest, "Nothing was done: " + display(err.Error()) + ".", true
	case errors.Is(err, sensorrpc.ErrOffline):
		return http.StatusServiceUnavailable, fmt.Sprintf("Sensor %s is not connected: the message is on the sensor, and can be downloaded once it is back.", sensor), true
	case errors.Is(err, sensorrpc.ErrUnavailable):
		return http.StatusServiceUnavailable, fmt.Sprintf("Sensor %s did not answer in time. Try again.", sensor), true
	case errors.As(err, &refused):
		switch refused.Code {
		case ospreyv1.SensorError_CODE_NOT_FOUND:
			return http.StatusNotFound, "Nothing was done: the sensor no longer holds the message.", true
		case ospreyv1.SensorError_CODE_INVALID:
			return http.StatusBadRequest, "The sensor refused: " + display(refused.Message), true
		case ospreyv1.SensorError_CODE_UNAVAILABLE:
			return http.StatusConflict, "The sensor cannot do this now: " + display(refused.Message), true
		}
		return http.StatusBadGateway, "The sensor failed: " + display(refused.Message), true
	}
	return 0, "", false
}

// quarantineDownload serves a quarantined message as it arrived, read
// from its sensor in pieces, as an .eml attachment.
func (s *Server) quarantineDownload(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.quarantine == nil {
		return errNoQuarantine
	}
	sensor, id := r.PathValue("sensor"), r.PathValue("msg")
	started := false
	err := s.quarantine.Download(r.Context(), req.scope, sensor, id, func(size int64) {
		started = true
		quarantine.StartDownload(w, sensor, id, size)
	}, w)
	if err != nil && started {
		// The status went out: cut the response short, so the browser
		// sees fewer bytes than Content-Length promised.
		s.log.WarnContext(r.Context(), "quarantine download cut short", "sensor", sensor, "message", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		status, msg, ok := quarantineProblem(sensor, err)
		if !ok {
			return err
		}
		s.renderError(w, r, req, status, msg)
		return nil
	}
	s.log.InfoContext(r.Context(), "quarantined message downloaded", "sensor", sensor, "message", id, "user", req.p.Name)
	return nil
}
