package validate

import (
	"net"
	"net/url"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults and bounds of a gateway's submission listener
// (SubmissionSettings); zero in the configuration means the default.
const (
	// DefaultSubmissionListen is the submission listener's address when
	// listener.listen is empty: every IPv4 address, port 587 (RFC 6409).
	DefaultSubmissionListen = ":587"

	DefaultMaxAuthFailuresPerClient = 10
	DefaultMaxAuthFailuresPerUser   = 5
	MaxAuthFailures                 = 10000
	DefaultAuthFailureWindowSeconds = 600
	MinAuthFailureWindowSeconds     = 10
	MaxAuthFailureWindowSeconds     = 86400
	DefaultAuthCacheSeconds         = 300
	MaxAuthCacheSeconds             = 86400

	DefaultLDAPTimeoutMs        = 5000
	DefaultSMTPForwardTimeoutMs = 10000
	MinAuthTimeoutMs            = 100
	MaxAuthTimeoutMs            = 60000

	// maxDN bounds the DNs, filters and templates of the LDAP settings.
	maxDN = 1024
	// maxSecret bounds a password.
	maxSecret = 1024
)

// Submission returns s with each zero field replaced by its default (the
// listen address, the throttle, the cache and the sources' timeouts); s
// may be nil. It does not check the values.
func Submission(s *ospreyv1.SubmissionSettings) *ospreyv1.SubmissionSettings {
	out := &ospreyv1.SubmissionSettings{}
	if s != nil {
		out = proto.CloneOf(s)
	}
	if out.Listener == nil {
		out.Listener = &ospreyv1.GatewayListener{}
	}
	if out.Listener.Listen == "" {
		out.Listener.Listen = DefaultSubmissionListen
	}
	orDefault := func(v *uint32, def uint32) {
		if *v == 0 {
			*v = def
		}
	}
	orDefault(&out.MaxFailuresPerClient, DefaultMaxAuthFailuresPerClient)
	orDefault(&out.MaxFailuresPerUser, DefaultMaxAuthFailuresPerUser)
	orDefault(&out.FailureWindowSeconds, DefaultAuthFailureWindowSeconds)
	orDefault(&out.CacheSeconds, DefaultAuthCacheSeconds)
	if out.Acceptance == ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_UNSPECIFIED {
		out.Acceptance = ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_ALL
	}
	if out.Ldap != nil {
		orDefault(&out.Ldap.TimeoutMs, DefaultLDAPTimeoutMs)
	}
	if out.SmtpForward != nil {
		orDefault(&out.SmtpForward.TimeoutMs, DefaultSMTPForwardTimeoutMs)
	}
	return out
}

// submission checks a gateway's submission listener (field
// "gateway.submission"). What only a running listener needs is required
// only when it is enabled; in the inbound mode it cannot be.
//
//   - enabled: only in the outbound and inbound_outbound modes (a monitor
//     integration keeps it, unused, as the rest of the gateway part).
//   - listener: as the other gateway listeners'; listen defaults to ":587".
//     Its addresses differ from the inbound and outbound listeners'.
//   - acceptance: ALL or LISTED (0 for ALL).
//   - source: LDAP or SMTP_FORWARD, required when enabled, with its
//     settings (see ldapAuth and smtpForwardAuth).
//   - the throttle: max_failures_per_client and max_failures_per_user 1 to
//     10000, failure_window_seconds 10 to 86400, cache_seconds 1 to
//     86400; 0 means the default.
func submission(r *report, f string, s *ospreyv1.SubmissionSettings, mode ospreyv1.SmtpMode, enabled bool, seen map[string]string) {
	on := s.GetEnabled()
	if on && enabled && Gateway(mode) && !Outbound(mode) {
		r.add(f+"enabled", "the submission listener runs only in the outbound and inbound_outbound modes")
	}
	l := s.GetListener()
	if on && l.GetListen() == "" {
		l = proto.CloneOf(l)
		if l == nil {
			l = &ospreyv1.GatewayListener{}
		}
		l.Listen = DefaultSubmissionListen
	}
	gatewayListener(r, f+"listener", l, false, seen)

	if _, ok := ospreyv1.AcceptanceMode_name[int32(s.GetAcceptance())]; !ok {
		r.add(f+"acceptance", "must be ALL or LISTED")
	}
	switch s.GetSource() {
	case ospreyv1.AuthSource_AUTH_SOURCE_UNSPECIFIED:
		if on {
			r.add(f+"source", "required: LDAP or SMTP_FORWARD, where the credentials are checked")
		}
	case ospreyv1.AuthSource_AUTH_SOURCE_LDAP:
		if on && s.GetLdap() == nil {
			r.add(f+"ldap.url", "required with source LDAP")
		}
	case ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD:
		if on && s.GetSmtpForward() == nil {
			r.add(f+"smtp_forward.address", "required with source SMTP_FORWARD")
		}
	default:
		r.add(f+"source", "must be LDAP or SMTP_FORWARD")
	}
	if a := s.GetLdap(); a != nil {
		ldapAuth(r, f+"ldap.", a, on && s.GetSource() == ospreyv1.AuthSource_AUTH_SOURCE_LDAP)
	}
	if a := s.GetSmtpForward(); a != nil {
		smtpForwardAuth(r, f+"smtp_forward.", a, on && s.GetSource() == ospreyv1.AuthSource_AUTH_SOURCE_SMTP_FORWARD)
	}

	upTo := func(field string, v, def uint32) {
		if v > MaxAuthFailures {
			r.add(f+field, "must be 1 to %d (0 for %d)", MaxAuthFailures, def)
		}
	}
	upTo("max_failures_per_client", s.GetMaxFailuresPerClient(), DefaultMaxAuthFailuresPerClient)
	upTo("max_failures_per_user", s.GetMaxFailuresPerUser(), DefaultMaxAuthFailuresPerUser)
	if v := s.GetFailureWindowSeconds(); v != 0 && (v < MinAuthFailureWindowSeconds || v > MaxAuthFailureWindowSeconds) {
		r.add(f+"failure_window_seconds", "must be %d to %d seconds (0 for %d)", MinAuthFailureWindowSeconds, MaxAuthFailureWindowSeconds, DefaultAuthFailureWindowSeconds)
	}
	if v := s.GetCacheSeconds(); v > MaxAuthCacheSeconds {
		r.add(f+"cache_seconds", "must be 1 to %d seconds (0 for %d; disable_cache turns the cache off)", MaxAuthCacheSeconds, DefaultAuthCacheSeconds)
	}
}

// ldapAuth checks the LDAP source (field "gateway.submission.ldap"); need
// says that it is the source of an enabled listener.
//
//   - url: ldap://host[:port] or ldaps://host[:port], nothing else.
//   - start_tls: only with ldap://.
//   - ca_pem: PEM certificates, when set.
//   - bind_dn_template, with exactly one "%s" where the user name goes; or
//     base_dn and filter, a valid filter with "%s" (one or more) where
//     the user name goes. One way, not both.
//   - search_bind_dn and search_bind_password: together, with the search;
//     both empty for an anonymous search.
//   - timeout_ms: 100 to 60000 (0 for 5000).
func ldapAuth(r *report, f string, a *ospreyv1.LdapAuth, need bool) {
	ldapURL(r, f+"url", a.GetUrl(), need)
	if a.GetStartTls() && strings.HasPrefix(strings.ToLower(a.GetUrl()), "ldaps:") {
		r.add(f+"start_tls", "only with an ldap:// url: ldaps:// is TLS from the start")
	}
	if ca := a.GetCaPem(); ca != "" {
		r.certificates(f+"ca_pem", ca)
	}
	tmpl, base, filter := a.GetBindDnTemplate(), a.GetBaseDn(), a.GetFilter()
	switch {
	case tmpl != "" && (base != "" || filter != ""):
		r.add(f+"bind_dn_template", "set either bind_dn_template (bind as the user) or base_dn and filter (search, then bind), not both")
	case tmpl != "":
		if n := strings.Count(tmpl, "%s"); n != 1 {
			r.add(f+"bind_dn_template", "must hold %%s exactly once, where the user name goes (it holds it %d times)", n)
		} else {
			dn(r, f+"bind_dn_template", strings.Replace(tmpl, "%s", "user", 1), true)
		}
	case base != "" || filter != "":
		dn(r, f+"base_dn", base, true)
		switch {
		case filter == "":
			r.add(f+"filter", "required with base_dn: such as (uid=%%s)")
		case !strings.Contains(filter, "%s"):
			r.add(f+"filter", "must hold %%s where the user name goes, such as (uid=%%s)")
		case !r.text(f+"filter", filter, maxDN):
		default:
			if _, err := ldap.CompileFilter(strings.ReplaceAll(filter, "%s", "user")); err != nil {
				r.add(f+"filter", "not a valid LDAP filter: %s", strings.TrimPrefix(err.Error(), "LDAP Result Code 201 \"Filter Compile Error\": "))
			}
		}
	case need:
		r.add(f+"bind_dn_template", "required: bind_dn_template, or base_dn and filter")
	}
	bindDN, pw := a.GetSearchBindDn(), a.GetSearchBindPassword()
	switch {
	case tmpl != "" && (bindDN != "" || pw != ""):
		r.add(f+"search_bind_dn", "only with base_dn and filter: bind_dn_template binds as the user without a search")
	case bindDN != "":
		dn(r, f+"search_bind_dn", bindDN, true)
		if pw == "" {
			r.add(f+"search_bind_password", "required with search_bind_dn (leave both empty to search anonymously)")
		}
	case pw != "":
		r.add(f+"search_bind_dn", "required with search_bind_password")
	}
	r.secret(f+"search_bind_password", pw, maxSecret)
	authTimeout(r, f+"timeout_ms", a.GetTimeoutMs(), DefaultLDAPTimeoutMs)
}

// ldapURL checks an LDAP server's URL: ldap or ldaps, a host, an optional
// port, and nothing else (a DN or a filter in the URL would be ignored).
func ldapURL(r *report, field, v string, need bool) {
	if v == "" {
		if need {
			r.add(field, "required: ldap://host[:port] or ldaps://host[:port]")
		}
		return
	}
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		r.add(field, "must be ldap://host[:port] or ldaps://host[:port]")
		return
	}
	if s := strings.ToLower(u.Scheme); s != "ldap" && s != "ldaps" {
		r.add(field, "the scheme must be ldap or ldaps, not %q", u.Scheme)
		return
	}
	if p := u.Port(); p != "" && !validPort(p) {
		r.add(field, "port must be a number from 1 to 65535")
		return
	}
	host(r, field, u.Hostname())
}

// dn checks a distinguished name.
func dn(r *report, field, v string, need bool) {
	switch {
	case v == "":
		if need {
			r.add(field, "required")
		}
	case !r.text(field, v, maxDN):
	default:
		if _, err := ldap.ParseDN(v); err != nil || !strings.Contains(v, "=") {
			r.add(field, "not a distinguished name, such as ou=people,dc=example,dc=com")
		}
	}
}

// smtpForwardAuth checks the SMTP forwarding source (field
// "gateway.submission.smtp_forward"); need says that it is the source of
// an enabled listener.
//
//   - address: host:port of the SMTP server, required.
//   - ca_pem: PEM certificates, when set; server_name: a host name.
//   - timeout_ms: 100 to 60000 (0 for 10000).
func smtpForwardAuth(r *report, f string, a *ospreyv1.SmtpForwardAuth, need bool) {
	switch addr := a.GetAddress(); {
	case addr == "":
		if need {
			r.add(f+"address", "required: host:port of the SMTP server that checks the credentials")
		}
	default:
		h, port, err := net.SplitHostPort(addr)
		if err != nil || h == "" {
			r.add(f+"address", "must be host:port, such as smtp.example.com:587")
			break
		}
		if !validPort(port) {
			r.add(f+"address", "port must be a number from 1 to 65535")
			break
		}
		host(r, f+"address", h)
	}
	if ca := a.GetCaPem(); ca != "" {
		r.certificates(f+"ca_pem", ca)
	}
	if n := a.GetServerName(); n != "" {
		host(r, f+"server_name", n)
	}
	authTimeout(r, f+"timeout_ms", a.GetTimeoutMs(), DefaultSMTPForwardTimeoutMs)
}

func authTimeout(r *report, field string, v, def uint32) {
	if v != 0 && (v < MinAuthTimeoutMs || v > MaxAuthTimeoutMs) {
		r.add(field, "must be %d to %d milliseconds (0 for %d)", MinAuthTimeoutMs, MaxAuthTimeoutMs, def)
	}
}
