package httpapi_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestGlobalRulesAPI: an admin writes global rules, every user reads them,
// a tenant admin's write is refused, a tenant in the body is a field
// error; on an SCN, a rule or a user from the PCN is refused with 403.
func TestGlobalRulesAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	root, alice := e.client(t, "root"), e.client(t, "alice")
	rule := api.Rule{Kind: api.RuleSender, Value: "mallory@evil.example", Severity: api.SeverityHigh}

	status := func(err error) int {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return apiErr.StatusCode
		}
		return 0
	}
	if _, err := alice.CreateGlobalRule(ctx, rule); status(err) != http.StatusForbidden {
		t.Errorf("a tenant admin creates a global rule: %v, want 403", err)
	}
	withTenant := rule
	withTenant.Tenant = "default"
	if _, err := root.CreateGlobalRule(ctx, withTenant); status(err) != http.StatusBadRequest {
		t.Errorf("a global rule with a tenant: %v, want 400", err)
	}
	created, err := root.CreateGlobalRule(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	if !created.Global || created.Tenant != "" || created.ID == "" {
		t.Errorf("created: %+v, want global, no tenant, an id", created)
	}
	list, err := alice.GlobalRules(ctx)
	if err != nil || len(list) != 1 || list[0].ID != created.ID {
		t.Errorf("a tenant admin lists the global rules: %+v, %v", list, err)
	}
	if err := alice.DeleteGlobalRule(ctx, created.ID, 0); status(err) != http.StatusForbidden {
		t.Errorf("a tenant admin deletes a global rule: %v, want 403", err)
	}
	if err := root.DeleteGlobalRule(ctx, created.ID, 0); err != nil {
		t.Fatal(err)
	}

	// What came from a PCN is read-only.
	if err := e.store.ApplyPrimaryUpdate(ctx, &ospreyv1.DownUpdate{
		Users: []*ospreyv1.User{{Name: "pcn-admin", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true, PasswordHash: []byte("x")}},
		Rules: []*ospreyv1.Rule{{Id: "fromthepcn", Kind: ospreyv1.RuleKind_RULE_KIND_SENDER, Value: "eve@evil.example", Severity: ospreyv1.Severity_SEVERITY_LOW}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.DeleteGlobalRule(ctx, "fromthepcn", 0); status(err) != http.StatusForbidden {
		t.Errorf("delete the PCN's global rule: %v, want 403", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, e.url+"/api/v1/users/pcn-admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("root", testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("DELETE the PCN's user: %d, want 403", resp.StatusCode)
	}
	users, err := root.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Name == "pcn-admin" && u.Origin != validate.OriginPCN {
			t.Errorf("the PCN's user reads with origin %q", u.Origin)
		}
	}
	if _, _, err := e.store.GetUser(ctx, store.AllTenants(), "pcn-admin"); err != nil {
		t.Errorf("the PCN's user after the refused delete: %v", err)
	}
}
