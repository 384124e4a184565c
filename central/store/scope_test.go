package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// seedTwoTenants makes tenants a and b, each with a sensor (a1, b1) with both
// integrations, an administrator of the tenant (alice, bob), a join token (ja,
// jb) and an API token of its administrator (ka, kb); plus an administrator
// of all tenants, root, with API token kr, and an auditor of both tenants,
// both.
func seedTwoTenants(t *testing.T, st *Store) {
	t.Helper()
	ctx := t.Context()
	all := AllTenants()
	mustCreate(t, st, []string{"a", "b"}, [2]string{"a", "a1"}, [2]string{"b", "b1"})
	for _, tc := range []struct{ tenant, sensor, user, join, api string }{
		{"a", "a1", "alice", "ja", "ka"},
		{"b", "b1", "bob", "jb", "kb"},
	} {
		if _, err := st.PutSMTP(ctx, all, tc.sensor, smtp("example.com"), AnyVersion); err != nil {
			t.Fatalf("put smtp: %v", err)
		}
		if _, err := st.PutPOP3(ctx, all, tc.sensor, pop3("pop.example.com"), AnyVersion); err != nil {
			t.Fatalf("put pop3: %v", err)
		}
		if _, err := st.CreateUser(ctx, all, user(tc.tenant, tc.user, ospreyv1.Role_ROLE_ADMIN)); err != nil {
			t.Fatalf("create user: %v", err)
		}
		if _, err := st.CreateToken(ctx, all, joinToken(tc.tenant, tc.join, 5)); err != nil {
			t.Fatalf("create join token: %v", err)
		}
		if _, err := st.CreateToken(ctx, all, apiToken(tc.tenant, tc.api, tc.user)); err != nil {
			t.Fatalf("create api token: %v", err)
		}
	}
	if _, err := st.CreateUser(ctx, all, user("*", "root", ospreyv1.Role_ROLE_ADMIN)); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	if _, err := st.CreateUser(ctx, all, user("a,b", "both", ospreyv1.Role_ROLE_AUDITOR)); err != nil {
		t.Fatalf("create auditor of a and b: %v", err)
	}
	if _, err := st.CreateToken(ctx, all, apiToken("", "kr", "root")); err != nil {
		t.Fatalf("create admin api token: %v", err)
	}
}

func apiToken(tenant, id, user string) *ospreyv1.Token {
	return &ospreyv1.Token{
		Id: id, Kind: ospreyv1.TokenKind_TOKEN_KIND_API, Tenant: tenant, User: user,
		SecretHash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: created,
	}
}

// TestTenantScopeIsolation runs every method as tenant a against tenant b's
// objects (and the admin's), and checks that each is refused and that
// nothing at all was written.
func TestTenantScopeIsolation(t *testing.T) {
	st, cli := testStore(t)
	seedTwoTenants(t, st)
	a := TenantScope("a")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

	withTenant := func(s *ospreyv1.Sensor, tenant string) *ospreyv1.Sensor {
		s = proto.Clone(s).(*ospreyv1.Sensor)
		s.Tenant = tenant
		return s
	}
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		want error
	}{
		{"GetTenant", func(ctx context.Context) error { _, _, err := st.GetTenant(ctx, a, "b"); return err }, ErrNotFound},
		{"CreateTenant", func(ctx context.Context) error { _, err := st.CreateTenant(ctx, a, tenant("c")); return err }, ErrForbidden},
		{"UpdateTenant own", func(ctx context.Context) error {
			_, err := st.UpdateTenant(ctx, a, tenant("a"), AnyVersion)
			return err
		}, ErrForbidden},
		{"UpdateTenant", func(ctx context.Context) error {
			_, err := st.UpdateTenant(ctx, a, tenant("b"), AnyVersion)
			return err
		}, ErrForbidden},

		{"GetSensor", func(ctx context.Context) error { _, _, err := st.GetSensor(ctx, a, "b1"); return err }, ErrNotFound},
		{"CreateSensor in b", func(ctx context.Context) error { _, err := st.CreateSensor(ctx, a, sensor("b", "b2")); return err }, ErrForbidden},
		{"UpdateSensor of b", func(ctx context.Context) error {
			_, err := st.UpdateSensor(ctx, a, sensor("a", "b1"), AnyVersion)
			return err
		}, ErrNotFound},
		{"UpdateSensor of b, no tenant", func(ctx context.Context) error {
			_, err := st.UpdateSensor(ctx, a, withTenant(sensor("b", "b1"), ""), AnyVersion)
			return err
		}, ErrNotFound},
		{"UpdateSensor naming b", func(ctx context.Context) error {
			_, err := st.UpdateSensor(ctx, a, sensor("b", "b1"), AnyVersion)
			return err
		}, ErrForbidden},
		{"UpdateSensor own into b", func(ctx context.Context) error {
			_, err := st.UpdateSensor(ctx, a, sensor("b", "a1"), AnyVersion)
			return err
		}, ErrForbidden},
		{"GetSMTP", func(ctx context.Context) error { _, _, err := st.GetSMTP(ctx, a, "b1"); return err }, ErrNotFound},
		{"PutSMTP", func(ctx context.Context) error {
			_, err := st.PutSMTP(ctx, a, "b1", smtp("evil.example"), AnyVersion)
			return err
		}, ErrNotFound},
		{"GetPOP3", func(ctx context.Context) error { _, _, err := st.GetPOP3(ctx, a, "b1"); return err }, ErrNotFound},
		{"PutPOP3", func(ctx context.Context) error {
			_, err := st.PutPOP3(ctx, a, "b1", pop3("evil.example"), AnyVersion)
			return err
		}, ErrNotFound},
		{"SensorConfig", func(ctx context.Context) error { _, err := st.SensorConfig(ctx, a, "b1"); return err }, ErrNotFound},
		{"Follow", func(ctx context.Context) error {
			f, err := NewConfigHub(st, CacheOptions{}).Follow(ctx, a, "b1")
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Next(ctx)
			return err
		}, ErrNotFound},

		{"GetUser of b", func(ctx context.Context) error { _, _, err := st.GetUser(ctx, a, "bob"); return err }, ErrNotFound},
		{"GetUser admin", func(ctx context.Context) error { _, _, err := st.GetUser(ctx, a, "root"); return err }, ErrNotFound},
		{"GetUser of a and b", func(ctx context.Context) error { _, _, err := st.GetUser(ctx, a, "both"); return err }, ErrNotFound},
		{"CreateUser in b", func(ctx context.Context) error {
			_, err := st.CreateUser(ctx, a, user("b", "mallory", ospreyv1.Role_ROLE_ADMIN))
			return err
		}, ErrForbidden},
		{"CreateUser in a and b", func(ctx context.Context) error {
			_, err := st.CreateUser(ctx, a, user("a,b", "mallory", ospreyv1.Role_ROLE_OFFICER))
			return err
		}, ErrForbidden},
		{"CreateUser of all tenants", func(ctx context.Context) error {
			_, err := st.CreateUser(ctx, a, user("*", "mallory", ospreyv1.Role_ROLE_AUDITOR))
			return err
		}, ErrForbidden},
		{"UpdateUser of b", func(ctx context.Context) error {
			_, err := st.UpdateUser(ctx, a, user("a", "bob", ospreyv1.Role_ROLE_AUDITOR), AnyVersion)
			return err
		}, ErrNotFound},
		{"UpdateUser admin", func(ctx context.Context) error {
			_, err := st.UpdateUser(ctx, a, user("a", "root", ospreyv1.Role_ROLE_AUDITOR), AnyVersion)
			return err
		}, ErrNotFound},
		{"UpdateUser own into b", func(ctx context.Context) error {
			_, err := st.UpdateUser(ctx, a, user("b", "alice", ospreyv1.Role_ROLE_ADMIN), AnyVersion)
			return err
		}, ErrForbidden},
		{"UpdateUser own into a and b", func(ctx context.Context) error {
			_, err := st.UpdateUser(ctx, a, user("a,b", "alice", ospreyv1.Role_ROLE_ADMIN), AnyVersion)
			return err
		}, ErrForbidden},
		{"UpdateUser own to all tenants", func(ctx context.Context) error {
			_, err := st.UpdateUser(ctx, a, user("*", "alice", ospreyv1.Role_ROLE_ADMIN), AnyVersion)
			return err
		}, ErrForbidden},

		{"GetToken of b", func(ctx context.Context) error { _, _, err := st.GetToken(ctx, a, "jb"); return err }, ErrNotFound},
		{"GetToken admin", func(ctx context.Context) error { _, _, err := st.GetToken(ctx, a, "kr"); return err }, ErrNotFound},
		{"CreateToken in b", func(ctx context.Context) error {
			_, err := st.CreateToken(ctx, a, joinToken("b", "jx", 1))
			return err
		}, ErrForbidden},
		{"CreateToken for user of b", func(ctx context.Context) error {
			_, err := st.CreateToken(ctx, a, apiToken("a", "kx", "bob"))
			return err
		}, ErrNotFound},
		{"CreateToken for admin", func(ctx context.Context) error {
			_, err := st.CreateToken(ctx, a, apiToken("a", "kx", "root"))
			return err
		}, ErrNotFound},
		{"DeleteToken of b", func(ctx context.Context) error { return st.DeleteToken(ctx, a, "kb") }, ErrNotFound},
		{"ConsumeJoinToken of b", func(ctx context.Context) error { _, err := st.ConsumeJoinToken(ctx, a, "jb", now); return err }, ErrNotFound},

		{"zero Scope", func(ctx context.Context) error { _, err := st.ListSensors(ctx, Scope{}); return err }, ErrForbidden},
		{"invalid tenant scope", func(ctx context.Context) error {
			_, _, err := st.GetSensor(ctx, TenantScope("../b"), "b1")
			return err
		}, ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := revision(t, cli)
			err := tc.call(t.Context())
			if !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want %v", err, tc.want)
			}
			if after := revision(t, cli); after != before {
				t.Errorf("etcd revision: got %d after the call, want %d (something was written)", after, before)
			}
		})
	}

	ctx := t.Context()
	ids := func(t *testing.T, what string, f func() ([]string, error)) []string {
		t.Helper()
		got, err := f()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return got
	}
	for _, tc := range []struct {
		name      string
		list      func(Scope) ([]string, error)
		wantA     []string
		wantAdmin []string
	}{
		{"ListTenants", func(sc Scope) ([]string, error) {
			ts, err := st.ListTenants(ctx, sc)
			return mapIDs(ts, (*ospreyv1.Tenant).GetId), err
		}, []string{"a"}, []string{"a", "b"}},
		{"ListSensors", func(sc Scope) ([]string, error) {
			ss, err := st.ListSensors(ctx, sc)
			return mapIDs(ss, (*ospreyv1.Sensor).GetId), err
		}, []string{"a1"}, []string{"a1", "b1"}},
		{"ListUsers", func(sc Scope) ([]string, error) {
			us, err := st.ListUsers(ctx, sc)
			return mapIDs(us, (*ospreyv1.User).GetName), err
		}, []string{"alice"}, []string{"alice", "bob", "both", "root"}},
		{"ListTokens", func(sc Scope) ([]string, error) {
			ts, err := st.ListTokens(ctx, sc)
			return mapIDs(ts, (*ospreyv1.Token).GetId), err
		}, []string{"ja", "ka"}, []string{"ja", "jb", "ka", "kb", "kr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.wantA, ids(t, "tenant a", func() ([]string, error) { return tc.list(a) })); d != "" {
				t.Errorf("tenant a: diff (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantAdmin, ids(t, "all tenants", func() ([]string, error) { return tc.list(AllTenants()) })); d != "" {
				t.Errorf("all tenants: diff (-want +got):\n%s", d)
			}
		})
	}
}

func mapIDs[T any](xs []T, id func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

// TestTenantScopeOwnObjects checks that the isolation above is not just
// refusing everything: tenant a can do all of it to its own objects.
func TestTenantScopeOwnObjects(t *testing.T) {
	st, _ := testStore(t)
	seedTwoTenants(t, st)
	ctx := t.Context()
	a := TenantScope("a")

	if _, _, err := st.GetTenant(ctx, a, "a"); err != nil {
		t.Errorf("get own tenant: %v", err)
	}
	approved := sensor("a", "a1")
	approved.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	if _, err := st.UpdateSensor(ctx, a, approved, AnyVersion); err != nil {
		t.Errorf("approve own sensor: %v", err)
	}
	if _, err := st.PutSMTP(ctx, a, "a1", smtp("own.example.com"), AnyVersion); err != nil {
		t.Errorf("put own smtp: %v", err)
	}
	if _, err := st.CreateUser(ctx, a, user("", "carol", ospreyv1.Role_ROLE_AUDITOR)); err != nil {
		t.Errorf("create user in own tenant: %v", err)
	}
	u, _, err := st.GetUser(ctx, AllTenants(), "carol")
	if err != nil || !cmp.Equal(u.GetTenants(), []string{"a"}) {
		t.Errorf("user created with no tenant in scope a: got tenants %q (%v), want [a]", u.GetTenants(), err)
	}
	if _, err := st.UpdateUser(ctx, a, user("a", "carol", ospreyv1.Role_ROLE_ADMIN), AnyVersion); err != nil {
		t.Errorf("update own user: %v", err)
	}
	if _, err := st.CreateToken(ctx, a, apiToken("", "kc", "carol")); err != nil {
		t.Errorf("create api token of own user: %v", err)
	}
	if err := st.DeleteToken(ctx, a, "kc"); err != nil {
		t.Errorf("delete own token: %v", err)
	}
	if _, _, err := st.GetToken(ctx, AllTenants(), "kc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted token: got %v, want ErrNotFound", err)
	}
}

func TestUsers(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	all := AllTenants()
	mustCreate(t, st, []string{"a"})

	if _, err := st.CreateUser(ctx, all, user("*", "root", ospreyv1.Role_ROLE_ADMIN)); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	if _, err := st.CreateUser(ctx, all, user("*", "root", ospreyv1.Role_ROLE_ADMIN)); !errors.Is(err, ErrExists) {
		t.Errorf("create admin again: got %v, want ErrExists", err)
	}
	if _, err := st.CreateUser(ctx, all, user("nope", "dave", ospreyv1.Role_ROLE_AUDITOR)); !errors.Is(err, ErrNotFound) {
		t.Errorf("create user of a missing tenant: got %v, want ErrNotFound", err)
	}
	v1, err := st.CreateUser(ctx, TenantScope("a"), user("a", "alice", ospreyv1.Role_ROLE_ADMIN))
	if err != nil {
		t.Fatalf("create tenant user: %v", err)
	}
	v2, err := st.UpdateUser(ctx, all, user("a", "alice", ospreyv1.Role_ROLE_AUDITOR), v1)
	if err != nil {
		t.Fatalf("update user: %v", err)
	}
	if _, err := st.UpdateUser(ctx, all, user("a", "alice", ospreyv1.Role_ROLE_ADMIN), v1); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: got %v, want ErrConflict", err)
	}
	got, v, err := st.GetUser(ctx, all, "alice")
	if err != nil {
		t.Fatalf("get user: %v", err)
	}
	if d := diff(user("a", "alice", ospreyv1.Role_ROLE_AUDITOR), got); d != "" || v != v2 {
		t.Errorf("get user: version %d, want %d; diff (-want +got):\n%s", v, v2, d)
	}
	if _, err := st.UpdateUser(ctx, all, user("a", "nobody", ospreyv1.Role_ROLE_AUDITOR), AnyVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("update missing user: got %v, want ErrNotFound", err)
	}
}

// TestTenantsScope checks a scope of several tenants: it sees and changes
// what belongs to any of them, nothing of a third, and a user only when it
// covers all the user's tenants.
func TestTenantsScope(t *testing.T) {
	st, cli := testStore(t)
	seedTwoTenants(t, st)
	ctx := t.Context()
	mustCreate(t, st, []string{"c"}, [2]string{"c", "c1"})
	if _, err := st.CreateUser(ctx, AllTenants(), user("c", "carl", ospreyv1.Role_ROLE_ADMIN)); err != nil {
		t.Fatal(err)
	}
	ab := TenantsScope("b", "a", "b")

	if got, want := ab.String(), `tenants "a, b"`; got != want {
		t.Errorf("String: got %s, want %s", got, want)
	}
	if got := ab.Tenant(); got != "" {
		t.Errorf("Tenant: got %q, want \"\" (several)", got)
	}
	for _, tc := range []struct {
		name string
		list func(Scope) ([]string, error)
		want []string
	}{
		{"ListTenants", func(sc Scope) ([]string, error) {
			ts, err := st.ListTenants(ctx, sc)
			return mapIDs(ts, (*ospreyv1.Tenant).GetId), err
		}, []string{"a", "b"}},
		{"ListSensors", func(sc Scope) ([]string, error) {
			ss, err := st.ListSensors(ctx, sc)
			return mapIDs(ss, (*ospreyv1.Sensor).GetId), err
		}, []string{"a1", "b1"}},
		{"ListUsers", func(sc Scope) ([]string, error) {
			us, err := st.ListUsers(ctx, sc)
			return mapIDs(us, (*ospreyv1.User).GetName), err
		}, []string{"alice", "bob", "both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.list(ab)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("diff (-want +got):\n%s", d)
			}
		})
	}

	for _, id := range []string{"a1", "b1"} {
		if _, _, err := st.GetSensor(ctx, ab, id); err != nil {
			t.Errorf("GetSensor %s: %v", id, err)
		}
	}
	if _, err := st.PutSMTP(ctx, ab, "b1", smtp("b.example.com"), AnyVersion); err != nil {
		t.Errorf("PutSMTP of b: %v", err)
	}
	if _, err := st.CreateUser(ctx, ab, user("a,b", "dora", ospreyv1.Role_ROLE_OFFICER)); err != nil {
		t.Errorf("CreateUser of a and b: %v", err)
	}

	before := revision(t, cli)
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		want error
	}{
		{"GetSensor of c", func(ctx context.Context) error { _, _, err := st.GetSensor(ctx, ab, "c1"); return err }, ErrNotFound},
		{"PutSMTP of c", func(ctx context.Context) error {
			_, err := st.PutSMTP(ctx, ab, "c1", smtp("evil.example"), AnyVersion)
			return err
		}, ErrNotFound},
		{"GetUser of c", func(ctx context.Context) error { _, _, err := st.GetUser(ctx, ab, "carl"); return err }, ErrNotFound},
		{"GetUser of all tenants", func(ctx context.Context) error { _, _, err := st.GetUser(ctx, ab, "root"); return err }, ErrNotFound},
		{"CreateUser of b and c", func(ctx context.Context) error {
			_, err := st.CreateUser(ctx, ab, user("b,c", "mallory", ospreyv1.Role_ROLE_OFFICER))
			return err
		}, ErrForbidden},
		{"CreateSensor in c", func(ctx context.Context) error { _, err := st.CreateSensor(ctx, ab, sensor("c", "c2")); return err }, ErrForbidden},
		{"GetTenant c", func(ctx context.Context) error { _, _, err := st.GetTenant(ctx, ab, "c"); return err }, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(t.Context()); !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want %v", err, tc.want)
			}
		})
	}
	// A write naming no tenant is ambiguous in a scope of several: a field
	// error, not a guess.
	_, err := st.CreateSensor(ctx, ab, sensor("", "x1"))
	if errs, ok := validate.AsErrors(err); !ok || errs[0].Field != "tenant" {
		t.Errorf("CreateSensor without a tenant: got %v, want a field error on tenant", err)
	}
	if after := revision(t, cli); after != before {
		t.Errorf("etcd revision: got %d after the refused calls, want %d", after, before)
	}

	for _, sc := range []Scope{TenantsScope(), TenantsScope("a", "../b")} {
		if _, err := st.ListSensors(ctx, sc); !errors.Is(err, ErrForbidden) {
			t.Errorf("ListSensors in %s: got %v, want ErrForbidden", sc, err)
		}
	}
}
