package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func rule(tenant, id string, kind ospreyv1.RuleKind, value string) *ospreyv1.Rule {
	return &ospreyv1.Rule{Id: id, Tenant: tenant, Kind: kind, Value: value, Severity: ospreyv1.Severity_SEVERITY_HIGH, CreatedAt: created}
}

func TestRules(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	a, b := TenantScope("a"), TenantScope("b")

	// Create: the tenant comes from the scope, the value is stored canonical.
	r, err := st.CreateRule(ctx, a, rule("", "r1", ospreyv1.RuleKind_RULE_KIND_SHA256, strings.Repeat("AB", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetTenant() != "a" || r.GetValue() != strings.Repeat("ab", 32) || r.GetVersion() == 0 {
		t.Errorf("created rule: got %v, want tenant a, a lower-case value and a version", r)
	}
	got, err := st.GetRule(ctx, a, "a", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(r, got); d != "" {
		t.Errorf("GetRule (-created +got):\n%s", d)
	}
	if _, err := st.CreateRule(ctx, a, rule("a", "r1", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("0", 32))); !errors.Is(err, ErrExists) {
		t.Errorf("create again: got %v, want ErrExists", err)
	}

	// A generated id, and a created_at set when absent.
	gen := rule("a", "", ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "Evil.Example")
	gen.CreatedAt = nil
	g, err := st.CreateRule(ctx, AllTenants(), gen)
	if err != nil {
		t.Fatal(err)
	}
	if !validID(g.GetId()) || len(g.GetId()) != 16 || g.GetCreatedAt() == nil || g.GetValue() != "evil.example" {
		t.Errorf("rule with a generated id: got %v", g)
	}

	// Validation: nothing stored.
	_, err = st.CreateRule(ctx, a, rule("a", "bad", ospreyv1.RuleKind_RULE_KIND_URL, "javascript:alert(1)"))
	if es, ok := validate.AsErrors(err); !ok || es[0].Field != "value" {
		t.Errorf("invalid rule: got %v, want a field error on value", err)
	}

	// Scope: another tenant's rules are absent, writing them is forbidden.
	if _, err := st.GetRule(ctx, b, "a", "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("b reads a's rule: got %v, want ErrNotFound", err)
	}
	if _, err := st.ListRules(ctx, b, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("b lists a's rules: got %v, want ErrNotFound", err)
	}
	if _, err := st.CreateRule(ctx, b, rule("a", "r9", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("0", 32))); !errors.Is(err, ErrForbidden) {
		t.Errorf("b creates in a: got %v, want ErrForbidden", err)
	}
	if _, err := st.UpdateRule(ctx, b, rule("a", "r1", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("0", 32)), AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("b updates a's rule: got %v, want ErrForbidden", err)
	}
	if _, err := st.UpdateRule(ctx, b, rule("b", "r1", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("0", 32)), AnyVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("b updates its own missing rule: got %v, want ErrNotFound", err)
	}
	if _, err := st.DeleteRule(ctx, b, "a", "r1", AnyVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("b deletes a's rule: got %v, want ErrNotFound", err)
	}
	if _, err := st.CreateRule(ctx, AllTenants(), rule("nope", "r1", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("0", 32))); !errors.Is(err, ErrNotFound) {
		t.Errorf("create in a missing tenant: got %v, want ErrNotFound", err)
	}

	// Update: compare-and-swap on the version; created_at is kept.
	upd := proto.Clone(r).(*ospreyv1.Rule)
	upd.Severity, upd.Description, upd.CreatedAt = ospreyv1.Severity_SEVERITY_CRITICAL, "dropper", nil
	u, err := st.UpdateRule(ctx, a, upd, r.GetVersion())
	if err != nil {
		t.Fatal(err)
	}
	if u.GetVersion() <= r.GetVersion() || !proto.Equal(u.GetCreatedAt(), r.GetCreatedAt()) {
		t.Errorf("updated rule: version %d (was %d), created_at %v (was %v)", u.GetVersion(), r.GetVersion(), u.GetCreatedAt(), r.GetCreatedAt())
	}
	if _, err := st.UpdateRule(ctx, a, upd, r.GetVersion()); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: got %v, want ErrConflict", err)
	}
	same, err := st.UpdateRule(ctx, a, upd, u.GetVersion())
	if err != nil || same.GetVersion() != u.GetVersion() {
		t.Errorf("unchanged update: version %d, %v; want %d", same.GetVersion(), err, u.GetVersion())
	}

	list, err := st.ListRules(ctx, a, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetId() != g.GetId() || list[1].GetId() != "r1" || list[1].GetVersion() != u.GetVersion() {
		t.Errorf("ListRules: got %v", list)
	}

	// Delete: compare-and-swap too.
	if _, err := st.DeleteRule(ctx, a, "a", "r1", r.GetVersion()); !errors.Is(err, ErrConflict) {
		t.Errorf("stale delete: got %v, want ErrConflict", err)
	}
	if _, err := st.DeleteRule(ctx, a, "a", "r1", u.GetVersion()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRule(ctx, a, "a", "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: got %v, want ErrNotFound", err)
	}
}

// waitFor waits until cond holds, waking at every change of the cache,
// for at most testwait.Timeout.
func waitFor(t *testing.T, changed func() <-chan struct{}, cond func() bool) {
	t.Helper()
	timeout := time.After(testwait.Timeout)
	for {
		ch := changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("condition not met within %v", testwait.Timeout)
		}
	}
}

// runCache runs a cache until the test ends, and waits for its first load.
func runCache(t *testing.T, run, wait func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func ruleIDs(rules []*ospreyv1.Rule) string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.GetId())
	}
	return strings.Join(ids, ",")
}

func TestRuleCacheFollowsChanges(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"}, [2]string{"a", "s1"})
	all := AllTenants()
	if _, err := st.CreateRule(ctx, all, rule("a", "r1", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "exe")); err != nil {
		t.Fatal(err)
	}
	c := NewRuleCache(st, CacheOptions{})
	if rules, rev := c.Rules("a"); rules != nil || rev != 0 {
		t.Errorf("before the load: got %v at %d, want nothing at 0", rules, rev)
	}
	runCache(t, c.Run, c.Wait)
	if rules, rev := c.Rules("a"); ruleIDs(rules) != "r1" || rev == 0 {
		t.Errorf("after the load: got %q at %d, want r1", ruleIDs(rules), rev)
	}

	// A new rule is visible once written: the next message sees it.
	r2, err := st.CreateRule(ctx, all, rule("a", "r2", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "js"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.Changed, func() bool {
		rules, rev := c.Rules("a")
		return ruleIDs(rules) == "r1,r2" && rev >= r2.GetVersion()
	})
	// Disabling hides it; a change elsewhere under tenants/ changes nothing.
	r2.Disabled = true
	if _, err := st.UpdateRule(ctx, all, r2, AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSMTP(ctx, all, "s1", smtp("example.com"), AnyVersion); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.Changed, func() bool { rules, _ := c.Rules("a"); return ruleIDs(rules) == "r1" })
	if _, err := st.DeleteRule(ctx, all, "a", "r1", AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRule(ctx, all, rule("b", "x", ospreyv1.RuleKind_RULE_KIND_MD5, strings.Repeat("1", 32))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.Changed, func() bool {
		a, _ := c.Rules("a")
		b, _ := c.Rules("b")
		return len(a) == 0 && ruleIDs(b) == "x"
	})
}

func TestRuleCacheReloadsAfterCompaction(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"})
	all := AllTenants()
	c := NewRuleCache(st, CacheOptions{})
	// After the first load, and before its watch starts, a rule is written
	// and etcd compacted past it: the watch finds its revision gone, and the
	// cache must reload to see the rule.
	var once sync.Once
	c.c.afterLoad = func() {
		once.Do(func() {
			r, err := st.CreateRule(ctx, all, rule("a", "late", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "exe"))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := cli.Compact(ctx, r.GetVersion()); err != nil {
				t.Error(err)
			}
		})
	}
	runCache(t, c.Run, c.Wait)
	waitFor(t, c.Changed, func() bool { rules, _ := c.Rules("a"); return ruleIDs(rules) == "late" })
}
