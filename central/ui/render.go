package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// pages holds the parsed templates, one set per page, and the static assets
// with their content hashes (for cache-busting URLs).
type pages struct {
	byName map[string]*template.Template
	static map[string]staticFile
}

type staticFile struct {
	body        []byte
	hash        string
	contentType string
}

var pageNames = []string{"signin", "sensors", "status", "smtp", "pop3", "alerts", "alert", "audit", "auditmsg", "rules", "cluster", "users", "tokens", "queue", "quarantine", "quarantinemsg", "policy", "acceptance", "servers", "serversensors", "error"}

func mustParsePages() *pages {
	p := &pages{byName: map[string]*template.Template{}, static: map[string]staticFile{}}
	entries, err := fs.ReadDir(assets, "static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(assets, "static/"+e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		ct := map[string]string{
			".css": "text/css; charset=utf-8",
			".js":  "text/javascript; charset=utf-8",
			".svg": "image/svg+xml",
		}[path.Ext(e.Name())]
		p.static[e.Name()] = staticFile{body: b, hash: hex.EncodeToString(sum[:8]), contentType: ct}
	}
	funcs := template.FuncMap{
		"asset": func(name string) string {
			f, ok := p.static[name]
			if !ok {
				panic("ui: no static file " + name)
			}
			return "/static/" + name + "?v=" + f.hash
		},
		"add":   func(a, b int) int { return a + b },
		"ferr":  func(id string, msgs []string) fieldErrView { return fieldErrView{ID: id, Msgs: msgs} },
		"list":  newListView,
		"role":  roleName,
		"join":  strings.Join,
		"state": stateName,
		"time":  formatTime,
		"bytes": convert.FormatBytes,
		"dict": func(kv ...any) map[string]any {
			m := make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
		"tabs": func(h sensorHead, current string) sensorTabs {
			return sensorTabs{ID: h.ID, Current: current, Queue: h.Gateway}
		},
		"isoTime": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/delivery.html"))
	for _, name := range pageNames {
		t := template.Must(template.Must(base.Clone()).ParseFS(assets, "templates/"+name+".html"))
		p.byName[name] = t
	}
	return p
}

// page is what every template gets.
type page struct {
	Title string
	// Nav is the active entry of the navigation.
	Nav  string
	User *auth.Principal
	// Can is what the user's role may do, for the page to offer only that.
	Can        capabilities
	AllTenants bool
	CSRF       string
	Flash      []flash
	Data       any
}

// render writes a page with status. req is nil on pages shown without a
// session (sign-in, some errors).
func (s *Server) render(w http.ResponseWriter, status int, req *request, name string, pg page) {
	if req != nil {
		p := req.p
		pg.User = &p
		pg.Can = capabilitiesOf(p)
		pg.AllTenants = req.severalTenants()
		pg.CSRF = req.sess.csrf
		pg.Flash = append(s.sessions.takeFlash(req.sess.id), pg.Flash...)
	}
	var buf bytes.Buffer
	if err := s.pages.byName[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Heading string
	Message string
}

func (s *Server) renderError(w http.ResponseWriter, _ *http.Request, req *request, status int, msg string) {
	heading := http.StatusText(status)
	s.render(w, status, req, "error", page{Title: heading, Data: errorData{Status: status, Heading: heading, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// static serves the embedded stylesheet, script and icon. A URL with the
// file's current hash (as templates write it) may be cached for ever.
func (s *Server) static(w http.ResponseWriter, r *http.Request, _ *request) error {
	f, ok := s.pages.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	if r.URL.Query().Get("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("ETag", `"`+f.hash+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	return nil
}

// Cookies. With Secure, the __Host- prefix makes the browser refuse the
// cookie unless it is Secure, host-only and for the whole site.
func sessionCookie(secure bool) string {
	if secure {
		return "__Host-osprey_session"
	}
	return "osprey_session"
}

func signInCookie(secure bool) string {
	if secure {
		return "__Host-osprey_signin"
	}
	return "osprey_signin"
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// capabilities are what a page may offer its user (auth.Capability), by name.
type capabilities struct {
	ReadConfig, Configure, ReadAlerts, HandleAlerts, ReadQuarantine, ManageQuarantine bool
	ReadRules, WriteRules, ReadAudit, ReadUsers, ManageUsers, ManageServers           bool
}

func capabilitiesOf(p auth.Principal) capabilities {
	return capabilities{
		ReadConfig: p.Can(auth.ReadConfig), Configure: p.Can(auth.Configure),
		ReadAlerts: p.Can(auth.ReadAlerts), HandleAlerts: p.Can(auth.HandleAlerts),
		ReadQuarantine: p.Can(auth.ReadQuarantine), ManageQuarantine: p.Can(auth.ManageQuarantine),
		ReadRules: p.Can(auth.ReadRules), WriteRules: p.Can(auth.WriteRules),
		ReadAudit: p.Can(auth.ReadAudit), ReadUsers: p.Can(auth.ReadUsers),
		ManageUsers: p.Can(auth.ManageUsers), ManageServers: p.Can(auth.ManageServers),
	}
}

// roleName is the product's name of a role ("Senior security officer").
func roleName(r ospreyv1.Role) string { return auth.RoleTitle(r) }

func stateName(st ospreyv1.SensorState) string {
	switch st {
	case ospreyv1.SensorState_SENSOR_STATE_PENDING:
		return "pending"
	case ospreyv1.SensorState_SENSOR_STATE_APPROVED:
		return "approved"
	case ospreyv1.SensorState_SENSOR_STATE_REVOKED:
		return "revoked"
	}
	return "unknown"
}

// formatTime writes a time in UTC, or "never" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// ago says how long before now t was, roughly ("12 s ago", "3 min ago").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := now.Sub(t); d >= 0 {
		return roughly(d) + " ago"
	}
	return "just now"
}

// until says how long after now t is, roughly ("in 53 min"), or "now"
// when it is past; "" for the zero time.
func until(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if d := t.Sub(now); d > 0 {
		return "in " + roughly(d)
	}
	return "now"
}

// roughly writes a duration d ≥ 0 in its largest unit: "12 s", "3 min",
// "5 h" (up to two days), "3 days".
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// fieldErrors are a form's validation errors, by field path, for templates
// to show next to each field. List entries ("clients[1]") are kept by list
// and index, with the entry's value, so the list can name the entry.
type fieldErrors struct {
	byField map[string][]string
	entries map[string][]entryError
	// Other holds errors of fields the form does not show; they go in the
	// summary at the top of the form.
	Other []string
	// Summary lists every error once, for the box at the top of the form.
	Summary []summaryItem
}

type entryError struct {
	Index   int // 0-based
	Value   string
	Message string
}

// Number is the 1-based entry number people read.
func (e entryError) Number() int { return e.Index + 1 }

type summaryItem struct {
	Label   string
	Message string
	Anchor  string
}

// Any reports whether there is any error.
func (fe *fieldErrors) Any() bool { return fe != nil && len(fe.Summary) > 0 }

// For returns the messages of the fields named, in order.
func (fe *fieldErrors) For(fields ...string) []string {
	if fe == nil {
		return nil
	}
	var out []string
	for _, f := range fields {
		out = append(out, fe.byField[f]...)
	}
	return out
}

// Has reports whether any of the fields named has an error.
func (fe *fieldErrors) Has(fields ...string) bool { return len(fe.For(fields...)) > 0 }

// Entries returns the errors of a list's entries.
func (fe *fieldErrors) Entries(list string) []entryError {
	if fe == nil {
		return nil
	}
	return fe.entries[list]
}

// HasPrefix reports whether a field under any of the prefixes has an error.
func (fe *fieldErrors) HasPrefix(prefixes ...string) bool {
	if fe == nil {
		return false
	}
	for f := range fe.byField {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// fieldErrView is what the "fielderr" template shows: the messages of a
// field under the input of that id.
type fieldErrView struct {
	ID   string
	Msgs []string
}

// listView is what the "listeditor" template shows: a list field's entries,
// each with its own errors beside it, and the errors of the list as a whole.
type listView struct {
	Name, ID, ItemLabel, Placeholder string
	Rows                             []listRow
	Errors                           []string
}

type listRow struct {
	Index, Number int
	Value         string
	Errors        []string
}

// Invalid reports whether the entry has an error.
func (r listRow) Invalid() bool { return len(r.Errors) > 0 }

func newListView(name, id, itemLabel, placeholder string, values []string, errs *fieldErrors) listView {
	v := listView{Name: name, ID: id, ItemLabel: itemLabel, Placeholder: placeholder, Errors: errs.For(name)}
	for i, val := range values {
		v.Rows = append(v.Rows, listRow{Index: i, Number: i + 1, Value: val})
	}
	for _, e := range errs.Entries(name) {
		if e.Index < len(v.Rows) {
			v.Rows[e.Index].Errors = append(v.Rows[e.Index].Errors, e.Message)
		} else {
			// An entry the form no longer shows: say so under the list.
			v.Errors = append(v.Errors, fmt.Sprintf("entry %d: %s", e.Number(), e.Message))
		}
	}
	return v
}

// formField is how a form shows one field path: its label and the id of its input.
type formField struct {
	label string
	id    string
}

// newFieldErrors sorts field errors by the form's fields. lists gives the
// values of the form's list fields, by path, to name entries.
func newFieldErrors(errs []fieldError, fields map[string]formField, lists map[string][]string) *fieldErrors {
	fe := &fieldErrors{byField: map[string][]string{}, entries: map[string][]entryError{}}
	for _, e := range errs {
		if list, idx, ok := listEntry(e.Field); ok {
			if f, known := fields[list]; known {
				value := ""
				if vals := lists[list]; idx < len(vals) {
					value = vals[idx]
				}
				fe.entries[list] = append(fe.entries[list], entryError{Index: idx, Value: value, Message: e.Message})
				fe.Summary = append(fe.Summary, summaryItem{
					Label:   fmt.Sprintf("%s, entry %d (%q)", f.label, idx+1, value),
					Message: e.Message, Anchor: fmt.Sprintf("%s-%d", f.id, idx),
				})
				continue
			}
		}
		if f, known := fields[e.Field]; known {
			fe.byField[e.Field] = append(fe.byField[e.Field], e.Message)
			fe.Summary = append(fe.Summary, summaryItem{Label: f.label, Message: e.Message, Anchor: f.id})
			continue
		}
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		fe.Other = append(fe.Other, msg)
		fe.Summary = append(fe.Summary, summaryItem{Label: "Other", Message: msg})
	}
	return fe
}

// fieldError is one problem with one field path, from validation or from
// reading the form.
type fieldError struct {
	Field   string
	Message string
}

// listEntry splits "clients[1]" into "clients" and 1.
func listEntry(field string) (string, int, bool) {
	open := strings.IndexByte(field, '[')
	if open < 0 || !strings.HasSuffix(field, "]") {
		return "", 0, false
	}
	var idx int
	if _, err := fmt.Sscanf(field[open+1:len(field)-1], "%d", &idx); err != nil || idx < 0 {
		return "", 0, false
	}
	return field[:open], idx, true
}
