package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The Audit log pages: the message audit log of the SQL store
// (sqlstore.ListAudit), every message a sensor accepted, every attempt
// it refused and every attempt of a gateway sensor to deliver a message,
// newest first, filtered and paged with the store's page tokens; and the
// detail of one accepted message, as a timeline from the sensor to the
// verdict and its delivery attempts. As on the Alerts pages, nearly everything shown
// was written by whoever sent the mail (addresses, HELO names, subjects,
// header values, and the sample sender, recipient and detail of a
// refusal), so each value goes through display or short and reaches the
// page as text.

// auditReasons are the reasons a sensor refuses an attempt for, as it
// names them (sensor/smtpd's reason names), with what each means.
var auditReasons = []choice{
	{"client_refused", "client not in the sensor's clients"},
	{"connection_limit", "too many connections"},
	{"client_connection_limit", "too many connections from the client"},
	{"spool_unavailable", "the spool could not take mail"},
	{"tls_required", "mail command before STARTTLS"},
	{"tls_invalid_client_certificate", "invalid client certificate"},
	{"tls_handshake_failed", "TLS handshake failed"},
	{"starttls_pipelining", "commands pipelined after STARTTLS"},
	{"protocol_error", "unknown command, bad syntax or sequence"},
	{"recipient_refused", "recipient outside the destination domains"},
	{"too_many_recipients", "too many recipients"},
	{"message_too_large", "message too large"},
	{"bare_newline", "bare CR or LF in the message"},
	{"line_too_long", "line too long"},
	{"spool_full", "spool full or disk low"},
	{"spool_error", "the spool failed"},
	{"timeout", "time limit reached"},
	{"too_many_errors", "too many errors"},
	{"rate_limit_connections", "too many connections per minute from the client"},
	{"rate_limit_messages", "too many messages per minute from the client"},
	{"rate_limit_recipients", "too many recipients per minute from the client"},
	{"harvest_guard", "client deferred for naming too many unknown recipients"},
	{"recipient_unknown", "recipient unknown to the domain's mail server"},
	{"recipient_verify_tempfail", "recipient not verified: the domain's mail server could not be asked"},
	{"relay_denied", "relaying denied to a client outside the outbound acceptance list"},
	{"not_in_acceptance_list", "client not in the gateway listener's acceptance list"},
}

// auditVerdicts are the verdicts a scan gives (package scan's Verdict
// constants), with the class that colours each.
var auditVerdicts = []choice{
	{"clean", "verdict-clean"},
	{"detected", "verdict-detected"},
	{"unscannable: limit", "verdict-unscannable"},
	{"unscannable: error", "verdict-unscannable"},
}

// reasonMeaning says what a reason means, "" for one this UI does not know.
func reasonMeaning(reason string) string {
	for _, c := range auditReasons {
		if c.Value == reason {
			return c.Label
		}
	}
	return ""
}

// verdictClass is the class of a verdict's badge.
func verdictClass(verdict string) string {
	for _, c := range auditVerdicts {
		if c.Value == verdict {
			return c.Label
		}
	}
	return "verdict-other"
}

// withCurrent returns choices with value added, as its own label, when it
// is not one of them, so that a filter asked for by URL shows as chosen.
func withCurrent(choices []choice, value string) []choice {
	if value == "" || slices.ContainsFunc(choices, func(c choice) bool { return c.Value == value }) {
		return choices
	}
	return append(slices.Clip(choices), choice{Value: value, Label: short(value)})
}

// ---- List ----

// auditFilter is the Audit log page's query, as typed. Its URL parameters
// are the REST API's (GET /api/v1/audit), so the store's field errors name
// them.
type auditFilter struct {
	From, To  string // as typed: "2026-03-01T09:30", "2026-03-01" or RFC 3339, in UTC
	Kind      string
	Sender    string
	Recipient string
	Subject   string
	MessageID string
	ClientIP  string
	Sensor    string
	Verdict   string
	Reason    string
	Tenant    string // administrators only
	Token     string // the store's page token
}

func parseAuditFilter(q url.Values) auditFilter {
	get := func(name string) string { return strings.TrimSpace(q.Get(name)) }
	return auditFilter{
		From: get("from"), To: get("to"), Kind: get("kind"), Sender: get("sender"), Recipient: get("recipient"),
		Subject: get("subject"), MessageID: get("message_id"), ClientIP: get("client_ip"), Sensor: get("sensor"),
		Verdict: get("verdict"), Reason: get("reason"), Tenant: get("tenant"), Token: q.Get("page_token"),
	}
}

// params are the filter's URL parameters, in the form's order.
func (f auditFilter) params() [][2]string {
	return [][2]string{
		{"from", f.From}, {"to", f.To}, {"kind", f.Kind}, {"sender", f.Sender}, {"recipient", f.Recipient},
		{"subject", f.Subject}, {"message_id", f.MessageID}, {"client_ip", f.ClientIP}, {"sensor", f.Sensor},
		{"verdict", f.Verdict}, {"reason", f.Reason}, {"tenant", f.Tenant},
	}
}

// url is the list's URL with this filter, on the page that token starts.
func (f auditFilter) url(token string) string { return filterURL("/audit", f.params(), token) }

// Filtered reports whether any filter is set.
func (f auditFilter) Filtered() bool { return anySet(f.params()) }

// filterURL is the list at path with the filter's parameters that are set
// (name and value, in the form's order), on the page that token starts.
func filterURL(path string, params [][2]string, token string) string {
	v := url.Values{}
	for _, p := range append(slices.Clip(params), [2]string{"page_token", token}) {
		if p[1] != "" {
			v.Set(p[0], p[1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// anySet reports whether any of a filter's parameters is set.
func anySet(params [][2]string) bool {
	return slices.ContainsFunc(params, func(p [2]string) bool { return p[1] != "" })
}

// parseUTC reads a time in one of sinceLayouts, in UTC unless it says
// otherwise.
func parseUTC(s string) (time.Time, bool) {
	for _, layout := range sinceLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// pickerTime writes t as a datetime-local input does, in UTC.
func pickerTime(t time.Time) string {
	layout := "2006-01-02T15:04"
	if t.Second() != 0 || t.Nanosecond() != 0 {
		layout = "2006-01-02T15:04:05"
	}
	return t.UTC().Format(layout)
}

// query turns the filter into the store's query, or the errors of the
// fields that cannot be read, named as the store names them.
func (f auditFilter) query(limit int) (sqlstore.AuditQuery, []fieldError) {
	q := sqlstore.AuditQuery{
		Tenant: f.Tenant, SensorID: f.Sensor, Kind: f.Kind, Sender: f.Sender, Recipient: f.Recipient,
		Subject: f.Subject, MessageID: f.MessageID, ClientIP: f.ClientIP, Verdict: f.Verdict, Reason: f.Reason,
		PageToken: f.Token, Limit: limit,
	}
	var errs []fieldError
	for _, t := range []struct {
		field, value string
		dst          *time.Time
	}{{"from", f.From, &q.From}, {"to", f.To, &q.To}} {
		if t.value == "" {
			continue
		}
		v, ok := parseUTC(t.value)
		if !ok {
			errs = append(errs, fieldError{t.field, "not a time: use the date picker, or write 2026-03-01T09:30 (UTC)"})
		}
		*t.dst = v
	}
	return q, errs
}

// auditPageSize is the number of events on one page of the log.
const auditPageSize = 50

var auditFilterFields = map[string]formField{
	"from":       {"From", "au-from"},
	"to":         {"To", "au-to"},
	"kind":       {"Kind", "au-kind"},
	"sender":     {"Sender", "au-sender"},
	"recipient":  {"Recipient", "au-recipient"},
	"subject":    {"Subject", "au-subject"},
	"message_id": {"Message-ID", "au-message-id"},
	"client_ip":  {"Client IP", "au-client"},
	"sensor":     {"Sensor", "au-sensor"},
	"verdict":    {"Verdict", "au-verdict"},
	"reason":     {"Reason", "au-reason"},
	"tenant":     {"Tenant", "au-tenant"},
	"page_token": {"Page", ""},
	"limit":      {"Page size", ""},
}

// auditRow is one event as the list shows it.
type auditRow struct {
	Kind     string // sqlstore.AuditAccepted, AuditRefused, AuditDelivery or AuditQuarantine
	Key      string // names the event among the page's rows
	Time     time.Time
	Tenant   string
	Sensor   string // the sensor's name, or its id
	Source   string // SMTP or POP3 (accepted messages)
	Client   string
	Sender   string
	Rcpts    string
	MoreRcpt int
	Subject  string
	// Verdict, VerdictClass and AlertURL are an accepted message's; URL
	// leads to its detail.
	Verdict, VerdictClass string
	AlertURL              string
	URL                   string
	// Refusal is a refusal's detail, Delivery a delivery attempt's.
	Refusal  *refusalView
	Delivery *deliveryView
}

// refusalView is a count of refusals: its reason, and what the first of
// its minute said.
type refusalView struct {
	ID               string // the id of its element
	Reason, Meaning  string
	Count            int64
	Minute           time.Time
	FirstAt, LastAt  time.Time
	MailFrom, Rcpt   string
	Detail, ClientIP string
}

// sensorNames maps the ids of the sensors in scope to their names, and
// lists them as choices (with their tenant when scope is every tenant's).
func (s *Server) sensorNames(ctx context.Context, scope store.Scope) (map[string]string, []choice, error) {
	sensors, err := s.store.ListSensors(ctx, scope)
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	var choices []choice
	for _, sn := range sensors {
		label := display(sn.GetName())
		if label == "" {
			label = sn.GetId()
		}
		names[sn.GetId()] = label
		if severalTenants(scope) {
			label += " (" + sn.GetTenant() + ")"
		}
		choices = append(choices, choice{Value: sn.GetId(), Label: label})
	}
	return names, choices, nil
}

// tenantChoices lists the tenants of scope for a filter's drop-down; nil
// for the scope of one tenant, which has no tenant filter.
func (s *Server) tenantChoices(ctx context.Context, scope store.Scope) ([]choice, error) {
	if !severalTenants(scope) {
		return nil, nil
	}
	ts, err := s.store.ListTenants(ctx, scope)
	if err != nil {
		return nil, err
	}
	choices := []choice{}
	for _, t := range ts {
		choices = append(choices, choice{Value: t.GetId(), Label: t.GetName()})
	}
	return choices, nil
}

// rcptList is the first maxRowRecipients of rcpts, shortened, and how many
// more there are.
func rcptList(rcpts []string) (string, int) {
	shown := rcpts[:min(len(rcpts), maxRowRecipients)]
	parts := make([]string, len(shown))
	for i, r := range shown {
		parts[i] = short(r)
	}
	return strings.Join(parts, ", "), len(rcpts) - len(shown)
}

// clientHost is the host of a client address (host:port), or the address.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func newAuditRow(e sqlstore.AuditEvent, i int, names map[string]string) auditRow {
	row := auditRow{Kind: e.Kind, Time: e.Time, Tenant: e.Tenant, Sensor: e.SensorID}
	if name := names[e.SensorID]; name != "" {
		row.Sensor = name
	}
	if m := e.Message; m != nil {
		env, h := m.GetEnvelope(), m.GetHeaders()
		row.Key = e.SensorID + "/" + m.GetMessageId()
		row.Source = sourceName(m.GetSource())
		row.Client = short(clientHost(env.GetClientAddr()))
		row.Sender = env.GetMailFrom()
		if row.Sender == "" {
			row.Sender = h.GetFrom()
		}
		row.Sender = short(row.Sender)
		rcpts := env.GetRcptTo()
		if len(rcpts) == 0 {
			rcpts = h.GetTo()
		}
		row.Rcpts, row.MoreRcpt = rcptList(rcpts)
		row.Subject = short(h.GetSubject())
		row.Verdict, row.VerdictClass = short(m.GetVerdict()), verdictClass(m.GetVerdict())
		if id := m.GetAlertId(); id != "" {
			row.AlertURL = alertURL(e.Tenant, id)
		}
		row.URL = auditMessageURL(e.Tenant, e.SensorID, m.GetMessageId())
		return row
	}
	if e.Delivery != nil {
		deliveryRow(&row, e, i)
		return row
	}
	if q := e.Quarantine; q != nil {
		// A step of a quarantined message: who took it, what it was, and
		// the message's page.
		row.Key = fmt.Sprintf("%s/%s/%s", e.SensorID, e.QuarantineID, q.Action)
		row.Sender = short(q.Actor)
		row.Subject = short(strings.TrimSpace(e.QuarantineID + " " + q.Detail))
		row.Verdict, row.VerdictClass = q.Action, verdictClass(q.Action)
		row.URL = quarantineMessageURL(e.SensorID, e.QuarantineID)
		return row
	}
	r := e.Refusal
	row.Key = fmt.Sprintf("%s/%d/%s/%s", e.SensorID, r.Minute.Unix(), r.ClientIP, r.Reason)
	row.Client = short(r.ClientIP)
	row.Sender = short(r.MailFrom)
	row.Rcpts = short(r.Rcpt)
	row.Refusal = &refusalView{
		ID: "refusal-" + strconv.Itoa(i), Reason: display(r.Reason), Meaning: reasonMeaning(r.Reason),
		Count: r.Count, Minute: r.Minute, FirstAt: r.FirstAt, LastAt: r.LastAt,
		MailFrom: display(r.MailFrom), Rcpt: display(r.Rcpt), Detail: display(r.Detail), ClientIP: display(r.ClientIP),
	}
	return row
}

func auditMessageURL(tenant, sensor, message string) string {
	return "/audit/" + url.PathEscape(tenant) + "/" + url.PathEscape(sensor) + "/" + url.PathEscape(message)
}

// filterField is one field of the filter form: an input, or a drop-down
// when Select, with the errors beside it.
type filterField struct {
	Label, ID, Name, Value string
	// Type and Placeholder are an input's.
	Type, Placeholder string
	// Select makes a drop-down of Options, the first being Any (value "")
	// when Any is set.
	Select  bool
	Any     string
	Options []choice
	Errors  []string
}

type auditListData struct {
	Filter auditFilter
	Fields []filterField
	Errs   *fieldErrors
	Rows   []auditRow
	// FirstURL leads back to the newest events when this is a later page;
	// NextURL to older ones when there are more.
	FirstURL, NextURL string
}

// auditFields are the filter form's fields, with f's values and the
// errors of each; tenants is nil for a user of one tenant, who has no
// tenant field.
func auditFields(f auditFilter, sensors, tenants []choice, errs *fieldErrors) []filterField {
	input := func(name, value, typ, placeholder string) filterField {
		ff := auditFilterFields[name]
		return filterField{Label: ff.label, ID: ff.id, Name: name, Value: value, Type: typ, Placeholder: placeholder,
			Errors: errs.For(name)}
	}
	sel := func(name, value, anyLabel string, options []choice) filterField {
		ff := auditFilterFields[name]
		return filterField{Label: ff.label, ID: ff.id, Name: name, Value: value, Select: true, Any: anyLabel,
			Options: withCurrent(options, value), Errors: errs.For(name)}
	}
	reasons := make([]choice, len(auditReasons))
	for i, c := range auditReasons {
		reasons[i] = choice{Value: c.Value, Label: c.Value + " (" + c.Label + ")"}
	}
	verdicts := make([]choice, len(auditVerdicts))
	for i, c := range auditVerdicts {
		verdicts[i] = choice{Value: c.Value, Label: c.Value}
	}
	fields := []filterField{
		input("from", f.From, "datetime-local", ""),
		input("to", f.To, "datetime-local", ""),
		sel("kind", f.Kind, "Any", []choice{{sqlstore.AuditAccepted, "Accepted"}, {sqlstore.AuditRefused, "Refused"},
			{sqlstore.AuditDelivery, "Delivery"}, {sqlstore.AuditQuarantine, "Quarantine"}}),
		sel("sensor", f.Sensor, "Any", sensors),
	}
	if tenants != nil {
		fields = append(fields, sel("tenant", f.Tenant, "All tenants", tenants))
	}
	fields[0].Label, fields[1].Label = "From (UTC)", "To (UTC)"
	return append(fields,
		sel("verdict", f.Verdict, "Any", verdicts),
		input("sender", f.Sender, "search", "Any part"),
		input("recipient", f.Recipient, "search", "Whole address"),
		input("subject", f.Subject, "search", "Any part"),
		input("message_id", f.MessageID, "search", "id@host"),
		input("client_ip", f.ClientIP, "search", "192.0.2.7"),
		sel("reason", f.Reason, "Any", reasons),
	)
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	f := parseAuditFilter(r.URL.Query())
	if !req.severalTenants() {
		f.Tenant = "" // a tenant operator's log is their tenant's
	}
	names, sensors, err := s.sensorNames(ctx, req.scope)
	if err != nil {
		return err
	}
	tenants, err := s.tenantChoices(ctx, req.scope)
	if err != nil {
		return err
	}
	q, problems := f.query(auditPageSize)
	// Times are shown in the form as the date picker writes them, in UTC.
	if !q.From.IsZero() {
		f.From = pickerTime(q.From)
	}
	if !q.To.IsZero() {
		f.To = pickerTime(q.To)
	}
	d := auditListData{Filter: f}
	if len(problems) == 0 {
		page, err := s.messages.ListAudit(ctx, req.scope, q)
		switch verrs, ok := validate.AsErrors(err); {
		case ok:
			problems = fieldErrorsOf(verrs)
		case errors.Is(err, store.ErrNotFound):
			// A tenant outside scope: nothing of it is shown.
		case err != nil:
			return err
		default:
			here := f.url(f.Token)
			for i, e := range page.Events {
				row := newAuditRow(e, i, names)
				if row.URL != "" && here != "/audit" {
					row.URL += "?back=" + url.QueryEscape(here)
				}
				d.Rows = append(d.Rows, row)
			}
			if page.NextPageToken != "" {
				d.NextURL = f.url(page.NextPageToken)
			}
		}
	}
	status := http.StatusOK
	if len(problems) > 0 {
		status = http.StatusBadRequest
		d.Errs = newFieldErrors(problems, auditFilterFields, nil)
	}
	if f.Token != "" {
		d.FirstURL = f.url("")
	}
	d.Fields = auditFields(f, sensors, tenants, d.Errs)
	s.render(w, status, req, "audit", page{Title: "Audit log", Nav: "audit", Data: d})
	return nil
}

// ---- Detail of an accepted message ----

// auditMessage is an accepted message as its detail shows it: its timeline
// (received, uploaded, scanned, alert), its envelope and its headers.
type auditMessage struct {
	Tenant, MessageID string
	SensorID, Sensor  string
	SensorKnown       bool
	Source            string
	// Received to Mailbox are the sensor's session with the client (or the
	// POP3 server); TLSVersion and TLSCipher name the session's TLS ("" without).
	Received     time.Time
	Client, Helo string
	TLS          bool
	TLSVersion   string
	TLSCipher    string
	Mailbox      string
	Node         string
	Uploaded     time.Time
	Verdict      string
	VerdictClass string
	AlertID      string
	AlertURL     string
	Size, SHA256 string
	Subject      string
	Envelope     *envelopeView
	Headers      *headersView
	// Auth is a gateway's sender authentication, when it checked senders.
	Auth *authView
	// Spam is the spam engine's opinion; nil when it was not asked or did
	// not answer.
	Spam *spamView
	// Deliveries are the gateway's attempts to deliver the message, oldest
	// first.
	Deliveries []*deliveryView
	// Back is the page of the log the message was opened from, when it was.
	Back string
}

func newEnvelopeView(env *ospreyv1.Envelope) *envelopeView {
	if env == nil {
		return nil
	}
	v := &envelopeView{
		MailFrom: display(env.GetMailFrom()), RcptTo: displayAll(env.GetRcptTo()),
		ClientAddr: display(env.GetClientAddr()), Helo: display(env.GetHelo()), TLS: env.GetTls(),
		Mailbox: display(env.GetMailbox()), AuthUser: display(env.GetAuthUser()),
	}
	if env.GetReceivedAt() != nil {
		v.ReceivedAt = env.GetReceivedAt().AsTime()
	}
	return v
}

func newHeadersView(h *ospreyv1.HeaderSummary) *headersView {
	if h == nil {
		return nil
	}
	v := &headersView{
		From: display(h.GetFrom()), Subject: display(h.GetSubject()), MessageID: display(h.GetMessageId()),
		To: displayAll(h.GetTo()), Cc: displayAll(h.GetCc()),
		Received: displayAll(h.GetReceived()), Authentications: displayAll(h.GetAuthenticationResults()),
	}
	if h.GetDate() != nil {
		v.Date = h.GetDate().AsTime()
	}
	return v
}

func newAuditMessage(m *ospreyv1.MessageRecord) auditMessage {
	env := m.GetEnvelope()
	d := auditMessage{
		Tenant: m.GetTenant(), MessageID: display(m.GetMessageId()),
		SensorID: m.GetSensorId(), Sensor: m.GetSensorId(), Source: sourceName(m.GetSource()),
		Client: display(env.GetClientAddr()), Helo: display(env.GetHelo()), TLS: env.GetTls(),
		Mailbox: display(env.GetMailbox()), Node: display(m.GetNode()),
		Verdict: display(m.GetVerdict()), VerdictClass: verdictClass(m.GetVerdict()),
		AlertID: display(m.GetAlertId()), Size: formatSize(m.GetSize()), SHA256: display(m.GetSha256()),
		Subject:  display(m.GetHeaders().GetSubject()),
		Envelope: newEnvelopeView(env), Headers: newHeadersView(m.GetHeaders()), Auth: newAuthView(env.GetAuth()),
		Spam: newSpamView(m.GetSpam()),
	}
	d.TLSVersion, d.TLSCipher = display(env.GetTlsVersion()), display(env.GetTlsCipher())
	if env.GetReceivedAt() != nil {
		d.Received = env.GetReceivedAt().AsTime()
	}
	if m.GetUploadedAt() != nil {
		d.Uploaded = m.GetUploadedAt().AsTime()
	}
	if id := m.GetAlertId(); id != "" {
		d.AlertURL = alertURL(m.GetTenant(), id)
	}
	return d
}

func (s *Server) auditMessagePage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	m, err := s.messages.GetMessage(ctx, req.scope, r.PathValue("tenant"), r.PathValue("sensor"), r.PathValue("message"))
	if err != nil {
		return err
	}
	d := newAuditMessage(m)
	attempts, err := s.messages.MessageDeliveries(ctx, req.scope, m.GetTenant(), m.GetSensorId(), m.GetMessageId())
	if err != nil {
		return err
	}
	for i := range attempts {
		d.Deliveries = append(d.Deliveries, newDeliveryView(&attempts[i], "attempt-"+strconv.Itoa(i)))
	}
	sn, _, err := s.store.GetSensor(ctx, req.scope, m.GetSensorId())
	switch {
	case err == nil:
		d.SensorKnown = true
		if name := display(sn.GetName()); name != "" {
			d.Sensor = name
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalidID):
		// The sensor was removed since; its id is all there is.
	default:
		return err
	}
	if back := r.URL.Query().Get("back"); strings.HasPrefix(back, "/audit") {
		d.Back = localPath(back, "")
	}
	title := "Message"
	if d.Subject != "" {
		title = "Message · " + short(d.Subject)
	}
	s.render(w, http.StatusOK, req, "auditmsg", page{Title: title, Nav: "audit", Data: d})
	return nil
}
