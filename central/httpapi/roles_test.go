package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/httpapi"
)

// TestEveryRouteByRole sends every route as a user of each role (of tenant
// default, and root of all tenants): a role without the route's capability
// gets 403 and nothing else does. TestRoleActions then holds the table's
// content against what each role of the product may do.
func TestEveryRouteByRole(t *testing.T) {
	e := newEnv(t)
	for _, u := range testUsers {
		if u.GetName() == "bob" {
			continue // alice's twin in the other tenant
		}
		p := auth.Principal{Name: u.GetName(), Role: u.GetRole(), AllTenants: u.GetAllTenants(), Tenants: u.GetTenants()}
		t.Run(auth.RoleTitle(u.GetRole())+" "+u.GetName(), func(t *testing.T) {
			for _, rt := range httpapi.Routes() {
				if rt.Pattern == "/healthz" || rt.Pattern == "/readyz" {
					continue
				}
				path := strings.NewReplacer("{tenant}", "default", "{id}", "s1", "{msg}", "m1", "{kind}", "inbound").Replace(rt.Pattern)
				req, err := http.NewRequestWithContext(t.Context(), rt.Method, e.url+path, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				req.SetBasicAuth(u.GetName(), testPassword)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				may := rt.Needs <= 0 || p.Can(rt.Needs)
				if forbidden := resp.StatusCode == http.StatusForbidden; forbidden == may || resp.StatusCode == http.StatusUnauthorized {
					t.Errorf("%s %s (needs %v): got %d; want 403: %v", rt.Method, path, rt.Needs, resp.StatusCode, !may)
				}
			}
		})
	}
}

// TestRoleActions: what each role of the product may and may not do, one
// representative call of each capability, in its own tenant.
func TestRoleActions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	type action struct {
		name string
		call func(c *api.Client, user string) error
	}
	actions := map[string]action{
		"read sensors": {"read sensors", func(c *api.Client, user string) error { _, err := c.Sensors(ctx); return err }},
		"read SMTP":    {"read SMTP", func(c *api.Client, user string) error { _, _, err := c.SMTP(ctx, "s1"); return err }},
		"write SMTP":   {"write SMTP", func(c *api.Client, user string) error { _, _, err := c.PutSMTP(ctx, "s1", validSMTP(), 0); return err }},
		"approve":      {"approve a sensor", func(c *api.Client, user string) error { _, err := c.ApproveSensor(ctx, "s1"); return err }},
		"read alerts":  {"read alerts", func(c *api.Client, user string) error { _, err := c.Alerts(ctx, api.AlertQuery{}); return err }},
		"read rules":   {"read rules", func(c *api.Client, user string) error { _, err := c.Rules(ctx, "default"); return err }},
		"write rules": {"write a rule", func(c *api.Client, user string) error {
			_, err := c.CreateRule(ctx, "default", api.Rule{ID: "r-" + user, Kind: api.RuleSenderDomain, Value: "evil.example", Severity: api.SeverityHigh})
			return err
		}},
		"read audit":  {"read the audit log", func(c *api.Client, user string) error { _, err := c.Audit(ctx, api.AuditQuery{}); return err }},
		"read users":  {"read users", func(c *api.Client, user string) error { _, err := c.Users(ctx); return err }},
		"read policy": {"read the policy", func(c *api.Client, user string) error { _, _, err := c.Policy(ctx, "default"); return err }},
		"create user": {"create a user", func(c *api.Client, user string) error {
			_, err := c.CreateUser(ctx, api.User{Name: "new-" + user, Role: api.RoleSecurityOfficer, Tenants: []string{"default"}, Password: testPassword})
			return err
		}},
		"create tenant": {"create a tenant", func(c *api.Client, user string) error {
			_, err := c.CreateTenant(ctx, api.Tenant{ID: "t-" + user, Name: "T"})
			return err
		}},
		"api token": {"create an API token", func(c *api.Client, user string) error {
			_, err := c.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI})
			return err
		}},
		"read quarantine": {"read the quarantine", func(c *api.Client, user string) error { _, err := c.Quarantine(ctx, api.QuarantineQuery{}); return err }},
	}
	tests := []struct {
		user string
		may  []string
	}{
		{"root", []string{"read sensors", "read SMTP", "write SMTP", "approve", "read alerts", "read rules", "write rules", "read audit", "read users", "read policy", "create user", "create tenant", "api token", "read quarantine"}},
		{"alice", []string{"read sensors", "read SMTP", "write SMTP", "approve", "read alerts", "read rules", "write rules", "read audit", "read users", "read policy", "api token", "read quarantine"}},
		{"lena", []string{"read sensors", "read SMTP", "write SMTP", "approve", "read alerts", "read policy", "api token"}},
		{"sam", []string{"read sensors", "read SMTP", "read alerts", "read rules", "write rules", "read audit", "read policy", "api token", "read quarantine"}},
		{"otto", []string{"read alerts", "read rules", "read audit", "api token", "read quarantine"}},
		{"audrey", []string{"read sensors", "read SMTP", "read alerts", "read rules", "read audit", "read users", "read policy", "api token", "read quarantine"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := e.client(t, tt.user)
			may := map[string]bool{}
			for _, a := range tt.may {
				may[a] = true
			}
			for key, a := range actions {
				err := a.call(c, tt.user)
				switch got := statusOf(err); {
				case may[key] && err != nil && got != http.StatusServiceUnavailable: // 503: allowed, but no quarantine here
					t.Errorf("%s: %v, want success", a.name, err)
				case !may[key] && got != http.StatusForbidden:
					t.Errorf("%s: got %d (%v), want 403", a.name, got, err)
				}
			}
		})
	}
}

// TestTenantLimitedUserSeesNothingOfAnother: an administrator of tenant acme
// (bob) and a security auditor of default and acme see every list of their
// tenants only, and another tenant's objects as absent.
func TestTenantLimitedUserSeesNothingOfAnother(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	root := e.client(t, "root")
	if _, err := root.CreateTenant(ctx, api.Tenant{ID: "globex", Name: "Globex"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.CreateUser(ctx, api.User{Name: "both", Role: api.RoleSecurityAuditor, Tenants: []string{"acme", "default"}, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"default", "acme", "globex"} {
		rule := api.Rule{ID: "r-" + tenant, Kind: api.RuleSenderDomain, Value: tenant + ".example", Severity: api.SeverityHigh}
		if _, err := root.CreateRule(ctx, tenant, rule); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user    string
		tenants []string // those it sees
	}{
		{"bob", []string{"acme"}},
		{"both", []string{"acme", "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := e.client(t, tt.user)
			ts, err := c.Tenants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range ts {
				got = append(got, x.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.tenants, ",") {
				t.Errorf("tenants: got %v, want %v", got, tt.tenants)
			}
			for _, tenant := range []string{"default", "acme", "globex"} {
				sees := strings.Contains(","+strings.Join(tt.tenants, ",")+",", ","+tenant+",")
				_, err := c.Rules(ctx, tenant)
				if sees && err != nil {
					t.Errorf("rules of %s: %v", tenant, err)
				}
				if !sees && statusOf(err) != http.StatusNotFound && statusOf(err) != http.StatusForbidden {
					t.Errorf("rules of %s: got %v, want 404 or 403", tenant, err)
				}
			}
			users, err := c.Users(ctx)
			if tt.user == "bob" {
				return // bob's role reads users: checked in TestListsAreScopedToTheCallersTenant
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				if u.AllTenants {
					t.Errorf("%s sees %s, a user of all tenants", tt.user, u.Name)
				}
				for _, ut := range u.Tenants {
					if ut == "globex" {
						t.Errorf("%s sees %s, a user of globex", tt.user, u.Name)
					}
				}
			}
			if _, err := c.Sensor(ctx, "s2"); tt.user == "both" && err != nil {
				t.Errorf("sensor s2 of acme: %v", err)
			}
		})
	}
}
