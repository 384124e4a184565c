package convert

import (
	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var authSources = enum[ospreyv1.AuthSource, api.AuthSource]{
	what:  "authentication source",
	names: []api.AuthSource{"", api.AuthSourceLDAP, api.AuthSourceSMTPForward},
}

// submissionToProto converts the submission listener of a write, recording unknown enum
// names in errs under "gateway.submission.". The search password goes through as written:
// an empty one keeps the stored one (the store's writes see to that).
func submissionToProto(errs *fieldErrors, in *api.SubmissionSettings) *ospreyv1.SubmissionSettings {
	if in == nil {
		return nil
	}
	const f = "gateway.submission."
	acceptance, err := acceptanceModes.toProto(in.Acceptance)
	errs.check(f+"acceptance", err)
	source, err := authSources.toProto(in.Source)
	errs.check(f+"source", err)
	out := &ospreyv1.SubmissionSettings{
		Enabled:              in.Enabled,
		Listener:             listenerToProto(errs, f+"listener.", in.Listener),
		AllowAuthWithoutTls:  in.AllowAuthWithoutTLS,
		Acceptance:           acceptance,
		Source:               source,
		MaxFailuresPerClient: in.MaxFailuresPerClient,
		MaxFailuresPerUser:   in.MaxFailuresPerUser,
		FailureWindowSeconds: in.FailureWindowSeconds,
		CacheSeconds:         in.CacheSeconds,
		DisableCache:         in.DisableCache,
	}
	if l := in.LDAP; l != nil {
		out.Ldap = nilIfEmpty(&ospreyv1.LdapAuth{
			Url: l.URL, StartTls: l.StartTLS, CaPem: l.CAPEM, BindDnTemplate: l.BindDNTemplate,
			BaseDn: l.BaseDN, Filter: l.Filter, SearchBindDn: l.SearchBindDN, SearchBindPassword: l.SearchBindPassword,
			TimeoutMs: l.TimeoutMs,
		})
	}
	if s := in.SMTPForward; s != nil {
		out.SmtpForward = nilIfEmpty(&ospreyv1.SmtpForwardAuth{
			Address: s.Address, ImplicitTls: s.ImplicitTLS, CaPem: s.CAPEM, ServerName: s.ServerName, TimeoutMs: s.TimeoutMs,
		})
	}
	return nilIfEmpty(out)
}

// submissionFromProto converts the submission listener for a read: the listener and both
// sources are there, and the search password becomes search_bind_password_set.
func submissionFromProto(s *ospreyv1.SubmissionSettings) *api.SubmissionSettings {
	l, f := s.GetLdap(), s.GetSmtpForward()
	return &api.SubmissionSettings{
		Enabled:             s.GetEnabled(),
		Listener:            listenerFromProto(s.GetListener()),
		AllowAuthWithoutTLS: s.GetAllowAuthWithoutTls(),
		Acceptance:          acceptanceModes.toAPI(s.GetAcceptance()),
		Source:              authSources.toAPI(s.GetSource()),
		LDAP: &api.LDAPAuth{
			URL: l.GetUrl(), StartTLS: l.GetStartTls(), CAPEM: l.GetCaPem(), BindDNTemplate: l.GetBindDnTemplate(),
			BaseDN: l.GetBaseDn(), Filter: l.GetFilter(), SearchBindDN: l.GetSearchBindDn(),
			SearchBindPasswordSet: l.GetSearchBindPassword() != "", TimeoutMs: l.GetTimeoutMs(),
		},
		SMTPForward: &api.SMTPForwardAuth{
			Address: f.GetAddress(), ImplicitTLS: f.GetImplicitTls(), CAPEM: f.GetCaPem(), ServerName: f.GetServerName(), TimeoutMs: f.GetTimeoutMs(),
		},
		MaxFailuresPerClient: s.GetMaxFailuresPerClient(),
		MaxFailuresPerUser:   s.GetMaxFailuresPerUser(),
		FailureWindowSeconds: s.GetFailureWindowSeconds(),
		CacheSeconds:         s.GetCacheSeconds(),
		DisableCache:         s.GetDisableCache(),
	}
}
