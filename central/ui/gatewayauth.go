package ui

import (
	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
)

// senderAuthForm is a gateway's sender authentication in the SMTP form
// (docs/configuration.md, "Sender authentication").
type senderAuthForm struct {
	Enabled    bool
	AuthservID string
	// TempError and PermError are the treatments' API names.
	TempError, PermError string
	Timeouts             []limitField
}

// AuthTreatments are the choices of a DMARC error's treatment.
func (senderAuthForm) AuthTreatments() []choice {
	return []choice{
		{Value: string(api.AuthErrorAsIs), Label: "keep it: no policy applies"},
		{Value: string(api.AuthErrorFail), Label: "count it as fail"},
		{Value: string(api.AuthErrorNone), Label: "count it as none"},
	}
}

// errorField is the choice of one DMARC error's treatment.
type errorField struct{ ID, Name, Path, Label, Value string }

// ErrorFields are the choices of the temperror's and the permerror's
// treatments.
func (f senderAuthForm) ErrorFields() []errorField {
	return []errorField{
		{"smtp-gw-sa-temperror", "gw_sa_temperror", "gateway.sender_auth.dmarc_temperror", "A DMARC temperror (DNS failed)", f.TempError},
		{"smtp-gw-sa-permerror", "gw_sa_permerror", "gateway.sender_auth.dmarc_permerror", "A DMARC permerror (broken record)", f.PermError},
	}
}

var senderAuthDefs = []limitDef[api.SenderAuthSettings]{
	{"lookup_timeout_ms", "Each DNS lookup within", "milliseconds", validate.DefaultSenderAuthLookupTimeoutMs, func(s *api.SenderAuthSettings) *uint32 { return &s.LookupTimeoutMs }},
	{"check_timeout_ms", "All lookups of a check within", "milliseconds", validate.DefaultSenderAuthCheckTimeoutMs, func(s *api.SenderAuthSettings) *uint32 { return &s.CheckTimeoutMs }},
}

// addSenderAuthFields adds sender_auth's field paths to the SMTP form's.
func addSenderAuthFields(m map[string]formField) {
	m["gateway.sender_auth.enabled"] = formField{"Check senders", "smtp-gw-sa-enabled"}
	m["gateway.sender_auth.authserv_id"] = formField{"Authentication-Results name", "smtp-gw-sa-id"}
	m["gateway.sender_auth.dmarc_temperror"] = formField{"A DMARC temperror", "smtp-gw-sa-temperror"}
	m["gateway.sender_auth.dmarc_permerror"] = formField{"A DMARC permerror", "smtp-gw-sa-permerror"}
	for _, l := range limitFields("gateway.sender_auth", senderAuthDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
}

func senderAuthFormFrom(s *api.SenderAuthSettings) senderAuthForm {
	f := senderAuthForm{TempError: string(api.AuthErrorAsIs), PermError: string(api.AuthErrorAsIs), Timeouts: limitFields("gateway.sender_auth", senderAuthDefs, s)}
	if s == nil {
		return f
	}
	f.Enabled, f.AuthservID = s.Enabled, s.AuthservID
	if s.DMARCTempError != "" {
		f.TempError = string(s.DMARCTempError)
	}
	if s.DMARCPermError != "" {
		f.PermError = string(s.DMARCPermError)
	}
	return f
}

// readSenderAuth reads sender_auth from the SMTP form: what it shows again,
// and what is written.
func readSenderAuth(fr *formReader) (senderAuthForm, *api.SenderAuthSettings) {
	f := senderAuthForm{Enabled: fr.checked("gw_sa_enabled"), AuthservID: fr.text("gw_sa_authserv_id"),
		TempError: fr.text("gw_sa_temperror"), PermError: fr.text("gw_sa_permerror")}
	s := &api.SenderAuthSettings{Enabled: f.Enabled, AuthservID: f.AuthservID,
		DMARCTempError: api.AuthErrorTreatment(f.TempError), DMARCPermError: api.AuthErrorTreatment(f.PermError)}
	f.Timeouts = readLimits(fr, "gateway.sender_auth", senderAuthDefs, s)
	return f, s
}
