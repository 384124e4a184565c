package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// choice is one option of a drop-down.
type choice struct {
	Value, Label string
}

// ---- Users ----

type userRow struct {
	Name       string
	Role       ospreyv1.Role
	Tenants    []string
	AllTenants bool
	Created    string
	// FromPCN marks an account an SCN got from its PCN (read-only here).
	FromPCN bool
}

type userForm struct {
	Name, Role string
	Tenants    []string
	AllTenants bool
}

// Picked reports whether the form has tenant t ticked.
func (f userForm) Picked(t string) bool { return slices.Contains(f.Tenants, t) }

type usersData struct {
	Users    []userRow
	Tenants  []*ospreyv1.Tenant
	Roles    []choice
	Form     userForm
	Errs     *fieldErrors
	ReadOnly bool
}

var userFields = map[string]formField{
	"name":        {"User name", "user-name"},
	"role":        {"Role", "user-role"},
	"tenants":     {"Tenants", "user-tenants"},
	"all_tenants": {"All tenants", "user-all-tenants"},
	"password":    {"Password", "user-password"},
	"confirm":     {"Confirm password", "user-confirm"},
}

// userRoles are the roles a form offers, with the product's names and what
// each may do.
var userRoles = []choice{
	{string(api.RoleAdministrator), "Administrator: everything in its tenants; with all tenants also users, tenants and servers"},
	{string(api.RoleLocalAdministrator), "Local administrator: this node's sensors, integrations, gateway and queue; reads alerts"},
	{string(api.RoleSeniorSecurityOfficer), "Senior security officer: alerts, quarantine, rules, audit log; reads configuration"},
	{string(api.RoleSecurityOfficer), "Security officer: reads and handles alerts; reads quarantine, rules and audit log"},
	{string(api.RoleSecurityAuditor), "Security auditor: reads everything in its tenants"},
}

func (s *Server) usersData(r *http.Request, req *request, form userForm, errs *fieldErrors) (usersData, error) {
	users, err := s.store.ListUsers(r.Context(), req.scope)
	if err != nil {
		return usersData{}, err
	}
	d := usersData{Form: form, Errs: errs, ReadOnly: !req.p.Can(auth.ManageUsers), Roles: userRoles}
	for _, u := range users {
		au := convert.UserFromProto(u)
		row := userRow{Name: au.Name, Role: u.GetRole(), Tenants: au.Tenants, AllTenants: au.AllTenants, Created: "unknown", FromPCN: u.GetOrigin() != ""}
		if u.GetCreatedAt() != nil {
			row.Created = formatTime(u.GetCreatedAt().AsTime())
		}
		d.Users = append(d.Users, row)
	}
	if d.Tenants, err = s.store.ListTenants(r.Context(), req.scope); err != nil {
		return usersData{}, err
	}
	if d.Form.Role == "" {
		d.Form.Role = string(api.RoleSecurityOfficer)
	}
	return d, nil
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := s.usersData(r, req, userForm{}, nil)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, req, "users", page{Title: "Users", Nav: "users", Data: d})
	return nil
}

// createUser makes a user as the API does: the role converted, the password
// checked and hashed, and the store's write validated and scoped.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request, req *request) error {
	fr := &formReader{r: r}
	form := userForm{Name: fr.text("name"), Role: fr.text("role"), Tenants: r.PostForm["tenants"], AllTenants: r.PostFormValue("all_tenants") != ""}
	password, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	in := api.User{Name: form.Name, Role: api.Role(form.Role), Tenants: form.Tenants, AllTenants: form.AllTenants}

	var problems []fieldError
	u, convErr := convert.UserToProto(in)
	if verrs, ok := validate.AsErrors(convErr); ok {
		problems = fieldErrorsOf(verrs)
		u = &ospreyv1.User{Name: in.Name, Tenants: in.Tenants, AllTenants: in.AllTenants}
	} else if convErr != nil {
		return convErr
	}
	if problem := auth.NewPasswordProblem(password); problem != "" {
		problems = append(problems, fieldError{"password", problem})
	} else if password != confirm {
		problems = append(problems, fieldError{"confirm", "does not match the password"})
	}
	if convErr == nil {
		if verrs, ok := validate.AsErrors(validate.User(u)); ok {
			problems = append(problems, fieldErrorsOf(verrs)...)
		}
	}
	if len(problems) == 0 {
		hash, err := auth.HashPassword(password)
		if err != nil {
			return err
		}
		u.PasswordHash, u.CreatedAt = hash, timestamppb.New(s.now())
		_, err = s.store.CreateUser(r.Context(), req.scope, u)
		switch verrs, isValidation := validate.AsErrors(err); {
		case err == nil:
			s.log.InfoContext(r.Context(), "user created", "name", u.GetName(), "role", form.Role, "by", req.p.Name)
			s.flash(req, "ok", "User %s created.", u.GetName())
			redirect(w, r, "/users")
			return nil
		case isValidation:
			problems = fieldErrorsOf(verrs)
		case errors.Is(err, store.ErrExists):
			problems = []fieldError{{"name", "a user of that name already exists"}}
		case errors.Is(err, store.ErrForbidden):
			problems = []fieldError{{"tenants", "outside your tenants"}}
		case errors.Is(err, store.ErrNotFound):
			problems = []fieldError{{"tenants", "no such tenant"}}
		default:
			return err
		}
	}
	// A ticked tenant the validation refuses is named on the tenants field.
	for i, p := range problems {
		if list, idx, ok := listEntry(p.Field); ok && list == "tenants" && idx < len(form.Tenants) {
			problems[i] = fieldError{"tenants", fmt.Sprintf("%q: %s", form.Tenants[idx], p.Message)}
		}
	}
	d, err := s.usersData(r, req, form, newFieldErrors(problems, userFields, nil))
	if err != nil {
		return err
	}
	s.render(w, http.StatusUnprocessableEntity, req, "users", page{Title: "Users", Nav: "users", Data: d})
	return nil
}

// ---- Join tokens ----

type tokenRow struct {
	ID, Tenant, Description string
	Created, Expires        string
	Uses                    string
	Expired                 bool
}

type tokenForm struct {
	Tenant, TTL, TTLUnit, MaxUses, Description string
}

// issuedToken is a join token just made: its secret is shown this once.
type issuedToken struct {
	Secret  string
	Tenant  string
	Expires string
	Central string
}

type tokensData struct {
	Tokens    []tokenRow
	Tenants   []*ospreyv1.Tenant
	TTLUnits  []choice
	Form      tokenForm
	Errs      *fieldErrors
	ReadOnly  bool
	Available bool
	Issued    *issuedToken
	OwnTenant string
}

var tokenFields = map[string]formField{
	"tenant":      {"Tenant", "token-tenant"},
	"ttl_seconds": {"Valid for", "token-ttl"},
	"expires_at":  {"Valid for", "token-ttl"},
	"max_uses":    {"Maximum enrollments", "token-max-uses"},
	"uses_left":   {"Maximum enrollments", "token-max-uses"},
	"description": {"Description", "token-description"},
}

var ttlUnits = []struct {
	choice
	d time.Duration
}{
	{choice{"minutes", "minutes"}, time.Minute},
	{choice{"hours", "hours"}, time.Hour},
	{choice{"days", "days"}, 24 * time.Hour},
}

func (s *Server) tokensData(r *http.Request, req *request, form tokenForm, errs *fieldErrors) (tokensData, error) {
	tokens, err := s.store.ListTokens(r.Context(), req.scope)
	if err != nil {
		return tokensData{}, err
	}
	now := s.now()
	d := tokensData{Form: form, Errs: errs, ReadOnly: !req.p.Can(auth.Configure), Available: s.joinTokens != nil, OwnTenant: req.p.OnlyTenant()}
	for _, u := range ttlUnits {
		d.TTLUnits = append(d.TTLUnits, u.choice)
	}
	for _, t := range tokens {
		if t.GetKind() != ospreyv1.TokenKind_TOKEN_KIND_JOIN || t.GetSensorId() != "" {
			continue // API tokens, and the node's own one-sensor tokens
		}
		row := tokenRow{ID: t.GetId(), Tenant: t.GetTenant(), Description: t.GetDescription(), Created: "unknown", Expires: "never", Uses: "unlimited"}
		if t.GetCreatedAt() != nil {
			row.Created = formatTime(t.GetCreatedAt().AsTime())
		}
		if exp := t.GetExpiresAt(); exp != nil {
			row.Expires = exp.AsTime().UTC().Format("2006-01-02 15:04") + " UTC"
			row.Expired = !now.Before(exp.AsTime())
		}
		if t.GetMaxUses() > 0 {
			row.Uses = formatUses(t.GetUsesLeft(), t.GetMaxUses())
		}
		d.Tokens = append(d.Tokens, row)
	}
	if req.severalTenants() {
		if d.Tenants, err = s.store.ListTenants(r.Context(), req.scope); err != nil {
			return tokensData{}, err
		}
	}
	if d.Form.TTLUnit == "" {
		d.Form = tokenForm{TTL: "24", TTLUnit: "hours", MaxUses: "1", Tenant: "default"}
	}
	return d, nil
}

func formatUses(left, max uint32) string {
	return fmt.Sprintf("%d of %d left", left, max)
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := s.tokensData(r, req, tokenForm{}, nil)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, req, "tokens", page{Title: "Join tokens", Nav: "tokens", Data: d})
	return nil
}

// createToken makes a join token as the API does, and shows its secret once
// with the command line that enrolls a sensor with it.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, req *request) error {
	fr := &formReader{r: r}
	form := tokenForm{Tenant: fr.text("tenant"), TTL: fr.text("ttl"), TTLUnit: fr.text("ttl_unit"),
		MaxUses: fr.text("max_uses"), Description: fr.text("description")}
	if !req.severalTenants() {
		form.Tenant = req.p.OnlyTenant()
	}
	ttl := fr.uint("ttl", "ttl_seconds", 32)
	maxUses := fr.uint("max_uses", "max_uses", 32)
	unit := time.Duration(0)
	for _, u := range ttlUnits {
		if u.Value == form.TTLUnit {
			unit = u.d
		}
	}
	problems := fr.errs
	var ttlSeconds uint64
	if unit == 0 {
		problems = append(problems, fieldError{"ttl_seconds", "choose minutes, hours or days"})
	} else if ttlSeconds = ttl * uint64(unit/time.Second); ttlSeconds > 1<<32-1 {
		problems = append(problems, fieldError{"ttl_seconds", "too long: at most 49,710 days"})
	}
	in := api.TokenRequest{Kind: api.TokenJoin, Tenant: form.Tenant, TTLSeconds: uint32(ttlSeconds),
		MaxUses: uint32(maxUses), Description: form.Description}
	if s.joinTokens == nil {
		problems = append(problems, fieldError{"", "join tokens are not available on this node"})
	}
	if len(problems) == 0 {
		t, err := convert.TokenFromRequest(in, s.now())
		if err != nil {
			return err
		}
		secret, err := s.joinTokens(t)
		if err != nil {
			return err
		}
		_, err = s.store.CreateToken(r.Context(), req.scope, t)
		switch verrs, isValidation := validate.AsErrors(err); {
		case err == nil:
			s.log.InfoContext(r.Context(), "join token created", "token", t.GetId(), "tenant", t.GetTenant(), "by", req.p.Name)
			d, err := s.tokensData(r, req, tokenForm{}, nil)
			if err != nil {
				return err
			}
			d.Issued = &issuedToken{Secret: secret, Tenant: t.GetTenant(), Expires: "never", Central: s.centralAddr(r)}
			if t.GetExpiresAt() != nil {
				d.Issued.Expires = formatTime(t.GetExpiresAt().AsTime())
			}
			s.render(w, http.StatusCreated, req, "tokens", page{Title: "Join tokens", Nav: "tokens", Data: d})
			return nil
		case isValidation:
			problems = fieldErrorsOf(verrs)
		case errors.Is(err, store.ErrNotFound):
			problems = []fieldError{{"tenant", "no such tenant"}}
		case errors.Is(err, store.ErrForbidden):
			problems = []fieldError{{"tenant", "outside your tenant"}}
		default:
			return err
		}
	}
	d, err := s.tokensData(r, req, form, newFieldErrors(problems, tokenFields, nil))
	if err != nil {
		return err
	}
	s.render(w, http.StatusUnprocessableEntity, req, "tokens", page{Title: "Join tokens", Nav: "tokens", Data: d})
	return nil
}

// deleteToken removes a join token, so no more sensors enroll with it.
func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	t, _, err := s.store.GetToken(r.Context(), req.scope, id)
	if err != nil {
		return err
	}
	if t.GetKind() != ospreyv1.TokenKind_TOKEN_KIND_JOIN {
		return store.ErrNotFound // API tokens are not managed here
	}
	if err := s.store.DeleteToken(r.Context(), req.scope, id); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "join token deleted", "token", id, "by", req.p.Name)
	s.flash(req, "ok", "Join token %s deleted.", id)
	redirect(w, r, "/tokens")
	return nil
}

// centralAddr is the --central address of a join command line: the node's
// gRPC address, with the host the browser used when the node listens on
// every address.
func (s *Server) centralAddr(r *http.Request) string {
	host, port, err := net.SplitHostPort(s.node.GRPCAddr)
	if err != nil {
		return s.node.GRPCAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		} else {
			host = r.Host
		}
	}
	return net.JoinHostPort(host, port)
}

// ---- Cluster ----

type clusterData struct {
	Name     string
	HTTPAddr string
	GRPCAddr string
	Etcd     []etcdMember
	EtcdErr  string
	// Members are the central nodes as this node's gossip sees them, DNS
	// the answers its DNS responder gives; nil when membership is not known.
	Members  []clusterMember
	DNS      *api.ClusterDNS
	NodesErr string
}

// clusterMember is one gossip member with its health as badges.
type clusterMember struct {
	api.Node
	Components []component
}

type component struct {
	Name string
	OK   bool
}

type etcdMember struct {
	Name       string
	ClientURLs []string
	PeerURLs   []string
	Learner    bool
}

// clusterPage shows this node, the central nodes of the cluster with their
// state, health and addresses (from gossip), the DNS answers they give, and
// the etcd members the configuration is stored in. Node addresses are for
// those who see every tenant.
func (s *Server) clusterPage(w http.ResponseWriter, r *http.Request, req *request) error {
	if !req.scope.IsAll() {
		return errForbidden
	}
	d := clusterData{Name: s.node.Name, GRPCAddr: s.node.GRPCAddr}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		d.HTTPAddr = a.String()
	}
	if s.node.Etcd != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		resp, err := s.node.Etcd.MemberList(ctx)
		if err != nil {
			d.EtcdErr = "etcd did not list its members: " + err.Error()
		} else {
			for _, m := range resp.Members {
				d.Etcd = append(d.Etcd, etcdMember{
					Name: m.GetName(), ClientURLs: stripUserinfo(m.GetClientURLs()),
					PeerURLs: stripUserinfo(m.GetPeerURLs()), Learner: m.GetIsLearner(),
				})
			}
		}
	}
	if s.node.Nodes != nil {
		list, err := s.node.Nodes(r.Context())
		if err != nil {
			d.NodesErr = "cluster membership is not available: " + err.Error()
		} else {
			d.DNS = &list.DNS
			for _, n := range list.Nodes {
				m := clusterMember{Node: n, Components: []component{
					{"etcd", n.Health.Etcd}, {"grpc", n.Health.GRPC}, {"http", n.Health.HTTP}, {"sql", n.Health.SQL},
				}}
				if slices.Contains(n.Roles, api.NodeRoleSensor) {
					m.Components = append(m.Components, component{"smtp", n.Health.SMTP}, component{"spool", n.Health.Spool})
				}
				if n.Health.Rspamd != nil {
					m.Components = append(m.Components, component{"rspamd", *n.Health.Rspamd})
				}
				d.Members = append(d.Members, m)
			}
		}
	}
	s.render(w, http.StatusOK, req, "cluster", page{Title: "Cluster", Nav: "cluster", Data: d})
	return nil
}

// stripUserinfo drops credentials from URLs: they are never shown.
func stripUserinfo(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, e := range urls {
		if u, err := url.Parse(e); err == nil && u.User != nil {
			u.User = nil
			e = u.String()
		}
		out = append(out, e)
	}
	return out
}
