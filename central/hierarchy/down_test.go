package hierarchy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/pipeline"
	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// user returns a user of role in tenant (empty: every tenant).
// user is a user of tenant, or of all tenants when tenant is "".
func user(name string, role ospreyv1.Role, tenant string) *ospreyv1.User {
	u := &ospreyv1.User{Name: name, Role: role, AllTenants: tenant == "", PasswordHash: []byte("$2a$10$hash-of-" + name), CreatedAt: timestamppb.Now()}
	if tenant != "" {
		u.Tenants = []string{tenant}
	}
	return u
}

func senderRule(sender string) *ospreyv1.Rule {
	return &ospreyv1.Rule{Kind: ospreyv1.RuleKind_RULE_KIND_SENDER, Value: sender, Severity: ospreyv1.Severity_SEVERITY_HIGH}
}

// usersOf returns the SCN's users by name.
func usersOf(ctx context.Context, st *store.Store) map[string]*ospreyv1.User {
	list, err := st.ListUsers(ctx, store.AllTenants())
	if err != nil {
		return nil
	}
	out := map[string]*ospreyv1.User{}
	for _, u := range list {
		out[u.GetName()] = u
	}
	return out
}

// globalRulesOf returns the global rules by id.
func globalRulesOf(ctx context.Context, st *store.Store) map[string]*ospreyv1.Rule {
	list, err := st.ListGlobalRules(ctx, store.AllTenants())
	if err != nil {
		return nil
	}
	out := map[string]*ospreyv1.Rule{}
	for _, r := range list {
		out[r.GetId()] = r
	}
	return out
}

// TestUsersAndGlobalRulesDown: the PCN's users that see the SCN's tenant
// and its global rules reach the SCN at link start (a snapshot, which also
// removes what the PCN no longer has), then every change and deletion; on
// the SCN they are read-only and the global rules are matched by its scan;
// a name clash is NACKed and the NACK shown on the PCN; the PCN records
// the version the SCN acknowledged; a disconnect makes them local.
func TestUsersAndGlobalRulesDown(t *testing.T) {
	p := startPCN(t, hierarchy.PrimaryOptions{})
	s, scn := startSCNStore(t)
	ctx := t.Context()
	all := store.AllTenants()

	// On the PCN: a user of the SCN's tenant, one of another tenant, a
	// global rule.
	if _, err := p.store.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*ospreyv1.User{user("alice", ospreyv1.Role_ROLE_ADMIN, "branches"), user("bob", ospreyv1.Role_ROLE_ADMIN, "other")} {
		if _, err := p.store.CreateUser(ctx, all, u); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := p.store.CreateGlobalRule(ctx, all, senderRule("mallory@evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	// On the SCN: a local user, and one that came from the PCN earlier and
	// is no longer there (the snapshot removes it).
	if _, err := scn.CreateUser(ctx, all, user("carol", ospreyv1.Role_ROLE_ADMIN, "")); err != nil {
		t.Fatal(err)
	}
	if err := scn.ApplyPrimaryUpdate(ctx, &ospreyv1.DownUpdate{Users: []*ospreyv1.User{user("ghost", ospreyv1.Role_ROLE_AUDITOR, "")}}); err != nil {
		t.Fatal(err)
	}

	join(t, p, s)

	testwait.For(t, "the snapshot on the SCN", func() bool {
		u := usersOf(ctx, scn)
		g := globalRulesOf(ctx, scn)
		return u["alice"].GetOrigin() == validate.OriginPCN && u[account].GetOrigin() == validate.OriginPCN &&
			u["bob"] == nil && u["ghost"] == nil && u["carol"] != nil && u["carol"].GetOrigin() == "" &&
			g[r1.GetId()].GetOrigin() == validate.OriginPCN
	})
	if h := usersOf(ctx, scn)["alice"].GetPasswordHash(); string(h) != "$2a$10$hash-of-alice" {
		t.Errorf("alice's password hash on the SCN: %q, want the PCN's", h)
	}
	acked(t, p, "the snapshot")

	// Changes: a new user, a changed rule, a new rule; then deletions.
	if _, err := p.store.CreateUser(ctx, all, user("dave", ospreyv1.Role_ROLE_AUDITOR, "branches")); err != nil {
		t.Fatal(err)
	}
	r1.Description = "changed on the PCN"
	if _, err := p.store.UpdateGlobalRule(ctx, all, r1, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	r2, err := p.store.CreateGlobalRule(ctx, all, senderRule("eve@evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the changes on the SCN", func() bool {
		u, g := usersOf(ctx, scn), globalRulesOf(ctx, scn)
		return u["dave"] != nil && g[r1.GetId()].GetDescription() == "changed on the PCN" && g[r2.GetId()] != nil
	})
	acked(t, p, "the changes")
	if _, err := p.store.DeleteUser(ctx, all, "dave", store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.DeleteGlobalRule(ctx, all, r1.GetId(), store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the deletions on the SCN", func() bool {
		u, g := usersOf(ctx, scn), globalRulesOf(ctx, scn)
		return u != nil && g != nil && u["dave"] == nil && g[r1.GetId()] == nil && g[r2.GetId()] != nil
	})
	acked(t, p, "the deletions")

	// Read-only on the SCN.
	alice := usersOf(ctx, scn)["alice"]
	alice.Origin = ""
	for what, err := range map[string]error{
		"update a PCN user": func() error { _, err := scn.UpdateUser(ctx, all, alice, store.AnyVersion); return err }(),
		"delete a PCN user": func() error { _, err := scn.DeleteUser(ctx, all, "alice", store.AnyVersion); return err }(),
		"delete a PCN rule": func() error { _, err := scn.DeleteGlobalRule(ctx, all, r2.GetId(), store.AnyVersion); return err }(),
	} {
		if !errors.Is(err, store.ErrForbidden) {
			t.Errorf("%s on the SCN: %v, want forbidden", what, err)
		}
	}
	upd := senderRule("x@example.com")
	upd.Id = r2.GetId()
	if _, err := scn.UpdateGlobalRule(ctx, all, upd, store.AnyVersion); !errors.Is(err, store.ErrForbidden) || !strings.Contains(err.Error(), "managed by the PCN") {
		t.Errorf("update the PCN's global rule on the SCN: %v, want forbidden, managed by the PCN", err)
	}

	// The SCN's scan matches the PCN's global rule, for its tenant's
	// messages, naming it global.
	rules := store.NewRuleCache(scn, store.CacheOptions{})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rules.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pl := pipeline.New(scanner, rules, nil, nil)
	msg := scantest.Message(scantest.Headers("eve@evil.example", "bob@example.com", "invoice"), scantest.Text("hello\r\n"))
	rec := &ospreyv1.MessageRecord{MessageId: "0000000000000001", SensorId: "s1", Tenant: "branches", Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "eve@evil.example", RcptTo: []string{"bob@example.com"}}}
	out, err := pl.Scan(ctx, rec, body(msg))
	if err != nil {
		t.Fatal(err)
	}
	if out.Alert == nil || len(out.Alert.GetMatches()) == 0 || out.Alert.GetMatches()[0].GetRuleId() != "global/"+r2.GetId() {
		t.Fatalf("the SCN's scan of a message from eve: alert %v, want a match of global/%s", out.Alert, r2.GetId())
	}

	// A name clash: NACKed, shown on the PCN; the rest still applied.
	if _, err := scn.CreateUser(ctx, all, user("erin", ospreyv1.Role_ROLE_ADMIN, "")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*ospreyv1.User{user("erin", ospreyv1.Role_ROLE_ADMIN, ""), user("frank", ospreyv1.Role_ROLE_AUDITOR, "branches")} {
		if _, err := p.store.CreateUser(ctx, all, u); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, "the NACK on the PCN", func() bool {
		v, err := p.primary.Server(ctx, all, "branch")
		return err == nil && v.Down != nil && strings.Contains(v.Down.NackReason, `user "erin"`)
	})
	testwait.For(t, "frank on the SCN", func() bool { return usersOf(ctx, scn)["frank"] != nil })
	if u := usersOf(ctx, scn)["erin"]; u.GetOrigin() != "" || u.GetRole() != ospreyv1.Role_ROLE_ADMIN {
		t.Errorf("the SCN's local erin: %v, want kept as it was", u)
	}

	// Disconnected: what came from the PCN becomes local, rules kept.
	if _, err := p.primary.Disconnect(ctx, all, "branch"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the PCN's users and rules made local", func() bool {
		u, g := usersOf(ctx, scn), globalRulesOf(ctx, scn)
		return u["alice"] != nil && u["alice"].GetOrigin() == "" && g[r2.GetId()] != nil && g[r2.GetId()].GetOrigin() == ""
	})
	if _, err := scn.DeleteUser(ctx, all, "alice", store.AnyVersion); err != nil {
		t.Errorf("delete alice on the disconnected SCN: %v", err)
	}
}

// join makes the SCN an accepted SCN of tenant "branches", as "branch".
func join(t testing.TB, p *pcn, s *hierarchy.Secondary) {
	t.Helper()
	ctx := t.Context()
	fp, err := hierarchy.FetchFingerprint(ctx, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, hierarchy.JoinInput{Address: p.addr, Fingerprint: fp, Name: "branch", Username: account, Password: password}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.primary.Accept(ctx, store.AllTenants(), "branch", "branches"); err != nil {
		t.Fatal(err)
	}
}

// acked waits until the SCN acknowledged everything the PCN sent.
func acked(t testing.TB, p *pcn, what string) {
	t.Helper()
	testwait.For(t, what+" acknowledged on the PCN", func() bool {
		v, err := p.primary.Server(t.Context(), store.AllTenants(), "branch")
		return err == nil && v.Down != nil && v.Down.SentVersion > 0 && v.Down.AppliedVersion == v.Down.SentVersion
	})
}

// body is a message held in memory.
type body []byte

func (b body) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b body) Size() int64                  { return int64(len(b)) }
