package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The Rules page: a tenant's indicator rules, which the scanner applies to
// the next message it scans. A new rule goes through the store, whose write
// runs validate.Rule, so a value the API refuses is refused here with the
// same message beside the field, and nothing is saved. Enable, disable and
// delete are compare-and-swap on the version the row was rendered with: a
// rule someone else changed meanwhile is reported, not overwritten.

// ruleKinds are the kinds of rule and what the form says of each; their
// names are the API's (convert.RuleKindFromProto).
var ruleKinds = []struct {
	kind               ospreyv1.RuleKind
	label, placeholder string
}{
	{ospreyv1.RuleKind_RULE_KIND_SHA256, "Attachment SHA-256", "64 hexadecimal digits"},
	{ospreyv1.RuleKind_RULE_KIND_SHA1, "Attachment SHA-1", "40 hexadecimal digits"},
	{ospreyv1.RuleKind_RULE_KIND_MD5, "Attachment MD5", "32 hexadecimal digits"},
	{ospreyv1.RuleKind_RULE_KIND_SENDER, "Sender address", "mallory@evil.example"},
	{ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "Sender domain", "evil.example"},
	{ospreyv1.RuleKind_RULE_KIND_URL, "URL in the body", "https://evil.example/login"},
	{ospreyv1.RuleKind_RULE_KIND_URL_HOST, "Host of a URL in the body", "evil.example"},
	{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "Attachment name (glob)", "invoice*.pdf.exe"},
	{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "Attachment extension", "exe"},
	{ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "Sender authentication result", "dmarc=fail"},
}

func ruleKindLabel(k ospreyv1.RuleKind) string {
	for _, v := range ruleKinds {
		if v.kind == k {
			return v.label
		}
	}
	return "unknown kind"
}

func rulesURL(tenant string) string { return "/rules/" + url.PathEscape(tenant) }

type ruleRow struct {
	ID, Kind, KindName, Value, Severity, Description string
	// FromPCN marks a global rule an SCN got from its PCN (read-only here).
	FromPCN bool
	// Action is what a gateway does with a message the rule matched.
	Action   string
	Disabled bool
	Created  string
	Version  int64
}

type ruleForm struct {
	Kind, Value, Severity, Description, Action string
	// Global adds the rule to every tenant (administrators of all tenants).
	Global bool
}

type ruleKindChoice struct {
	Value, Label, Placeholder string
}

type rulesData struct {
	Tenant     string
	TenantName string
	Tenants    []*ospreyv1.Tenant // for administrators, to switch tenant
	Rules      []ruleRow
	Enabled    int
	Kinds      []ruleKindChoice
	Severities []string
	Actions    []choice
	// Policy says what the tenant's verdict policy does.
	Policy   string
	Form     ruleForm
	Errs     *fieldErrors
	Conflict string
	ReadOnly bool
	// Global are the global rules, which apply to this tenant's messages
	// as to every other's; GlobalWrite lets the user add and delete them.
	Global      []ruleRow
	GlobalWrite bool
}

var ruleFields = map[string]formField{
	"kind":        {"Kind", "rule-kind"},
	"value":       {"Value", "rule-value"},
	"severity":    {"Severity", "rule-severity"},
	"description": {"Description", "rule-description"},
	"action":      {"Action", "rule-action"},
}

// rules redirects to the rules of the user's tenant, or of the tenant an
// administrator chose (?tenant=), or of the first tenant.
func (s *Server) rules(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant := req.p.OnlyTenant()
	if req.severalTenants() {
		tenant = r.URL.Query().Get("tenant")
		if tenant == "" {
			tenants, err := s.store.ListTenants(r.Context(), req.scope)
			if err != nil {
				return err
			}
			if len(tenants) == 0 {
				return store.ErrNotFound
			}
			tenant = tenants[0].GetId()
			for _, t := range tenants {
				if t.GetId() == "default" {
					tenant = t.GetId()
				}
			}
		}
	}
	redirect(w, r, rulesURL(tenant))
	return nil
}

func (s *Server) rulesData(r *http.Request, req *request, tenant string, form ruleForm, errs *fieldErrors) (rulesData, error) {
	ctx := r.Context()
	list, err := s.store.ListRules(ctx, req.scope, tenant)
	if err != nil {
		return rulesData{}, err
	}
	t, _, err := s.store.GetTenant(ctx, req.scope, tenant)
	if err != nil {
		return rulesData{}, err
	}
	d := rulesData{Tenant: tenant, TenantName: t.GetName(), Form: form, Errs: errs, ReadOnly: !req.p.Can(auth.WriteRules)}
	if req.severalTenants() {
		if d.Tenants, err = s.store.ListTenants(ctx, req.scope); err != nil {
			return rulesData{}, err
		}
	}
	for _, k := range ruleKinds {
		d.Kinds = append(d.Kinds, ruleKindChoice{Value: string(convert.RuleKindFromProto(k.kind)), Label: k.label, Placeholder: k.placeholder})
	}
	d.Severities = severityNames()
	d.Actions = append([]choice{{"", verdictActionLabel("")}}, verdictActionChoices...)
	if d.Policy, err = s.policySummary(r, req, tenant); err != nil {
		return rulesData{}, err
	}
	for _, rule := range list {
		row := ruleRowOf(rule)
		if !row.Disabled {
			d.Enabled++
		}
		d.Rules = append(d.Rules, row)
	}
	global, err := s.store.ListGlobalRules(ctx, req.scope)
	if err != nil {
		return rulesData{}, err
	}
	for _, rule := range global {
		d.Global = append(d.Global, ruleRowOf(rule))
	}
	d.GlobalWrite = req.p.Can(auth.WriteGlobalRules)
	if d.Form == (ruleForm{}) {
		d.Form = ruleForm{Kind: "url_host", Severity: "high"}
	}
	return d, nil
}

func ruleRowOf(rule *ospreyv1.Rule) ruleRow {
	row := ruleRow{
		ID: rule.GetId(), Kind: ruleKindLabel(rule.GetKind()), Value: display(rule.GetValue()),
		Severity: severityName(rule.GetSeverity()), Description: display(rule.GetDescription()),
		Disabled: rule.GetDisabled(), Created: "unknown", Version: rule.GetVersion(),
		KindName: string(convert.RuleKindFromProto(rule.GetKind())),
		Action:   verdictActionLabel(convert.VerdictActionFromProto(rule.GetAction())),
		FromPCN:  rule.GetOrigin() != "",
	}
	if rule.GetCreatedAt() != nil {
		row.Created = formatTime(rule.GetCreatedAt().AsTime())
	}
	return row
}

func (s *Server) renderRules(w http.ResponseWriter, status int, req *request, d rulesData) {
	s.render(w, status, req, "rules", page{Title: "Rules · " + d.TenantName, Nav: "rules", Data: d})
}

func (s *Server) rulesPage(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := s.rulesData(r, req, r.PathValue("tenant"), ruleForm{}, nil)
	if err != nil {
		return err
	}
	s.renderRules(w, http.StatusOK, req, d)
	return nil
}

// createRule adds a rule to the tenant. Kind and severity are read from
// their drop-downs (an unknown name is a field error); everything else is
// validate.Rule's, run by the store's write.
func (s *Server) createRule(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant := r.PathValue("tenant")
	// Another tenant's rules are not found, for a write as for a read.
	if _, _, err := s.store.GetTenant(r.Context(), req.scope, tenant); err != nil {
		return err
	}
	fr := &formReader{r: r}
	form := ruleForm{Kind: fr.text("kind"), Value: fr.text("value"), Severity: fr.text("severity"), Description: fr.text("description"),
		Action: fr.text("action"), Global: fr.text("scope") == "global"}
	rule := &ospreyv1.Rule{Tenant: tenant, Value: form.Value, Description: form.Description}
	create, what := s.store.CreateRule, "Rule"
	if form.Global {
		// The store refuses a scope other than all tenants.
		rule.Tenant, rule.Global = "", true
		create, what = s.store.CreateGlobalRule, "Global rule"
	}
	var problems []fieldError
	kind, err := convert.RuleKindToProto(api.RuleKind(form.Kind))
	rule.Kind = kind
	if err != nil {
		problems = append(problems, fieldError{"kind", "must be one of the kinds listed"})
	}
	if sev, ok := parseSeverity(form.Severity); ok {
		rule.Severity = sev
	} else if form.Severity != "" {
		problems = append(problems, fieldError{"severity", "must be low, medium, high or critical"})
	}
	if rule.Action, err = convert.VerdictActionToProto(api.VerdictAction(form.Action)); err != nil {
		problems = append(problems, fieldError{"action", "must be one of the actions listed"})
	}
	if len(problems) > 0 {
		// Report the rest of the form's problems along with the drop-downs'.
		var err error
		if problems, err = allProblems(problems, nil, validate.Rule(rule)); err != nil {
			return err
		}
	} else {
		created, err := create(r.Context(), req.scope, rule)
		switch verrs, isValidation := validate.AsErrors(err); {
		case err == nil:
			s.log.InfoContext(r.Context(), "rule created", "tenant", rule.GetTenant(), "global", form.Global, "rule", created.GetId(),
				"kind", form.Kind, "action", form.Action, "user", req.p.Name)
			s.flash(req, "ok", "%s %s created: it applies from the next message scanned.", what, created.GetId())
			redirect(w, r, rulesURL(tenant))
			return nil
		case isValidation:
			problems = fieldErrorsOf(verrs)
		default:
			return err // another tenant's, or a tenant that is gone: 404
		}
	}
	d, err := s.rulesData(r, req, tenant, form, newFieldErrors(problems, ruleFields, nil))
	if err != nil {
		return err
	}
	s.renderRules(w, http.StatusUnprocessableEntity, req, d)
	return nil
}

func (s *Server) enableRule(w http.ResponseWriter, r *http.Request, req *request) error {
	return s.setRuleDisabled(w, r, req, false)
}

func (s *Server) disableRule(w http.ResponseWriter, r *http.Request, req *request) error {
	return s.setRuleDisabled(w, r, req, true)
}

// ruleVersion reads the version a row's form was rendered with.
func ruleVersion(r *http.Request) (int64, error) {
	v, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rule version %q: %w", r.PostFormValue("version"), errBadForm)
	}
	return v, nil
}

// errBadForm is a form that this UI's pages do not send.
var errBadForm = errors.New("malformed form")

func (s *Server) setRuleDisabled(w http.ResponseWriter, r *http.Request, req *request, disabled bool) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	version, err := ruleVersion(r)
	if err != nil {
		return err
	}
	rule, err := s.store.GetRule(r.Context(), req.scope, tenant, id)
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "disabled", false: "enabled"}[disabled]
	if rule.GetVersion() != version {
		return s.ruleConflict(w, r, req, tenant, id, version, rule.GetVersion())
	}
	if rule.GetDisabled() != disabled {
		rule.Disabled = disabled
		_, err = s.store.UpdateRule(r.Context(), req.scope, rule, version)
		if errors.Is(err, store.ErrConflict) {
			now, err := s.store.GetRule(r.Context(), req.scope, tenant, id)
			if err != nil {
				return err
			}
			return s.ruleConflict(w, r, req, tenant, id, version, now.GetVersion())
		}
		if err != nil {
			return err
		}
	}
	s.log.InfoContext(r.Context(), "rule "+verb, "tenant", tenant, "rule", id, "user", req.p.Name)
	s.flash(req, "ok", "Rule %s %s.", id, verb)
	redirect(w, r, rulesURL(tenant))
	return nil
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	version, err := ruleVersion(r)
	if err != nil {
		return err
	}
	_, err = s.store.DeleteRule(r.Context(), req.scope, tenant, id, version)
	if errors.Is(err, store.ErrConflict) {
		now, err := s.store.GetRule(r.Context(), req.scope, tenant, id)
		if err != nil {
			return err
		}
		return s.ruleConflict(w, r, req, tenant, id, version, now.GetVersion())
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "rule deleted", "tenant", tenant, "rule", id, "user", req.p.Name)
	s.flash(req, "ok", "Rule %s deleted.", id)
	redirect(w, r, rulesURL(tenant))
	return nil
}

// deleteGlobalRule deletes a global rule from a tenant's rules page and
// comes back to it.
func (s *Server) deleteGlobalRule(w http.ResponseWriter, r *http.Request, req *request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	version, err := ruleVersion(r)
	if err != nil {
		return err
	}
	_, err = s.store.DeleteGlobalRule(r.Context(), req.scope, id, version)
	if errors.Is(err, store.ErrConflict) {
		now, err := s.store.GetGlobalRule(r.Context(), req.scope, id)
		if err != nil {
			return err
		}
		return s.ruleConflict(w, r, req, tenant, id, version, now.GetVersion())
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "global rule deleted", "rule", id, "user", req.p.Name)
	s.flash(req, "ok", "Global rule %s deleted.", id)
	redirect(w, r, rulesURL(tenant))
	return nil
}

// ruleConflict shows the rules as they are now, saying that rule id changed
// since the page the user acted on.
func (s *Server) ruleConflict(w http.ResponseWriter, r *http.Request, req *request, tenant, id string, yours, now int64) error {
	d, err := s.rulesData(r, req, tenant, ruleForm{}, nil)
	if err != nil {
		return err
	}
	d.Conflict = fmt.Sprintf("Someone else changed rule %s while you were looking at it (you saw version %d; it is now at version %d). "+
		"Nothing was changed. The list now shows the rule as it is: check it and try again.", id, yours, now)
	s.renderRules(w, http.StatusConflict, req, d)
	return nil
}
