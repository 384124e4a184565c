package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The sensor settings pages: the SMTP and POP3 integration of one sensor,
// field by field as the API has them. Apply goes the API's way: the form
// becomes an api type, convert makes the proto message, the stored secret is
// merged in when the form left it blank, and store.Put* validates and writes
// compare-and-swap on the version the form was rendered from (a hidden field).
// A refused write shows each field's errors beside it and saves nothing; a
// concurrent change is reported and the form shows the current values.

// sensorHead is the summary above a sensor's settings.
type sensorHead struct {
	sensorRow
	Created string
}

func (s *Server) sensorHead(r *http.Request, req *request, id string) (sensorHead, error) {
	sn, _, err := s.store.GetSensor(r.Context(), req.scope, id)
	if err != nil {
		return sensorHead{}, err
	}
	st, err := s.store.Status(r.Context(), req.scope, id)
	if err != nil {
		return sensorHead{}, err
	}
	cfg, err := s.store.SensorConfig(r.Context(), req.scope, id)
	if err != nil {
		return sensorHead{}, err
	}
	h := sensorHead{sensorRow: newSensorRow(sn, st, s.now()), Created: "unknown"}
	h.Stored = cfg.Version()
	h.Gateway = h.Gateway || gatewayMode(cfg.SMTP)
	h.Sync = syncState(h.Applied, h.Stored, st.GetNackVersion(), h.ConfigError)
	if sn.GetCreatedAt() != nil {
		h.Created = formatTime(sn.GetCreatedAt().AsTime())
	}
	return h, nil
}

func (s *Server) sensorHome(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	if _, _, err := s.store.GetSensor(r.Context(), req.scope, id); err != nil {
		return err
	}
	redirect(w, r, "/sensors/"+url.PathEscape(id)+"/status")
	return nil
}

// sensorTabs names a sensor and the section of its page shown; Queue
// shows the Queue tab, for a gateway.
type sensorTabs struct {
	ID, Current string
	Queue       bool
}

// statusPage shows what a sensor reports of itself: its problems, and the
// state of its SMTP and POP3 integrations and of its spool.
func (s *Server) statusPage(w http.ResponseWriter, r *http.Request, req *request) error {
	head, err := s.sensorHead(r, req, r.PathValue("id"))
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, req, "status", page{Title: head.Name + " · Status", Nav: "sensors", Data: settingsData{Sensor: head}})
	return nil
}

// settingsData is what both settings pages get.
type settingsData struct {
	Sensor   sensorHead
	Errs     *fieldErrors
	Conflict string
	ReadOnly bool
	SMTP     smtpForm
	POP3     pop3Form
}

// ---- SMTP ----

type smtpForm struct {
	Version     int64
	Enabled     bool
	Listen      string
	Domains     []string
	Clients     []string
	Unlimited   bool
	SizeValue   string
	SizeUnit    string
	TLSMode     string
	ClientCert  string
	CertPEM     string
	KeySet      bool
	ClientCAPEM string
	Limits      []limitField
	// Mode is the SMTP mode; Gateway the settings of the gateway modes.
	Mode    string
	Gateway gatewayForm
}

// limitField is a number of the SMTP integration where empty or 0 means a
// default: one of a listener's limits, or of the gateway's queue.
type limitField struct {
	Group   string // the path of what holds it: "limits", "gateway.queue"
	Key     string // the field's name in the API and the form: "max_recipients"
	Label   string
	Value   string
	Default uint32
	Unit    string
}

// ID is the input's id.
func (l limitField) ID() string {
	return "smtp-" + strings.NewReplacer(".", "-", "_", "-").Replace(l.Group+"."+l.Key)
}

// Path is the field's path in validation errors.
func (l limitField) Path() string { return l.Group + "." + l.Key }

// limitDef defines a limitField of T (api.SMTPLimits, api.DeliveryQueueSettings).
type limitDef[T any] struct {
	key, label, unit string
	def              uint32
	field            func(*T) *uint32
}

// limitFields returns the form fields of defs in group, with the values of v (nil: empty).
func limitFields[T any](group string, defs []limitDef[T], v *T) []limitField {
	var out []limitField
	for _, d := range defs {
		l := limitField{Group: group, Key: d.key, Label: d.label, Default: d.def, Unit: d.unit}
		if v != nil {
			if n := *d.field(v); n != 0 {
				l.Value = strconv.FormatUint(uint64(n), 10)
			}
		}
		out = append(out, l)
	}
	return out
}

// readLimits reads the fields of defs in group from the form into v, and
// returns them as shown again.
func readLimits[T any](fr *formReader, group string, defs []limitDef[T], v *T) []limitField {
	var out []limitField
	for _, d := range defs {
		l := limitField{Group: group, Key: d.key, Label: d.label, Default: d.def, Unit: d.unit, Value: fr.text(d.key)}
		*d.field(v) = uint32(fr.uint(d.key, l.Path(), 32))
		out = append(out, l)
	}
	return out
}

var smtpLimitDefs = []limitDef[api.SMTPLimits]{
	{"max_recipients", "Recipients per message", "", validate.DefaultMaxRecipients, func(l *api.SMTPLimits) *uint32 { return &l.MaxRecipients }},
	{"max_connections", "Connections", "", validate.DefaultMaxConnections, func(l *api.SMTPLimits) *uint32 { return &l.MaxConnections }},
	{"max_connections_per_client", "Connections per client", "", validate.DefaultMaxConnectionsPerClient, func(l *api.SMTPLimits) *uint32 { return &l.MaxConnectionsPerClient }},
	{"command_timeout_seconds", "Command timeout", "seconds", validate.DefaultCommandTimeoutSeconds, func(l *api.SMTPLimits) *uint32 { return &l.CommandTimeoutSeconds }},
	{"data_timeout_seconds", "Data timeout", "seconds", validate.DefaultDataTimeoutSeconds, func(l *api.SMTPLimits) *uint32 { return &l.DataTimeoutSeconds }},
	{"session_timeout_seconds", "Session timeout", "seconds", validate.DefaultSessionTimeoutSeconds, func(l *api.SMTPLimits) *uint32 { return &l.SessionTimeoutSeconds }},
	{"max_errors", "Failed commands before closing", "", validate.DefaultMaxErrors, func(l *api.SMTPLimits) *uint32 { return &l.MaxErrors }},
}

// smtpFields maps the SMTP integration's field paths to the form.
var smtpFields = func() map[string]formField {
	m := map[string]formField{
		"enabled":                    {"State", "smtp-enabled"},
		"listen":                     {"Listen address", "smtp-listen"},
		"destination_domains":        {"Destination domains", "smtp-domains"},
		"clients":                    {"Clients", "smtp-clients"},
		"max_message_size":           {"Message size limit", "smtp-size-value"},
		"max_message_size.unlimited": {"Message size limit", "smtp-size-unlimited"},
		"max_message_size.value":     {"Message size limit", "smtp-size-value"},
		"max_message_size.unit":      {"Message size unit", "smtp-size-unit"},
		"tls.mode":                   {"TLS", "smtp-tls-mode"},
		"tls.cert_pem":               {"Server certificate", "smtp-tls-cert"},
		"tls.key_pem":                {"Private key", "smtp-tls-key"},
		"tls.client_cert":            {"Client certificates", "smtp-tls-client-cert"},
		"tls.client_ca_pem":          {"Client CA certificates", "smtp-tls-client-ca"},
	}
	for _, l := range limitFields("limits", smtpLimitDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
	addGatewayFields(m)
	return m
}()

func smtpFormFrom(cfg *ospreyv1.SmtpIntegration, version int64) smtpForm {
	a := convert.SMTPFromProto(cfg)
	f := smtpForm{
		Version: version, Enabled: a.Enabled, Listen: a.Listen,
		Domains: a.DestinationDomains, Clients: a.Clients,
		SizeUnit: string(api.MB),
	}
	if m := a.MaxMessageSize; m != nil {
		f.Unlimited = m.Unlimited
		if m.Value != 0 {
			f.SizeValue = strconv.FormatUint(m.Value, 10)
		}
		if m.Unit != "" {
			f.SizeUnit = string(m.Unit)
		}
	}
	tls := listenerFormFrom("", "", &api.GatewayListener{TLS: a.TLS})
	f.TLSMode, f.ClientCert, f.CertPEM, f.KeySet, f.ClientCAPEM = tls.TLSMode, tls.ClientCert, tls.CertPEM, tls.KeySet, tls.ClientCAPEM
	f.Limits = limitFields("limits", smtpLimitDefs, a.Limits)
	f.Mode = string(a.Mode)
	f.Gateway = gatewayFormFrom(a.Gateway)
	return f
}

// formReader reads a posted form and collects the errors of values that
// are not even of the right type (a number field holding text).
type formReader struct {
	r    *http.Request
	errs []fieldError
}

func (fr *formReader) text(name string) string { return strings.TrimSpace(fr.r.PostFormValue(name)) }

func (fr *formReader) checked(name string) bool { return fr.r.PostFormValue(name) == "on" }

// textOr reads a field that may be disabled in the form: one that was not
// sent at all is def.
func (fr *formReader) textOr(name, def string) string {
	v := fr.text(name) // parses the form
	if _, sent := fr.r.PostForm[name]; !sent {
		return def
	}
	return v
}

// list reads a list field: every value of name, split at commas and white
// space (so a pasted list works too), blanks dropped.
func (fr *formReader) list(name string) []string {
	out := []string{}
	for _, v := range fr.r.PostForm[name] {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
		})...)
	}
	return out
}

// uint reads a whole number of at most bits bits; empty is 0.
func (fr *formReader) uint(name, field string, bits int) uint64 {
	v := fr.text(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, bits)
	switch {
	case errors.Is(err, strconv.ErrRange):
		fr.errs = append(fr.errs, fieldError{Field: field, Message: "is too large"})
		return 0
	case err != nil:
		fr.errs = append(fr.errs, fieldError{Field: field, Message: "must be a whole number"})
		return 0
	}
	return n
}

// parseSMTPForm reads the SMTP form into what it shows again and what is written.
func parseSMTPForm(r *http.Request) (smtpForm, *api.SMTPIntegration, []fieldError) {
	fr := &formReader{r: r}
	f := smtpForm{
		Enabled: fr.checked("enabled"), Listen: fr.text("listen"),
		Domains: fr.list("destination_domains"), Clients: fr.list("clients"),
		Unlimited: fr.checked("size_unlimited"), SizeValue: fr.text("size_value"), SizeUnit: fr.text("size_unit"),
		TLSMode: fr.text("tls_mode"), ClientCert: fr.text("tls_client_cert"),
		CertPEM: fr.text("tls_cert_pem"), ClientCAPEM: fr.text("tls_client_ca_pem"),
	}
	f.Version = int64(fr.uint("version", "version", 63))
	in := &api.SMTPIntegration{
		Enabled: f.Enabled, Listen: f.Listen, DestinationDomains: f.Domains, Clients: f.Clients,
		MaxMessageSize: &api.SizeLimit{
			Unlimited: f.Unlimited,
			Value:     fr.uint("size_value", "max_message_size.value", 64),
			Unit:      api.SizeUnit(f.SizeUnit),
		},
		TLS: &api.SMTPTLS{
			Mode: api.TLSMode(f.TLSMode), CertPEM: f.CertPEM, KeyPEM: fr.text("tls_key_pem"),
			ClientCert: api.ClientCertMode(f.ClientCert), ClientCAPEM: f.ClientCAPEM,
		},
		Limits: &api.SMTPLimits{},
	}
	f.Limits = readLimits(fr, "limits", smtpLimitDefs, in.Limits)
	f.Mode, in.Mode = fr.text("mode"), api.SMTPMode(fr.text("mode"))
	f.Gateway, in.Gateway = parseGatewayForm(fr)
	// Leave out what the form sends by default and means nothing (the unit
	// drop-down always sends a unit), so that applying a form unchanged
	// writes what the API would, and no new version.
	if m := in.MaxMessageSize; m.Value == 0 && f.SizeValue == "" {
		if !m.Unlimited {
			in.MaxMessageSize = nil
		} else {
			m.Unit = ""
		}
	}
	in.TLS = tlsOrNil(in.TLS)
	if *in.Limits == (api.SMTPLimits{}) {
		in.Limits = nil
	}
	return f, in, fr.errs
}

// tlsOrNil returns nil for TLS settings that are all off or empty, as a
// listener's TLS never written reads in the form.
func tlsOrNil(t *api.SMTPTLS) *api.SMTPTLS {
	if (t.Mode == "" || t.Mode == api.TLSOff) && (t.ClientCert == "" || t.ClientCert == api.ClientCertOff) &&
		t.CertPEM == "" && t.KeyPEM == "" && t.ClientCAPEM == "" {
		return nil
	}
	return t
}

func (s *Server) smtpPage(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return err
	}
	cfg, version, err := s.store.GetSMTP(r.Context(), req.scope, id)
	if err != nil {
		return err
	}
	s.renderSMTP(w, http.StatusOK, req, settingsData{Sensor: head, SMTP: smtpFormFrom(cfg, version)})
	return nil
}

func (s *Server) renderSMTP(w http.ResponseWriter, status int, req *request, d settingsData) {
	d.ReadOnly = !req.p.Can(auth.Configure)
	s.render(w, status, req, "smtp", page{Title: d.Sensor.Name + " · SMTP integration", Nav: "sensors", Data: d})
}

func (s *Server) applySMTP(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return err
	}
	form, in, readErrs := parseSMTPForm(r)
	cfg, convErr := convert.SMTPToProto(in)
	if convErr != nil || len(readErrs) > 0 {
		problems, err := allProblems(readErrs, convErr, validate.SMTPIntegration(cfg))
		if err != nil {
			return err
		}
		s.smtpRefused(w, req, head, form, problems)
		return nil
	}
	version, err := s.store.PutSMTP(r.Context(), req.scope, id, cfg, form.Version)
	if verrs, ok := validate.AsErrors(err); ok {
		s.smtpRefused(w, req, head, form, fieldErrorsOf(verrs))
		return nil
	}
	if errors.Is(err, store.ErrConflict) {
		current, now, err := s.store.GetSMTP(r.Context(), req.scope, id)
		if err != nil {
			return err
		}
		s.renderSMTP(w, http.StatusConflict, req, settingsData{
			Sensor: head, SMTP: smtpFormFrom(current, now), Conflict: conflictMessage("SMTP integration", form.Version, now),
		})
		return nil
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "smtp integration applied", "sensor", id, "version", version, "user", req.p.Name)
	s.flash(req, "ok", "SMTP integration applied: configuration version %d.", version)
	redirect(w, r, "/sensors/"+url.PathEscape(id)+"/smtp")
	return nil
}

// applySMTPToTenant applies the sensor's stored SMTP integration to every
// other sensor of its tenant ("Apply above settings to all scanners"), each
// keeping its own addresses and certificates (store.CopySMTPToTenant), and
// says what happened to each.
func (s *Server) applySMTPToTenant(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	tenant, results, err := s.store.CopySMTPToTenant(r.Context(), req.scope, id)
	if err != nil {
		return err
	}
	var applied, unchanged, failed []string
	for _, res := range results {
		switch res.Outcome {
		case store.CopyApplied:
			applied = append(applied, fmt.Sprintf("%s (version %d)", res.Sensor, res.Version))
		case store.CopyUnchanged:
			unchanged = append(unchanged, res.Sensor)
		default:
			msg := "the configuration store did not answer; try again"
			if verrs, ok := validate.AsErrors(res.Err); ok {
				msg = verrs.Error()
			} else if errors.Is(res.Err, store.ErrConflict) {
				msg = "it changed meanwhile; apply again"
			}
			failed = append(failed, res.Sensor+": "+msg)
		}
	}
	s.log.InfoContext(r.Context(), "smtp integration applied to tenant", "sensor", id, "tenant", tenant,
		"applied", len(applied), "unchanged", len(unchanged), "failed", len(failed), "user", req.p.Name)
	if len(results) == 0 {
		s.flash(req, "ok", "Tenant %s has no other sensor: nothing to apply.", tenant)
	}
	if len(applied)+len(unchanged) > 0 {
		msg := fmt.Sprintf("SMTP settings of %s applied to the sensors of tenant %s", id, tenant)
		if len(applied) > 0 {
			msg += ": written to " + strings.Join(applied, ", ")
		}
		if len(unchanged) > 0 {
			msg += "; already had them: " + strings.Join(unchanged, ", ")
		}
		s.flash(req, "ok", "%s.", msg)
	}
	if len(failed) > 0 {
		s.flash(req, "error", "Not applied to %d of the sensors, which kept their settings: %s.", len(failed), strings.Join(failed, "; "))
	}
	redirect(w, r, "/sensors/"+url.PathEscape(id)+"/smtp")
	return nil
}

func (s *Server) smtpRefused(w http.ResponseWriter, req *request, head sensorHead, form smtpForm, problems []fieldError) {
	problems = form.Gateway.lineErrors(problems)
	errs := newFieldErrors(problems, smtpFields, map[string][]string{"destination_domains": form.Domains, "clients": form.Clients,
		"gateway.require_tls_domains": form.Gateway.RequireTLSDomains})
	s.renderSMTP(w, http.StatusUnprocessableEntity, req, settingsData{Sensor: head, SMTP: form, Errs: errs})
}

func conflictMessage(what string, yours, now int64) string {
	return fmt.Sprintf("Someone else changed this %s while you were editing it (you started from version %d; it is now at version %d). "+
		"Your changes were not applied. The form now shows the current values: make your changes again and apply.", what, yours, now)
}

// allProblems joins the errors of reading the form, of converting it (unknown
// choices) and of validating what did convert (validate.Merge), so a refused
// form names every problem at once. An error that is none of those is
// returned as it is.
func allProblems(read []fieldError, errs ...error) ([]fieldError, error) {
	var readErr error
	if len(read) > 0 {
		verrs := make(validate.Errors, len(read))
		for i, fe := range read {
			verrs[i] = validate.FieldError(fe)
		}
		readErr = verrs
	}
	merged := validate.Merge(append([]error{readErr}, errs...)...)
	if merged == nil {
		return nil, nil
	}
	verrs, ok := validate.AsErrors(merged)
	if !ok {
		return nil, merged
	}
	return fieldErrorsOf(verrs), nil
}

func fieldErrorsOf(verrs validate.Errors) []fieldError {
	out := make([]fieldError, len(verrs))
	for i, fe := range verrs {
		out[i] = fieldError(fe)
	}
	return out
}

// ---- POP3 ----

type pop3Form struct {
	Version        int64
	Enabled        bool
	Server         string
	Port           string
	Interval       string
	TLS            bool
	TLSMode        string
	Username       string
	PasswordSet    bool
	TLSCertificate string
	CipherSuite    string
	CAPEM          string
}

var pop3Fields = map[string]formField{
	"enabled":          {"State", "pop3-enabled"},
	"server":           {"Mail server", "pop3-server"},
	"port":             {"Port", "pop3-port"},
	"interval_seconds": {"Receive every", "pop3-interval"},
	"tls":              {"Use TLS encryption", "pop3-tls"},
	"tls_mode":         {"TLS mode", "pop3-tls-mode"},
	"username":         {"User name", "pop3-username"},
	"password":         {"Password", "pop3-password"},
	"tls_certificate":  {"TLS certificate", "pop3-tls-certificate"},
	"cipher_suite":     {"Cipher suite", "pop3-cipher-suite"},
	"ca_pem":           {"Additional trusted CAs", "pop3-ca"},
}

func pop3FormFrom(cfg *ospreyv1.Pop3Integration, version int64) pop3Form {
	a := convert.POP3FromProto(cfg)
	f := pop3Form{
		Version: version, Enabled: a.Enabled, Server: a.Server, TLS: a.TLS, TLSMode: string(a.TLSMode),
		Username: a.Username, PasswordSet: a.PasswordSet, TLSCertificate: string(a.TLSCertificate),
		CipherSuite: a.CipherSuite, CAPEM: a.CAPEM,
	}
	if a.Port != 0 {
		f.Port = strconv.FormatUint(uint64(a.Port), 10)
	}
	if a.IntervalSeconds != 0 {
		f.Interval = strconv.FormatUint(uint64(a.IntervalSeconds), 10)
	}
	if f.TLSMode == "" {
		f.TLSMode = string(api.POP3Implicit)
	}
	if f.TLSCertificate == "" {
		f.TLSCertificate = string(api.TrustedOnly) // the recommended choice
	}
	return f
}

// parsePOP3Form reads the POP3 form. The settings that apply only with TLS
// are disabled while "Use TLS" is off, and a browser does not send disabled
// fields: one that is not sent keeps the value shown, from stored. The
// password is never kept in the form that is shown again, whether or not
// the write succeeds.
func parsePOP3Form(r *http.Request, stored pop3Form) (pop3Form, *api.POP3Integration, []fieldError) {
	fr := &formReader{r: r}
	f := pop3Form{
		Enabled: fr.checked("enabled"), Server: fr.text("server"), Port: fr.text("port"), Interval: fr.text("interval_seconds"),
		TLS: fr.checked("tls"), TLSMode: fr.textOr("tls_mode", stored.TLSMode), Username: fr.text("username"),
		TLSCertificate: fr.textOr("tls_certificate", stored.TLSCertificate),
		CipherSuite:    fr.textOr("cipher_suite", stored.CipherSuite), CAPEM: fr.textOr("ca_pem", stored.CAPEM),
	}
	f.Version = int64(fr.uint("version", "version", 63))
	in := &api.POP3Integration{
		Enabled: f.Enabled, Server: f.Server,
		Port:            uint32(fr.uint("port", "port", 32)),
		IntervalSeconds: uint32(fr.uint("interval_seconds", "interval_seconds", 32)),
		TLS:             f.TLS, TLSMode: api.POP3TLSMode(f.TLSMode), Username: f.Username,
		Password:       r.PostFormValue("password"), // a password's spaces are its own
		TLSCertificate: api.TLSCertificatePolicy(f.TLSCertificate), CipherSuite: f.CipherSuite, CAPEM: f.CAPEM,
	}
	return f, in, fr.errs
}

func (s *Server) pop3Page(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return err
	}
	cfg, version, err := s.store.GetPOP3(r.Context(), req.scope, id)
	if err != nil {
		return err
	}
	s.renderPOP3(w, http.StatusOK, req, settingsData{Sensor: head, POP3: pop3FormFrom(cfg, version)})
	return nil
}

func (s *Server) renderPOP3(w http.ResponseWriter, status int, req *request, d settingsData) {
	d.ReadOnly = !req.p.Can(auth.Configure)
	s.render(w, status, req, "pop3", page{Title: d.Sensor.Name + " · POP3 integration", Nav: "sensors", Data: d})
}

func (s *Server) applyPOP3(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return err
	}
	stored, storedVersion, err := s.store.GetPOP3(r.Context(), req.scope, id)
	if err != nil {
		return err
	}
	// Fields the form did not send keep the stored value. If it changed
	// since the form was shown, the write below is refused as a conflict.
	form, in, readErrs := parsePOP3Form(r, pop3FormFrom(stored, storedVersion))
	form.PasswordSet = stored.GetPassword() != ""
	cfg, convErr := convert.POP3ToProto(in)
	if convErr != nil || len(readErrs) > 0 {
		problems, err := allProblems(readErrs, convErr, validate.POP3Integration(cfg))
		if err != nil {
			return err
		}
		s.pop3Refused(w, req, head, form, problems)
		return nil
	}
	version, err := s.store.PutPOP3(r.Context(), req.scope, id, cfg, form.Version)
	if verrs, ok := validate.AsErrors(err); ok {
		s.pop3Refused(w, req, head, form, fieldErrorsOf(verrs))
		return nil
	}
	if errors.Is(err, store.ErrConflict) {
		current, now, err := s.store.GetPOP3(r.Context(), req.scope, id)
		if err != nil {
			return err
		}
		s.renderPOP3(w, http.StatusConflict, req, settingsData{
			Sensor: head, POP3: pop3FormFrom(current, now), Conflict: conflictMessage("POP3 integration", form.Version, now),
		})
		return nil
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "pop3 integration applied", "sensor", id, "version", version, "user", req.p.Name)
	s.flash(req, "ok", "POP3 integration applied: configuration version %d.", version)
	redirect(w, r, "/sensors/"+url.PathEscape(id)+"/pop3")
	return nil
}

func (s *Server) pop3Refused(w http.ResponseWriter, req *request, head sensorHead, form pop3Form, problems []fieldError) {
	s.renderPOP3(w, http.StatusUnprocessableEntity, req, settingsData{Sensor: head, POP3: form, Errs: newFieldErrors(problems, pop3Fields, nil)})
}
