package store

import (
	"errors"
	"testing"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestGlobalRules: every scope reads the global rules, only AllTenants
// writes them, a tenant or an origin in a write is refused, and the rule
// cache gives them with every tenant's own rules, after them.
func TestGlobalRules(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	all, a := AllTenants(), TenantScope("a")

	c := NewRuleCache(st, CacheOptions{})
	runCache(t, c.Run, c.Wait)

	if _, err := st.CreateGlobalRule(ctx, a, rule("", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "x@example.com")); !errors.Is(err, ErrForbidden) {
		t.Errorf("a tenant scope creates a global rule: %v, want forbidden", err)
	}
	if _, err := st.CreateGlobalRule(ctx, all, rule("a", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "x@example.com")); !isFieldErr(err) {
		t.Errorf("a global rule with a tenant: %v, want a field error", err)
	}
	withOrigin := rule("", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "x@example.com")
	withOrigin.Origin = validate.OriginPCN
	if _, err := st.CreateGlobalRule(ctx, all, withOrigin); !isFieldErr(err) {
		t.Errorf("a global rule with an origin: %v, want a field error", err)
	}
	g, err := st.CreateGlobalRule(ctx, all, rule("", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "X@Example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !g.GetGlobal() || g.GetValue() != "x@example.com" || g.GetVersion() == 0 {
		t.Errorf("created: %v, want global, canonical, versioned", g)
	}
	if _, err := st.CreateGlobalRule(ctx, all, rule("", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "y@example.com")); !errors.Is(err, ErrExists) {
		t.Errorf("the same id again: %v, want exists", err)
	}
	// A tenant's rule is never global.
	tr := rule("a", "r1", ospreyv1.RuleKind_RULE_KIND_SENDER, "z@example.com")
	tr.Global = true
	if _, err := st.CreateRule(ctx, all, tr); !isFieldErr(err) {
		t.Errorf("a tenant's rule marked global: %v, want a field error", err)
	}
	if _, err := st.CreateRule(ctx, all, rule("a", "r1", ospreyv1.RuleKind_RULE_KIND_SENDER, "z@example.com")); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListGlobalRules(ctx, TenantScope("b"))
	if err != nil || ruleIDs(list) != "g1" {
		t.Errorf("tenant b reads the global rules: %q, %v; want g1", ruleIDs(list), err)
	}
	waitFor(t, c.Changed, func() bool {
		ra, _ := c.Rules("a")
		rb, _ := c.Rules("b")
		return ruleIDs(ra) == "r1,g1" && ruleIDs(rb) == "g1"
	})

	// Update and delete: AllTenants only, versioned.
	g.Description = "changed"
	if _, err := st.UpdateGlobalRule(ctx, a, g, g.GetVersion()); !errors.Is(err, ErrForbidden) {
		t.Errorf("a tenant scope updates a global rule: %v, want forbidden", err)
	}
	if _, err := st.UpdateGlobalRule(ctx, all, g, g.GetVersion()+100); !errors.Is(err, ErrConflict) {
		t.Errorf("update at a wrong version: %v, want conflict", err)
	}
	g2, err := st.UpdateGlobalRule(ctx, all, g, g.GetVersion())
	if err != nil || g2.GetDescription() != "changed" {
		t.Fatalf("update: %v, %v", g2, err)
	}
	if _, err := st.DeleteGlobalRule(ctx, a, "g1", AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("a tenant scope deletes a global rule: %v, want forbidden", err)
	}
	if _, err := st.DeleteGlobalRule(ctx, all, "g1", g2.GetVersion()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.Changed, func() bool { rb, _ := c.Rules("b"); return len(rb) == 0 })
}

// TestPrimaryOrigin: what ApplyPrimaryUpdate writes is read-only to every
// scope, a clash with a local user keeps the local one, an invalid update
// changes nothing, and ClearPrimaryOrigin makes it all local.
func TestPrimaryOrigin(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	all := AllTenants()
	local := &ospreyv1.User{Name: "carol", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true, PasswordHash: []byte("local"), CreatedAt: created}
	if _, err := st.CreateUser(ctx, all, local); err != nil {
		t.Fatal(err)
	}
	pcnUser := func(name string) *ospreyv1.User {
		return &ospreyv1.User{Name: name, Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true, PasswordHash: []byte("pcn"), CreatedAt: created}
	}
	// Invalid: nothing applied.
	bad := &ospreyv1.DownUpdate{Users: []*ospreyv1.User{pcnUser("alice"), {Name: "bob"}}}
	if err := st.ApplyPrimaryUpdate(ctx, bad); !isFieldErr(err) {
		t.Fatalf("an update with a user without a role: %v, want field errors", err)
	}
	if _, _, err := st.GetUser(ctx, all, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("alice after a refused update: %v, want not found", err)
	}
	// A clash: the rest applied, the local user kept.
	up := &ospreyv1.DownUpdate{Users: []*ospreyv1.User{pcnUser("alice"), pcnUser("carol")},
		Rules: []*ospreyv1.Rule{rule("", "g1", ospreyv1.RuleKind_RULE_KIND_SENDER, "x@example.com")}}
	if err := st.ApplyPrimaryUpdate(ctx, up); !errors.Is(err, ErrClash) {
		t.Fatalf("an update naming a local user: %v, want a clash", err)
	}
	alice, _, err := st.GetUser(ctx, all, "alice")
	if err != nil || alice.GetOrigin() != validate.OriginPCN {
		t.Fatalf("alice: %v, %v; want from the PCN", alice, err)
	}
	if c, _, _ := st.GetUser(ctx, all, "carol"); string(c.GetPasswordHash()) != "local" || c.GetOrigin() != "" {
		t.Errorf("carol after the clash: %v, want the local one", c)
	}
	// Read-only.
	alice.Origin = ""
	if _, err := st.UpdateUser(ctx, all, alice, AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("update the PCN's user: %v, want forbidden", err)
	}
	if _, err := st.DeleteUser(ctx, all, "alice", AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("delete the PCN's user: %v, want forbidden", err)
	}
	if _, err := st.DeleteGlobalRule(ctx, all, "g1", AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("delete the PCN's global rule: %v, want forbidden", err)
	}
	// A snapshot without alice deletes her; the local carol stays.
	if err := st.ApplyPrimaryUpdate(ctx, &ospreyv1.DownUpdate{Snapshot: true, Rules: up.Rules}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetUser(ctx, all, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("alice after a snapshot without her: %v, want not found", err)
	}
	// Disconnected: local.
	if n, err := st.ClearPrimaryOrigin(ctx); err != nil || n != 1 {
		t.Fatalf("ClearPrimaryOrigin: %d, %v; want the one rule", n, err)
	}
	if _, err := st.DeleteGlobalRule(ctx, all, "g1", AnyVersion); err != nil {
		t.Errorf("delete the rule once local: %v", err)
	}
	if _, err := st.DeleteUser(ctx, all, "carol", AnyVersion); err != nil {
		t.Errorf("delete a local user: %v", err)
	}
}

func isFieldErr(err error) bool {
	_, ok := validate.AsErrors(err)
	return ok
}
