package ui

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
)

// The Verdict policy page of a tenant, linked from its Rules page: what
// its gateways do with each kind of message (api.VerdictPolicy). Apply
// goes the API's way (PUT /api/v1/tenants/{tenant}/policy): the form
// becomes an api.VerdictPolicy, convert makes the proto message, and
// store.PutPolicy validates it and writes compare-and-swap on the version
// the form was rendered from. A refused write shows each field's errors
// beside it and saves nothing. The tag headers are text, one
// "Name: value" a line; an error of one names its line.

// verdictActionChoices are the actions of a policy's drop-downs, by their
// API names.
var verdictActionChoices = []choice{
	{string(api.ActionDeliver), "deliver"},
	{string(api.ActionTag), "tag (deliver with the subject tag and headers)"},
	{string(api.ActionQuarantine), "quarantine"},
	{string(api.ActionDropNotifyRecipient), "drop and notify the recipients"},
	{string(api.ActionDropNotifySender), "drop and notify the sender"},
}

// verdictActionLabel is an action as the Rules page says it; "" is the
// tenant's policy.
func verdictActionLabel(a api.VerdictAction) string {
	if a == "" {
		return "tenant's policy"
	}
	for _, c := range verdictActionChoices {
		if c.Value == string(a) {
			if a == api.ActionTag {
				return "tag"
			}
			return c.Label
		}
	}
	return display(string(a))
}

// policyForm is the verdict policy as the form shows it.
type policyForm struct {
	Version                                      int64
	Detected, UnscannableLimit, UnscannableError string
	SubjectTag                                   string
	// TagHeaders is one "Name: value" a line.
	TagHeaders                   string
	ApplyDMARC                   bool
	DMARCReject, DMARCQuarantine string
	SpamTagScore, SpamQuarantine string
	SpamSubjectTag               string
	// headerLines is the line (from 1) of each tag header, for its errors.
	headerLines []int
}

var policyFields = map[string]formField{
	"detected":              {"Detected", "pol-detected"},
	"unscannable_limit":     {"Unscannable: a limit hit", "pol-unscannable-limit"},
	"unscannable_error":     {"Unscannable: an engine failed", "pol-unscannable-error"},
	"subject_tag":           {"Subject tag", "pol-subject-tag"},
	"tag_headers":           {"Tag headers", "pol-tag-headers"},
	"apply_dmarc_policy":    {"Apply DMARC policy", "pol-apply-dmarc"},
	"dmarc_reject":          {"DMARC p=reject", "pol-dmarc-reject"},
	"dmarc_quarantine":      {"DMARC p=quarantine", "pol-dmarc-quarantine"},
	"spam_tag_score":        {"Spam tag score", "pol-spam-tag-score"},
	"spam_quarantine_score": {"Spam quarantine score", "pol-spam-quarantine-score"},
	"spam_subject_tag":      {"Spam subject tag", "pol-spam-subject-tag"},
}

func formatScore(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func policyFormFrom(p api.VerdictPolicy, version int64) policyForm {
	f := policyForm{
		Version: version, Detected: string(p.Detected), UnscannableLimit: string(p.UnscannableLimit),
		UnscannableError: string(p.UnscannableError), SubjectTag: p.SubjectTag, ApplyDMARC: p.ApplyDMARCPolicy,
		DMARCReject: string(p.DMARCReject), DMARCQuarantine: string(p.DMARCQuarantine),
		SpamTagScore: formatScore(p.SpamTagScore), SpamQuarantine: formatScore(p.SpamQuarantineScore),
		SpamSubjectTag: p.SpamSubjectTag,
	}
	var lines []string
	for i, h := range p.TagHeaders {
		lines = append(lines, h.Name+": "+h.Value)
		f.headerLines = append(f.headerLines, i+1)
	}
	f.TagHeaders = strings.Join(lines, "\n")
	return f
}

// parsePolicyForm reads the form into what it shows again and what is
// written, with the errors of values that are not even of the right type.
func parsePolicyForm(r *http.Request) (policyForm, *api.VerdictPolicy, []fieldError) {
	fr := &formReader{r: r}
	f := policyForm{
		Detected: fr.text("detected"), UnscannableLimit: fr.text("unscannable_limit"), UnscannableError: fr.text("unscannable_error"),
		SubjectTag: fr.r.PostFormValue("subject_tag"), TagHeaders: fr.r.PostFormValue("tag_headers"),
		ApplyDMARC: fr.checked("apply_dmarc_policy"), DMARCReject: fr.text("dmarc_reject"), DMARCQuarantine: fr.text("dmarc_quarantine"),
		SpamTagScore: fr.text("spam_tag_score"), SpamQuarantine: fr.text("spam_quarantine_score"),
		SpamSubjectTag: fr.r.PostFormValue("spam_subject_tag"),
	}
	f.Version = int64(fr.uint("version", "version", 63))
	p := &api.VerdictPolicy{
		Detected: api.VerdictAction(f.Detected), UnscannableLimit: api.VerdictAction(f.UnscannableLimit),
		UnscannableError: api.VerdictAction(f.UnscannableError), SubjectTag: f.SubjectTag, ApplyDMARCPolicy: f.ApplyDMARC,
		DMARCReject: api.VerdictAction(f.DMARCReject), DMARCQuarantine: api.VerdictAction(f.DMARCQuarantine),
		SpamSubjectTag: f.SpamSubjectTag,
	}
	score := func(field, text string) float64 {
		if text == "" {
			return 0 // the default
		}
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			fr.errs = append(fr.errs, fieldError{field, "must be a number, such as 6 or 7.5"})
		}
		return v
	}
	p.SpamTagScore = score("spam_tag_score", f.SpamTagScore)
	p.SpamQuarantineScore = score("spam_quarantine_score", f.SpamQuarantine)
	for i, line := range strings.Split(strings.ReplaceAll(f.TagHeaders, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			fr.errs = append(fr.errs, fieldError{"tag_headers", fmt.Sprintf("line %d: want Name: value", i+1)})
			continue
		}
		p.TagHeaders = append(p.TagHeaders, api.HeaderField{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		f.headerLines = append(f.headerLines, i+1)
	}
	return f, p, fr.errs
}

// tagHeaderPath matches the path of a tag header's error: the index, the rest.
var tagHeaderPath = regexp.MustCompile(`^tag_headers\[(\d+)\](?:\.(.*))?$`)

// lineErrors gives each error of a tag header to the text field, naming
// the line it is on.
func (f policyForm) lineErrors(errs []fieldError) []fieldError {
	out := make([]fieldError, 0, len(errs))
	for _, e := range errs {
		m := tagHeaderPath.FindStringSubmatch(e.Field)
		if m == nil {
			out = append(out, e)
			continue
		}
		i, _ := strconv.Atoi(m[1])
		where := fmt.Sprintf("header %d", i+1)
		if i < len(f.headerLines) {
			where = fmt.Sprintf("line %d", f.headerLines[i])
		}
		if m[2] != "" {
			where += ": " + m[2]
		}
		out = append(out, fieldError{Field: "tag_headers", Message: where + ": " + e.Message})
	}
	return out
}

type policyData struct {
	Tenant, TenantName string
	Form               policyForm
	Actions            []choice
	Errs               *fieldErrors
	Conflict           string
	ReadOnly           bool
}

func (s *Server) renderPolicy(w http.ResponseWriter, status int, req *request, d policyData) {
	d.Actions, d.ReadOnly = verdictActionChoices, !req.p.Can(auth.Configure)
	s.render(w, status, req, "policy", page{Title: "Verdict policy · " + d.TenantName, Nav: "rules", Data: d})
}

func policyURL(tenant string) string { return rulesURL(tenant) + "/policy" }

// tenantPolicy reads a tenant's name and its verdict policy as the form
// shows it; another tenant's is not found.
func (s *Server) tenantPolicy(r *http.Request, req *request, tenant string) (string, policyForm, error) {
	t, _, err := s.store.GetTenant(r.Context(), req.scope, tenant)
	if err != nil {
		return "", policyForm{}, err
	}
	p, err := s.store.GetPolicy(r.Context(), req.scope, tenant)
	if err != nil {
		return "", policyForm{}, err
	}
	return t.GetName(), policyFormFrom(convert.PolicyFromProto(p), p.GetVersion()), nil
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant := r.PathValue("tenant")
	name, form, err := s.tenantPolicy(r, req, tenant)
	if err != nil {
		return err
	}
	s.renderPolicy(w, http.StatusOK, req, policyData{Tenant: tenant, TenantName: name, Form: form})
	return nil
}

func (s *Server) applyPolicy(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant := r.PathValue("tenant")
	// Another tenant's policy is not found, for a write as for a read.
	t, _, err := s.store.GetTenant(r.Context(), req.scope, tenant)
	if err != nil {
		return err
	}
	d := policyData{Tenant: tenant, TenantName: t.GetName()}
	form, in, readErrs := parsePolicyForm(r)
	pol, convErr := convert.PolicyToProto(in)
	var problems []fieldError
	if convErr != nil || len(readErrs) > 0 {
		if problems, err = allProblems(readErrs, convErr, validate.Policy(pol)); err != nil {
			return err
		}
	} else {
		stored, err := s.store.PutPolicy(r.Context(), req.scope, tenant, pol, form.Version)
		verrs, invalid := validate.AsErrors(err)
		switch {
		case err == nil:
			s.log.InfoContext(r.Context(), "verdict policy applied", "tenant", tenant, "version", stored.GetVersion(), "user", req.p.Name)
			s.flash(req, "ok", "Verdict policy of tenant %s saved (version %d): it applies from the next message scanned.", tenant, stored.GetVersion())
			redirect(w, r, policyURL(tenant))
			return nil
		case invalid:
			problems = fieldErrorsOf(verrs)
		case errors.Is(err, store.ErrConflict):
			name, current, err := s.tenantPolicy(r, req, tenant)
			if err != nil {
				return err
			}
			d.TenantName, d.Form = name, current
			d.Conflict = conflictMessage("verdict policy", form.Version, current.Version)
			s.renderPolicy(w, http.StatusConflict, req, d)
			return nil
		default:
			return err
		}
	}
	d.Form = form
	d.Errs = newFieldErrors(form.lineErrors(problems), policyFields, nil)
	s.renderPolicy(w, http.StatusUnprocessableEntity, req, d)
	return nil
}

// policySummary is a line of the Rules page saying what the tenant's
// policy does with detected and unscannable messages.
func (s *Server) policySummary(r *http.Request, req *request, tenant string) (string, error) {
	p, err := s.store.GetPolicy(r.Context(), req.scope, tenant)
	if err != nil {
		return "", err
	}
	a := convert.PolicyFromProto(p)
	return fmt.Sprintf("detected → %s · unscannable (a limit hit) → %s · unscannable (an engine failed) → %s",
		verdictActionLabel(a.Detected), verdictActionLabel(a.UnscannableLimit), verdictActionLabel(a.UnscannableError)), nil
}
