package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The Queue page of a gateway sensor: the sending and receiving switches
// and the depth of its delivery queue, and the queue's messages, filtered
// and paged. The queue lives on the sensor's disk, so the page asks the
// sensor for it (sensorrpc.Ask, as the API does) each time it is shown,
// and every action is a request to the sensor: a POST that redirects back
// to the page with its filter, saying in a flash what the sensor did or
// why not. A sensor that is not connected, or that refuses, is a notice on
// the page, never an error page.
//
// The switches and depth come with the listing, read from the sensor at
// the same time, so "stop sending" shows stopped as soon as the page is
// back; when the sensor cannot be asked, the page shows its last status
// report's.

// queuePageSize is the number of messages on one page of the queue.
const queuePageSize = 50

// queueFilter is the Queue page's query, as typed. Its URL parameters are
// the API's (GET /api/v1/sensors/{id}/queue), so that the field errors of
// sensorrpc.QueueListRequest name them.
type queueFilter struct {
	State, Sender, Recipient, NextHop string
	MinAge, MaxAge                    string // durations: "15m", "4h"
	Token                             string
}

func parseQueueFilter(q url.Values) queueFilter {
	get := func(name string) string { return strings.TrimSpace(q.Get(name)) }
	return queueFilter{State: get("state"), Sender: get("sender"), Recipient: get("recipient"), NextHop: get("next_hop"),
		MinAge: get("min_age"), MaxAge: get("max_age"), Token: q.Get("page_token")}
}

// values are the filter's URL parameters, with the page that token starts.
func (f queueFilter) values(token string) url.Values {
	v := url.Values{}
	for _, p := range [][2]string{{"state", f.State}, {"sender", f.Sender}, {"recipient", f.Recipient},
		{"next_hop", f.NextHop}, {"min_age", f.MinAge}, {"max_age", f.MaxAge}, {"page_token", token}} {
		if p[1] != "" {
			v.Set(p[0], p[1])
		}
	}
	return v
}

// url is the Queue page of sensor id with this filter, on the page that
// token starts.
func (f queueFilter) url(id, token string) string {
	u := queueURL(id)
	if v := f.values(token); len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

// Filtered reports whether any filter is set.
func (f queueFilter) Filtered() bool { return len(f.values("")) > 0 }

func queueURL(id string) string { return "/sensors/" + url.PathEscape(id) + "/queue" }

var queueFilterFields = map[string]formField{
	"state":      {"State", "q-state"},
	"sender":     {"Sender", "q-sender"},
	"recipient":  {"Recipient", "q-recipient"},
	"next_hop":   {"Next hop", "q-next-hop"},
	"min_age":    {"Older than", "q-min-age"},
	"max_age":    {"Younger than", "q-max-age"},
	"page_token": {"Page", ""},
	"limit":      {"Page size", ""},
}

// queueStates are the states a recipient waits in, for the filter.
var queueStates = []choice{
	{string(api.QueueActive), "active (not tried yet, or being tried)"},
	{string(api.QueueDeferred), "deferred (waiting to be tried again)"},
	{string(api.QueueHeld), "held (by an operator)"},
	{string(api.QueueQuarantined), "quarantined (by its verdict)"},
}

func queueFields(f queueFilter, errs *fieldErrors) []filterField {
	input := func(name, value, placeholder string) filterField {
		ff := queueFilterFields[name]
		return filterField{Label: ff.label, ID: ff.id, Name: name, Value: value, Type: "search", Placeholder: placeholder,
			Errors: errs.For(name)}
	}
	return []filterField{
		{Label: "State", ID: "q-state", Name: "state", Value: f.State, Select: true, Any: "Any",
			Options: withCurrent(queueStates, f.State), Errors: errs.For("state")},
		input("sender", f.Sender, "Any part"),
		input("recipient", f.Recipient, "Any part"),
		input("next_hop", f.NextHop, "route:example.com"),
		input("min_age", f.MinAge, "15m"),
		input("max_age", f.MaxAge, "4h"),
	}
}

// queueRow is one queued message as the page shows it; each recipient is
// a line of its own.
type queueRow struct {
	ID, Sender string
	// Notice names a notice of the gateway's own ("failure notice").
	Notice     string
	Arrival    time.Time
	Size       string
	Direction  string
	Verdict    string
	Unscanned  bool
	Recipients []queueRecipient
	// What the actions may do: retry and hold need a recipient waiting
	// (active or deferred), release a held or quarantined one.
	Waiting, Kept bool
}

type queueRecipient struct {
	Address, NextHop, State string
	Attempts                uint32
	NextAttempt             time.Time
	// NextIn says when NextAttempt is from now ("in 53 min").
	NextIn      string
	LastAttempt time.Time
	// Reply is the last reply ("451 4.3.0 try later"), Host who gave it.
	Reply, Host string
}

// ShortID is the start of the message's id, to tell messages apart by eye.
func (r queueRow) ShortID() string { return shortFingerprint(r.ID) }

func newQueueRow(m api.QueuedMessage, now time.Time) queueRow {
	row := queueRow{ID: m.ID, Sender: short(m.Sender), Arrival: m.Arrival, Size: formatSize(m.Size),
		Direction: m.Direction, Verdict: short(m.Verdict), Unscanned: m.Unscanned}
	if row.Sender == "" {
		row.Sender = "<>" // the null sender
	}
	switch m.Kind {
	case "failure":
		row.Notice = "failure notice"
	case "delay":
		row.Notice = "delay notice"
	case "":
	default:
		row.Notice = short(m.Kind)
	}
	for _, r := range m.Recipients {
		reply := ""
		if r.LastCode != 0 {
			reply = strings.Join(strings.Fields(fmt.Sprintf("%d %s %s", r.LastCode, r.LastEnhanced, r.LastText)), " ")
		} else if r.LastText != "" {
			reply = r.LastText
		}
		row.Recipients = append(row.Recipients, queueRecipient{
			Address: short(r.Address), NextHop: short(r.NextHop), State: string(r.State), Attempts: r.Attempts,
			NextAttempt: r.NextAttempt, NextIn: until(now, r.NextAttempt), LastAttempt: r.LastAttempt,
			Reply: short(reply), Host: short(r.LastHost),
		})
		switch r.State {
		case api.QueueActive, api.QueueDeferred:
			row.Waiting = true
		case api.QueueHeld, api.QueueQuarantined:
			row.Kept = true
		}
	}
	if len(row.Recipients) == 0 { // the queue keeps none such; the table needs a line
		row.Recipients = []queueRecipient{{Address: "(no recipient)"}}
	}
	return row
}

// Rows is how many table rows the message takes: one a recipient.
func (r queueRow) Rows() int { return len(r.Recipients) }

// gatewayView is a gateway's switches and depth, and where they come from.
type gatewayView struct {
	api.GatewayStatus
	At time.Time
	// Answer: read from the sensor with the listing, not from its last
	// status report (the sensor could not be asked).
	Answer bool
}

type queueData struct {
	Sensor sensorHead
	// Gateway is nil before the sensor reported a gateway's state.
	Gateway *gatewayView
	Filter  queueFilter
	Fields  []filterField
	Errs    *fieldErrors
	// Problem is why the sensor did not list its queue.
	Problem string
	Listed  bool
	Rows    []queueRow
	// FirstURL leads back to the first page when this is a later one;
	// NextURL to the next when there is one.
	FirstURL, NextURL string
	// Return is this page's URL, for the action forms to come back to.
	Return string
}

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return err
	}
	f := parseQueueFilter(r.URL.Query())
	d := queueData{Sensor: head, Filter: f, Return: f.url(id, f.Token)}
	if g := head.Status.GatewayStatus; g != nil {
		d.Gateway = &gatewayView{GatewayStatus: *g, At: head.Status.StatusAt}
	}
	if f.Token != "" {
		d.FirstURL = f.url(id, "")
	}
	status := http.StatusOK
	v := f.values(f.Token)
	v.Set("limit", fmt.Sprint(queuePageSize))
	list, verrs := sensorrpc.QueueListRequest(v)
	problems := fieldErrorsOf(verrs)
	if len(problems) == 0 {
		rep, err := s.askSensor(r, req, id, &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueList{QueueList: list}})
		var refused *sensorrpc.RefusedError
		switch {
		case errors.As(err, &refused) && refused.Code == ospreyv1.SensorError_CODE_INVALID:
			// The sensor's words start with the field they are about
			// ("page_token: ...").
			field, msg, _ := strings.Cut(refused.Message, ": ")
			if _, known := queueFilterFields[field]; !known {
				field, msg = "", refused.Message
			}
			problems = append(problems, fieldError{Field: field, Message: display(msg)})
		case err != nil:
			code, msg, ok := askProblem(id, err)
			if !ok {
				return err
			}
			status, d.Problem = code, msg
		default:
			d.Listed = true
			page := rep.GetQueuePage()
			if g := convert.GatewayStatusFromProto(page.GetGateway()); g != nil {
				d.Gateway = &gatewayView{GatewayStatus: *g, At: s.now(), Answer: true}
			}
			for _, e := range page.GetEntries() {
				d.Rows = append(d.Rows, newQueueRow(convert.QueuedMessageFromProto(e), s.now()))
			}
			if t := page.GetNextPageToken(); t != "" {
				d.NextURL = f.url(id, t)
			}
		}
	}
	if len(problems) > 0 {
		status = http.StatusBadRequest
		d.Errs = newFieldErrors(problems, queueFilterFields, nil)
	}
	d.Fields = queueFields(f, d.Errs)
	s.render(w, status, req, "queue", page{Title: head.Name + " · Queue", Nav: "sensors", Data: d})
	return nil
}

// queueActions are the actions on one queued message, by the last part of
// their path, with what the page says once the sensor did it.
var queueActions = map[string]struct {
	action ospreyv1.QueueAction
	done   string
}{
	"retry":      {ospreyv1.QueueAction_QUEUE_ACTION_RETRY, "Message %s: its waiting recipients are tried now."},
	"hold":       {ospreyv1.QueueAction_QUEUE_ACTION_HOLD, "Message %s held: it is not delivered until it is released."},
	"release":    {ospreyv1.QueueAction_QUEUE_ACTION_RELEASE, "Message %s released: it is delivered again."},
	"delete":     {ospreyv1.QueueAction_QUEUE_ACTION_DELETE, "Message %s deleted from the queue; its sender was not told."},
	"delete-dsn": {ospreyv1.QueueAction_QUEUE_ACTION_DELETE_WITH_DSN, "Message %s deleted from the queue; its sender gets a failure notice."},
}

func (s *Server) queueAction(w http.ResponseWriter, r *http.Request, req *request) error {
	msg := r.PathValue("msg")
	a, ok := queueActions[r.PathValue("action")]
	if !ok {
		return store.ErrNotFound
	}
	return s.queueRequest(w, r, req, &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_QueueAction{QueueAction: &ospreyv1.QueueActionRequest{MessageId: msg, Action: a.action}}},
		func(*api.GatewayStatus) string { return fmt.Sprintf(a.done, short(msg)) })
}

// gatewayControls are the controls of a gateway as a whole, by the last
// part of their path, with what the page says once the sensor did it.
var gatewayControls = map[string]struct {
	control ospreyv1.GatewayControl
	done    string
}{
	"stop-sending":     {ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_SENDING, "Sending stopped: mail stays in the queue until sending resumes, across restarts of the sensor."},
	"resume-sending":   {ospreyv1.GatewayControl_GATEWAY_CONTROL_RESUME_SENDING, "Sending resumed."},
	"stop-receiving":   {ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_RECEIVING, "Receiving stopped: the gateway's listeners answer 421 until receiving resumes, across restarts of the sensor."},
	"resume-receiving": {ospreyv1.GatewayControl_GATEWAY_CONTROL_RESUME_RECEIVING, "Receiving resumed."},
	"flush":            {ospreyv1.GatewayControl_GATEWAY_CONTROL_FLUSH, "Queue flushed: every waiting recipient is tried now."},
}

func (s *Server) gatewayControl(w http.ResponseWriter, r *http.Request, req *request) error {
	c, ok := gatewayControls[r.PathValue("control")]
	if !ok {
		return store.ErrNotFound
	}
	return s.queueRequest(w, r, req, &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_Control{Control: &ospreyv1.GatewayControlRequest{Control: c.control}}},
		func(st *api.GatewayStatus) string {
			if c.control == ospreyv1.GatewayControl_GATEWAY_CONTROL_FLUSH && st != nil && !st.Sending {
				return "Queue flushed: every waiting recipient is tried once sending resumes."
			}
			return c.done
		})
}

// queueRequest hands sreq to the sensor of the Queue page a form was
// posted from, and goes back to that page saying what the sensor did
// (done, given the gateway state the reply carries, nil when it carries
// none) or why it did nothing. It returns the errors that are not the
// sensor's doing (the store's, such as not found).
func (s *Server) queueRequest(w http.ResponseWriter, r *http.Request, req *request, sreq *ospreyv1.SensorRequest,
	done func(*api.GatewayStatus) string) error {
	id := r.PathValue("id")
	rep, err := s.askSensor(r, req, id, sreq)
	if err != nil {
		_, msg, ok := askProblem(id, err)
		if !ok {
			return err
		}
		s.flash(req, "error", "%s", msg)
		redirect(w, r, queueReturn(r, id))
		return nil
	}
	// Controls and deletions answer with the switches and the depth.
	st := convert.GatewayStatusFromProto(rep.GetGateway())
	s.log.InfoContext(r.Context(), "sensor did an operator's request", "sensor", id, "request", r.URL.Path, "user", req.p.Name)
	s.flash(req, "ok", "%s", done(st))
	redirect(w, r, queueReturn(r, id))
	return nil
}

// queueReturn is the page an action's form came from: sensor id's Queue
// page with its filter, or that page without one.
func queueReturn(r *http.Request, id string) string {
	back := localPath(r.PostFormValue("return"), queueURL(id))
	if back != queueURL(id) && !strings.HasPrefix(back, queueURL(id)+"?") {
		return queueURL(id)
	}
	return back
}

// errNoRequests is a node without a way to its sensors.
var errNoRequests = errors.New("this node does not forward requests to sensors")

// askSensor hands req to sensor id through sensorrpc.Ask, in the user's
// scope.
func (s *Server) askSensor(r *http.Request, req *request, id string, sreq *ospreyv1.SensorRequest) (*ospreyv1.SensorReply, error) {
	if s.requests == nil {
		return nil, errNoRequests
	}
	return s.requests.Ask(r.Context(), s.store, req.scope, id, sreq)
}

// askProblem says, for the page, why asking sensor id failed, with the
// status of a page that shows it; ok is false for an error that is not
// about the sensor (the store's), which the handler returns.
func askProblem(id string, err error) (status int, msg string, ok bool) {
	var refused *sensorrpc.RefusedError
	switch {
	case errors.Is(err, sensorrpc.ErrOffline):
		return http.StatusServiceUnavailable, fmt.Sprintf("Sensor %s is not connected: its queue shows when it is back.", id), true
	case errors.Is(err, sensorrpc.ErrUnavailable):
		return http.StatusServiceUnavailable, fmt.Sprintf("Sensor %s did not answer in time. Try again.", id), true
	case errors.Is(err, errNoRequests):
		return http.StatusServiceUnavailable, "This node does not forward requests to sensors, so it cannot show their queues.", true
	case errors.As(err, &refused):
		switch refused.Code {
		case ospreyv1.SensorError_CODE_NOT_FOUND:
			return http.StatusNotFound, "That message is not in the queue any more: it was delivered, bounced or deleted meanwhile.", true
		case ospreyv1.SensorError_CODE_INVALID:
			return http.StatusBadRequest, "The sensor refused the request: " + display(refused.Message), true
		case ospreyv1.SensorError_CODE_UNAVAILABLE:
			return http.StatusConflict, "The sensor cannot do this now: " + display(refused.Message), true
		}
		return http.StatusBadGateway, "The sensor failed: " + display(refused.Message), true
	}
	return 0, "", false
}

// gatewayMode reports whether an SMTP integration runs as a gateway.
func gatewayMode(smtp *ospreyv1.SmtpIntegration) bool {
	switch smtp.GetMode() {
	case ospreyv1.SmtpMode_SMTP_MODE_INBOUND, ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND:
		return true
	}
	return false
}
