package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The Alerts pages: a filtered list, newest first, paged with the store's
// page tokens, and the detail of one alert. Alerts are made of what an
// attacker wrote (subjects, addresses, file names, header values), so every
// value reaches the page as text through html/template's escaping, and goes
// through display first, which makes invisible and direction-changing
// characters visible: a file name "invoice\u202efdp.exe" must not read as
// "invoiceexe.pdf".

// severityName is a severity's name as the API spells it, "unknown" for
// none.
func severityName(s ospreyv1.Severity) string {
	if name := convert.SeverityFromProto(s); name != "" {
		return string(name)
	}
	return "unknown"
}

// parseSeverity reads a severity's name; "" is not one.
func parseSeverity(name string) (ospreyv1.Severity, bool) {
	sev, err := convert.SeverityToProto(api.Severity(name))
	return sev, err == nil && sev != 0
}

// severityNames lists the severities' names, lowest first.
func severityNames() []string {
	var out []string
	for _, s := range convert.Severities() {
		out = append(out, string(s))
	}
	return out
}

func sourceName(s ospreyv1.MailSource) string {
	switch s {
	case ospreyv1.MailSource_MAIL_SOURCE_SMTP:
		return "SMTP"
	case ospreyv1.MailSource_MAIL_SOURCE_POP3:
		return "POP3"
	}
	return "unknown"
}

// maxDisplayRunes bounds a value shown in a list cell; the detail page shows all of it.
const maxDisplayRunes = 160

// display makes a value from a message safe to read (html/template makes it
// safe to render): control characters, and the invisible and bidirectional
// formatting characters that disguise names and addresses, are shown as
// \u escapes; invalid UTF-8 as U+FFFD.
func display(s string) string {
	if !strings.ContainsFunc(s, hidden) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if hidden(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// hidden reports whether r changes or hides what text around it looks like:
// control characters (but space), format characters (bidi overrides and
// isolates, zero-width characters) and line or paragraph separators.
func hidden(r rune) bool {
	return (unicode.IsControl(r) && r != ' ') || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
}

// short is display cut to maxDisplayRunes, with an ellipsis when cut.
func short(s string) string {
	s = display(s)
	if utf8.RuneCountInString(s) <= maxDisplayRunes {
		return s
	}
	r := []rune(s)
	return string(r[:maxDisplayRunes-1]) + "…"
}

// formatSize writes a size in bytes for people: "1.2 MB (1,234,567 bytes)".
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB (%s bytes)", float64(n)/float64(div), "KMGTP"[exp], groupDigits(n))
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ---- List ----

// alertFilter is the Alerts page's query.
type alertFilter struct {
	Severity string // minimum severity name; "" for any
	Sensor   string
	Tenant   string // administrators only
	Server   string // on a PCN: the SCN the alerts came from
	Q        string
	Since    string // as typed: "2026-03-01T09:30", "2026-03-01" or RFC 3339
	Token    string // the store's page token
}

// sinceLayouts are the forms a Since filter may take: what a
// datetime-local input sends (read as UTC), a date, and RFC 3339.
var sinceLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02", time.RFC3339}

func parseAlertFilter(q url.Values) alertFilter {
	return alertFilter{
		Severity: q.Get("severity"), Sensor: q.Get("sensor"), Tenant: q.Get("tenant"), Server: q.Get("server"),
		Q: strings.TrimSpace(q.Get("q")), Since: strings.TrimSpace(q.Get("since")), Token: q.Get("page_token"),
	}
}

// query turns the filter into the store's query, or the errors of the
// fields that cannot be read, named as the store names them.
func (f alertFilter) query(limit int) (sqlstore.AlertQuery, []fieldError) {
	q := sqlstore.AlertQuery{Tenant: f.Tenant, SensorID: f.Sensor, ServerID: f.Server, Q: f.Q, PageToken: f.Token, Limit: limit}
	var errs []fieldError
	if f.Severity != "" {
		sev, ok := parseSeverity(f.Severity)
		if !ok {
			errs = append(errs, fieldError{"severity", "must be low, medium, high or critical"})
		}
		q.MinSeverity = sev
	}
	if f.Since != "" {
		var err error
		for _, layout := range sinceLayouts {
			var t time.Time
			if t, err = time.ParseInLocation(layout, f.Since, time.UTC); err == nil {
				q.Since = t
				break
			}
		}
		if err != nil {
			errs = append(errs, fieldError{"since", "not a time: use the date picker, or write 2026-03-01T09:30 (UTC)"})
		}
	}
	return q, errs
}

// url is the list's URL with this filter, on the page that token starts.
func (f alertFilter) url(token string) string {
	v := url.Values{}
	for k, val := range map[string]string{"severity": f.Severity, "sensor": f.Sensor, "tenant": f.Tenant, "server": f.Server,
		"q": f.Q, "since": f.Since, "page_token": token} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if len(v) == 0 {
		return "/alerts"
	}
	return "/alerts?" + v.Encode()
}

// Filtered reports whether any filter is set.
func (f alertFilter) Filtered() bool {
	return f.Severity != "" || f.Sensor != "" || f.Tenant != "" || f.Server != "" || f.Q != "" || f.Since != ""
}

// alertPageSize is the number of alerts on one page of the list.
const alertPageSize = 50

var alertFilterFields = map[string]formField{
	"severity":   {"Severity", "af-severity"},
	"sensor":     {"Sensor", "af-sensor"},
	"tenant":     {"Tenant", "af-tenant"},
	"server":     {"SCN", "af-server"},
	"q":          {"Search", "af-q"},
	"since":      {"Since", "af-since"},
	"page_token": {"Page", ""},
	"limit":      {"Page size", ""},
}

// alertRow is one alert as the list shows it.
type alertRow struct {
	ID, Tenant   string
	Server       string // the SCN it came from, on a PCN
	Time         time.Time
	Severity     string
	Sensor       string // the sensor's name
	SensorID     string
	Source       string
	Sender       string
	Recipients   string
	MoreRcpts    int
	Subject      string
	Verdict      string
	Matches      []matchChip
	MoreMatches  int
	URL          string
	AttachmentsN int
}

// matchChip is a match in the list: the engine and the rule or signature.
type matchChip struct {
	Engine, Rule, Severity, What string
}

// maxRowRecipients and maxRowMatches bound what one row lists; the detail shows all.
const (
	maxRowRecipients = 3
	maxRowMatches    = 4
)

func newAlertRow(a *ospreyv1.Alert, sensorNames map[string]string) alertRow {
	row := alertRow{
		ID: a.GetId(), Tenant: a.GetTenant(), Server: a.GetServerId(), Severity: severityName(a.GetSeverity()),
		SensorID: a.GetSensorId(), Sensor: a.GetSensorId(), Source: sourceName(a.GetSource()),
		Subject: short(a.GetHeaders().GetSubject()), Verdict: short(a.GetVerdict()),
		URL:          alertURL(a.GetTenant(), a.GetId()),
		AttachmentsN: len(a.GetAttachments()),
	}
	if name := sensorNames[a.GetSensorId()]; name != "" {
		row.Sensor = name
	}
	if a.GetCreatedAt() != nil {
		row.Time = a.GetCreatedAt().AsTime()
	}
	env := a.GetEnvelope()
	row.Sender = env.GetMailFrom()
	if row.Sender == "" {
		row.Sender = a.GetHeaders().GetFrom()
	}
	row.Sender = short(row.Sender)
	rcpts := env.GetRcptTo()
	if len(rcpts) == 0 {
		rcpts = a.GetHeaders().GetTo()
	}
	shown := rcpts[:min(len(rcpts), maxRowRecipients)]
	parts := make([]string, len(shown))
	for i, r := range shown {
		parts[i] = short(r)
	}
	row.Recipients, row.MoreRcpts = strings.Join(parts, ", "), len(rcpts)-len(shown)
	for _, m := range a.GetMatches() {
		chip := matchChip{Engine: display(m.GetEngine()), Rule: short(m.GetRuleId()), Severity: severityName(m.GetSeverity()),
			What: short(m.GetWhat())}
		if slices.ContainsFunc(row.Matches, func(c matchChip) bool { return c.Engine == chip.Engine && c.Rule == chip.Rule }) {
			continue
		}
		if len(row.Matches) == maxRowMatches {
			row.MoreMatches++
			continue
		}
		row.Matches = append(row.Matches, chip)
	}
	return row
}

func alertURL(tenant, id string) string {
	return "/alerts/" + url.PathEscape(tenant) + "/" + url.PathEscape(id)
}

type alertListData struct {
	Filter     alertFilter
	Severities []string
	Sensors    []choice
	Tenants    []*ospreyv1.Tenant
	// Servers are a PCN's SCNs in scope (none elsewhere); Totals the
	// messages of the last day per tenant and SCN.
	Servers []choice
	Totals  []sqlstore.SummaryTotal
	Errs    *fieldErrors
	Rows    []alertRow
	// FirstURL leads back to the newest alerts when this is a later page;
	// NextURL to older ones when there are more.
	FirstURL, NextURL string
}

func (s *Server) alertList(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	f := parseAlertFilter(r.URL.Query())
	if !req.severalTenants() {
		f.Tenant = "" // a tenant operator's list is their tenant's
	}
	d := alertListData{Filter: f}
	d.Severities = severityNames()
	sensors, err := s.store.ListSensors(ctx, req.scope)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, sn := range sensors {
		names[sn.GetId()] = sn.GetName()
		label := sn.GetName()
		if label == "" {
			label = sn.GetId()
		}
		if req.severalTenants() {
			label += " (" + sn.GetTenant() + ")"
		}
		d.Sensors = append(d.Sensors, choice{Value: sn.GetId(), Label: label})
	}
	if req.severalTenants() {
		if d.Tenants, err = s.store.ListTenants(ctx, req.scope); err != nil {
			return err
		}
	}
	if s.primary != nil {
		if err := s.pcnTotals(r, req, &d); err != nil {
			return err
		}
	}
	status := http.StatusOK
	q, problems := f.query(alertPageSize)
	if !q.Since.IsZero() {
		// Shown in the form as the date picker writes it, in UTC.
		layout := "2006-01-02T15:04"
		if q.Since.Second() != 0 || q.Since.Nanosecond() != 0 {
			layout = "2006-01-02T15:04:05"
		}
		f.Since = q.Since.UTC().Format(layout)
		d.Filter = f
	}
	if len(problems) == 0 {
		page, err := s.messages.ListAlerts(ctx, req.scope, q)
		switch verrs, ok := validate.AsErrors(err); {
		case ok:
			problems = fieldErrorsOf(verrs)
		case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidID):
			// A tenant outside scope, or a sensor id that cannot be one:
			// nothing matches, as for a sensor that has no alerts.
		case err != nil:
			return err
		default:
			here := f.url(f.Token)
			for _, a := range page.Alerts {
				row := newAlertRow(a, names)
				if here != "/alerts" {
					row.URL += "?back=" + url.QueryEscape(here)
				}
				d.Rows = append(d.Rows, row)
			}
			if page.NextPageToken != "" {
				d.NextURL = f.url(page.NextPageToken)
			}
		}
	}
	if len(problems) > 0 {
		status = http.StatusBadRequest
		d.Errs = newFieldErrors(problems, alertFilterFields, nil)
	}
	if f.Token != "" {
		d.FirstURL = f.url("")
	}
	s.render(w, status, req, "alerts", page{Title: "Alerts", Nav: "alerts", Data: d})
	return nil
}

// pcnTotals fills, on a PCN, the SCNs the reader may filter by and the
// totals of the last day across tenants and SCNs, in the reader's scope.
func (s *Server) pcnTotals(r *http.Request, req *request, d *alertListData) error {
	srvs, err := s.primary.Servers(r.Context(), store.AllTenants())
	if err != nil {
		return err
	}
	for _, sv := range srvs {
		if sv.Tenant != "" && req.scope.Allows(sv.Tenant) {
			d.Servers = append(d.Servers, choice{Value: sv.ID, Label: sv.Name + " (" + sv.Tenant + ")"})
		}
	}
	d.Totals, err = s.messages.SummaryTotals(r.Context(), req.scope, s.now().Add(-24*time.Hour))
	return err
}

// ---- Detail ----

type alertDetail struct {
	ID, Tenant, MessageID string
	Time                  time.Time
	Severity              string
	Verdict               string
	SensorID, Sensor      string
	SensorKnown           bool
	Source                string
	Node                  string
	Size                  string
	SHA256                string
	Envelope              *envelopeView
	Headers               *headersView
	Matches               []matchView
	Attachments           []attachmentView
	// Back is the list the alert was opened from, when it was.
	Back string
}

type envelopeView struct {
	MailFrom   string
	RcptTo     []string
	ClientAddr string
	Helo       string
	TLS        bool
	ReceivedAt time.Time
	Mailbox    string
	// AuthUser is the name the client authenticated as (a gateway's
	// submission listener).
	AuthUser string
}

type headersView struct {
	From, Subject, MessageID  string
	To, Cc                    []string
	Date                      time.Time
	Received, Authentications []string
}

type matchView struct {
	Engine, RuleID, Severity, What, Part string
	// RuleURL leads to the tenant's rule, for indicator matches.
	RuleURL string
}

type attachmentView struct {
	Name, Path                 string
	DeclaredType, DetectedType string
	TypeMismatch               bool
	Size                       string
	SHA256, SHA1, MD5          string
}

func displayAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = display(s)
	}
	return out
}

func newAlertDetail(a *ospreyv1.Alert) alertDetail {
	d := alertDetail{
		ID: a.GetId(), Tenant: a.GetTenant(), MessageID: display(a.GetMessageId()),
		Severity: severityName(a.GetSeverity()), Verdict: display(a.GetVerdict()),
		SensorID: a.GetSensorId(), Sensor: a.GetSensorId(), Source: sourceName(a.GetSource()),
		Node: display(a.GetNode()), Size: formatSize(a.GetSize()), SHA256: display(a.GetSha256()),
	}
	if a.GetCreatedAt() != nil {
		d.Time = a.GetCreatedAt().AsTime()
	}
	d.Envelope = newEnvelopeView(a.GetEnvelope())
	if h := a.GetHeaders(); h != nil {
		d.Headers = &headersView{
			From: display(h.GetFrom()), Subject: display(h.GetSubject()), MessageID: display(h.GetMessageId()),
			To: displayAll(h.GetTo()), Cc: displayAll(h.GetCc()),
			Received: displayAll(h.GetReceived()), Authentications: displayAll(h.GetAuthenticationResults()),
		}
		if h.GetDate() != nil {
			d.Headers.Date = h.GetDate().AsTime()
		}
	}
	for _, m := range a.GetMatches() {
		mv := matchView{Engine: display(m.GetEngine()), RuleID: display(m.GetRuleId()),
			Severity: severityName(m.GetSeverity()), What: display(m.GetWhat()), Part: display(m.GetPart())}
		if m.GetEngine() == "ioc" && m.GetRuleId() != "" {
			mv.RuleURL = rulesURL(a.GetTenant()) + "#rule-" + url.PathEscape(m.GetRuleId())
		}
		d.Matches = append(d.Matches, mv)
	}
	for _, at := range a.GetAttachments() {
		av := attachmentView{
			Name: display(at.GetFilename()), Path: display(at.GetPath()),
			DeclaredType: display(at.GetDeclaredType()), DetectedType: display(at.GetDetectedType()),
			Size: formatSize(at.GetSize()), SHA256: display(at.GetSha256()), SHA1: display(at.GetSha1()), MD5: display(at.GetMd5()),
		}
		av.TypeMismatch = at.GetDeclaredType() != "" && at.GetDetectedType() != "" &&
			!strings.EqualFold(mediaType(at.GetDeclaredType()), mediaType(at.GetDetectedType()))
		d.Attachments = append(d.Attachments, av)
	}
	return d
}

// mediaType is a content type without its parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

func (s *Server) alertPage(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	a, err := s.messages.GetAlert(r.Context(), req.scope, tenant, id)
	if err != nil {
		return err
	}
	d := newAlertDetail(a)
	sn, _, err := s.store.GetSensor(r.Context(), req.scope, a.GetSensorId())
	switch {
	case err == nil:
		d.SensorKnown = true
		if sn.GetName() != "" {
			d.Sensor = sn.GetName()
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalidID):
		// The sensor was removed since; its id is all there is.
	default:
		return err
	}
	if back := r.URL.Query().Get("back"); strings.HasPrefix(back, "/alerts") {
		d.Back = localPath(back, "")
	}
	title := "Alert"
	if d.Headers != nil && d.Headers.Subject != "" {
		title = "Alert · " + short(d.Headers.Subject)
	}
	s.render(w, http.StatusOK, req, "alert", page{Title: title, Nav: "alerts", Data: d})
	return nil
}
