package ui

import (
	"strconv"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
)

// submissionForm is a gateway's submission listener in the SMTP form, the
// "Authentication" part of the outbound modes (Symantec Messaging
// Gateway's "Authentication Mail Settings"; docs/configuration.md,
// "Submission"). Both sources' settings are shown and kept, the one not
// chosen unused.
type submissionForm struct {
	Enabled           bool
	Listener          listenerForm
	AuthWithoutTLS    bool
	Acceptance        string // api.AcceptanceMode
	Source            string // api.AuthSource
	LDAP              api.LDAPAuth
	LDAPTimeout       string
	Forward           api.SMTPForwardAuth
	ForwardTimeout    string
	DisableCache      bool
	Throttle          []limitField
	SearchPasswordSet bool // the search password is stored (LDAP.SearchBindPasswordSet, kept on a failed write)
}

// submissionListener names the submission listener's fields.
var submissionListener = listenerForm{Dir: "submission", Title: "Submission", path: "gateway.submission.listener"}

var submissionDefs = []limitDef[api.SubmissionSettings]{
	{"max_failures_per_client", "Failed logins per client", "", validate.DefaultMaxAuthFailuresPerClient, func(s *api.SubmissionSettings) *uint32 { return &s.MaxFailuresPerClient }},
	{"max_failures_per_user", "Failed logins per user name", "", validate.DefaultMaxAuthFailuresPerUser, func(s *api.SubmissionSettings) *uint32 { return &s.MaxFailuresPerUser }},
	{"failure_window_seconds", "Within", "seconds", validate.DefaultAuthFailureWindowSeconds, func(s *api.SubmissionSettings) *uint32 { return &s.FailureWindowSeconds }},
	{"cache_seconds", "Remember a good login for", "seconds", validate.DefaultAuthCacheSeconds, func(s *api.SubmissionSettings) *uint32 { return &s.CacheSeconds }},
}

// submissionText are the form's text fields: name in the form, id,
// validation path, label.
var submissionText = []struct{ name, id, path, label string }{
	{"gw_sub_ldap_url", "smtp-gw-sub-ldap-url", "gateway.submission.ldap.url", "Directory URL"},
	{"gw_sub_ldap_ca_pem", "smtp-gw-sub-ldap-ca", "gateway.submission.ldap.ca_pem", "Directory CA certificates"},
	{"gw_sub_ldap_bind_dn_template", "smtp-gw-sub-ldap-template", "gateway.submission.ldap.bind_dn_template", "Bind DN"},
	{"gw_sub_ldap_base_dn", "smtp-gw-sub-ldap-base", "gateway.submission.ldap.base_dn", "Search base"},
	{"gw_sub_ldap_filter", "smtp-gw-sub-ldap-filter", "gateway.submission.ldap.filter", "Search filter"},
	{"gw_sub_ldap_search_bind_dn", "smtp-gw-sub-ldap-search-dn", "gateway.submission.ldap.search_bind_dn", "Search as"},
	{"gw_sub_ldap_search_bind_password", "smtp-gw-sub-ldap-search-pw", "gateway.submission.ldap.search_bind_password", "Search password"},
	{"gw_sub_ldap_timeout_ms", "smtp-gw-sub-ldap-timeout", "gateway.submission.ldap.timeout_ms", "Directory timeout"},
	{"gw_sub_fwd_address", "smtp-gw-sub-fwd-address", "gateway.submission.smtp_forward.address", "SMTP server"},
	{"gw_sub_fwd_ca_pem", "smtp-gw-sub-fwd-ca", "gateway.submission.smtp_forward.ca_pem", "SMTP server CA certificates"},
	{"gw_sub_fwd_server_name", "smtp-gw-sub-fwd-name", "gateway.submission.smtp_forward.server_name", "SMTP server name"},
	{"gw_sub_fwd_timeout_ms", "smtp-gw-sub-fwd-timeout", "gateway.submission.smtp_forward.timeout_ms", "SMTP server timeout"},
}

// addSubmissionFields adds the submission listener's field paths to the
// SMTP form's (its listener's come with the other listeners').
func addSubmissionFields(m map[string]formField) {
	m["gateway.submission.enabled"] = formField{"Enable authentication", "smtp-gw-sub-enabled"}
	m["gateway.submission.allow_auth_without_tls"] = formField{"AUTH without TLS", "smtp-gw-sub-no-tls"}
	m["gateway.submission.acceptance"] = formField{"Accept authenticated mail from", "smtp-gw-sub-acceptance-all"}
	m["gateway.submission.source"] = formField{"Authentication source", "smtp-gw-sub-source-ldap"}
	m["gateway.submission.ldap.start_tls"] = formField{"StartTLS", "smtp-gw-sub-ldap-starttls"}
	m["gateway.submission.smtp_forward.implicit_tls"] = formField{"Implicit TLS", "smtp-gw-sub-fwd-implicit"}
	m["gateway.submission.disable_cache"] = formField{"Check every login", "smtp-gw-sub-no-cache"}
	for _, t := range submissionText {
		m[t.path] = formField{t.label, t.id}
	}
	for _, l := range limitFields("gateway.submission", submissionDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
}

func submissionFormFrom(s *api.SubmissionSettings) submissionForm {
	// No source is chosen until one is: a form applied unchanged then
	// writes nothing new.
	f := submissionForm{Listener: listenerFormOf(submissionListener, nil), Acceptance: string(api.AcceptanceAll),
		Throttle: limitFields("gateway.submission", submissionDefs, s)}
	if s == nil {
		return f
	}
	f.Enabled, f.AuthWithoutTLS, f.DisableCache = s.Enabled, s.AllowAuthWithoutTLS, s.DisableCache
	f.Listener = listenerFormOf(submissionListener, s.Listener)
	if s.Acceptance != "" {
		f.Acceptance = string(s.Acceptance)
	}
	if s.Source != "" {
		f.Source = string(s.Source)
	}
	if s.LDAP != nil {
		f.LDAP = *s.LDAP
		f.LDAPTimeout = zeroEmpty(s.LDAP.TimeoutMs)
		f.SearchPasswordSet = s.LDAP.SearchBindPasswordSet
	}
	if s.SMTPForward != nil {
		f.Forward = *s.SMTPForward
		f.ForwardTimeout = zeroEmpty(s.SMTPForward.TimeoutMs)
	}
	return f
}

// readSubmission reads the submission listener from the SMTP form: what
// it shows again, and what is written. The search password is written
// only when typed: empty keeps the stored one (the store sees to that).
func readSubmission(fr *formReader) (submissionForm, *api.SubmissionSettings) {
	f := submissionForm{
		Enabled:        fr.checked("gw_sub_enabled"),
		Listener:       readListenerOf(fr, submissionListener),
		AuthWithoutTLS: fr.checked("gw_sub_no_tls"),
		Acceptance:     fr.text("gw_sub_acceptance"),
		Source:         fr.text("gw_sub_source"),
		DisableCache:   fr.checked("gw_sub_no_cache"),
		LDAP: api.LDAPAuth{
			URL: fr.text("gw_sub_ldap_url"), StartTLS: fr.checked("gw_sub_ldap_start_tls"), CAPEM: fr.text("gw_sub_ldap_ca_pem"),
			BindDNTemplate: fr.text("gw_sub_ldap_bind_dn_template"), BaseDN: fr.text("gw_sub_ldap_base_dn"),
			Filter: fr.text("gw_sub_ldap_filter"), SearchBindDN: fr.text("gw_sub_ldap_search_bind_dn"),
		},
		LDAPTimeout: fr.text("gw_sub_ldap_timeout_ms"),
		Forward: api.SMTPForwardAuth{
			Address: fr.text("gw_sub_fwd_address"), ImplicitTLS: fr.checked("gw_sub_fwd_implicit_tls"),
			CAPEM: fr.text("gw_sub_fwd_ca_pem"), ServerName: fr.text("gw_sub_fwd_server_name"),
		},
		ForwardTimeout:    fr.text("gw_sub_fwd_timeout_ms"),
		SearchPasswordSet: fr.checked("gw_sub_ldap_search_bind_password_set"),
	}
	s := &api.SubmissionSettings{
		Enabled: f.Enabled, Listener: f.Listener.read(fr), AllowAuthWithoutTLS: f.AuthWithoutTLS,
		Acceptance: api.AcceptanceMode(f.Acceptance), Source: api.AuthSource(f.Source), DisableCache: f.DisableCache,
	}
	ldap, fwd := f.LDAP, f.Forward
	// Not trimmed: a password may start or end with a space.
	ldap.SearchBindPassword = fr.r.PostFormValue("gw_sub_ldap_search_bind_password")
	ldap.TimeoutMs = uint32(fr.uint("gw_sub_ldap_timeout_ms", "gateway.submission.ldap.timeout_ms", 32))
	fwd.TimeoutMs = uint32(fr.uint("gw_sub_fwd_timeout_ms", "gateway.submission.smtp_forward.timeout_ms", 32))
	s.LDAP, s.SMTPForward = &ldap, &fwd
	f.Throttle = readLimits(fr, "gateway.submission", submissionDefs, s)
	return f, s
}

// SourceIs reports whether source is the chosen one.
func (f submissionForm) SourceIs(source string) bool { return f.Source == source }

func zeroEmpty(v uint32) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(v), 10)
}
