package store

import (
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/auth"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// putLegacyUser stores a user as an earlier version did: one role of admin,
// tenant_admin and auditor, and one tenant (which a write through the store
// now refuses).
func putLegacyUser(t *testing.T, st *Store, name string, role ospreyv1.Role, tenant string) {
	t.Helper()
	b, err := encode(&ospreyv1.User{Name: name, Role: role, Tenant: tenant, PasswordHash: []byte("$2a$10$hash"), CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.cli.Put(t.Context(), userKey(name), string(b)); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateUsers(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	putLegacyUser(t, st, "root", ospreyv1.Role_ROLE_ADMIN, "")
	putLegacyUser(t, st, "alice", ospreyv1.Role_ROLE_TENANT_ADMIN, "a")
	putLegacyUser(t, st, "bert", ospreyv1.Role_ROLE_AUDITOR, "b")
	putLegacyUser(t, st, "eve", ospreyv1.Role_ROLE_AUDITOR, "")
	putLegacyUser(t, st, "odd", ospreyv1.Role_ROLE_TENANT_ADMIN, "") // granted nothing, and still does not
	if _, err := st.CreateUser(ctx, AllTenants(), user("a", "new", ospreyv1.Role_ROLE_OFFICER)); err != nil {
		t.Fatal(err)
	}
	_, newVersion, err := st.GetUser(ctx, AllTenants(), "new")
	if err != nil {
		t.Fatal(err)
	}

	// Two nodes start at once.
	var wg sync.WaitGroup
	results := make([][]string, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = st.MigrateUsers(ctx, auth.Upgrade) })
	}
	wg.Wait()
	var migrated []string
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("MigrateUsers %d: %v", i, errs[i])
		}
		migrated = append(migrated, r...)
	}
	slices.Sort(migrated)
	if d := cmp.Diff([]string{"alice", "bert", "eve", "root"}, migrated); d != "" {
		t.Errorf("migrated, by both nodes together, each once (-want +got):\n%s", d)
	}

	want := map[string]*ospreyv1.User{
		"root":  {Name: "root", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true},
		"alice": {Name: "alice", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"a"}},
		"bert":  {Name: "bert", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"b"}},
		"eve":   {Name: "eve", Role: ospreyv1.Role_ROLE_AUDITOR, AllTenants: true},
		"odd":   {Name: "odd", Role: ospreyv1.Role_ROLE_TENANT_ADMIN},
		"new":   {Name: "new", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"a"}},
	}
	for name, w := range want {
		got, _, err := st.GetUser(ctx, AllTenants(), name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		if d := cmp.Diff(w, got, protocmp.Transform(), protocmp.IgnoreFields(&ospreyv1.User{}, "password_hash", "created_at")); d != "" {
			t.Errorf("user %s (-want +got):\n%s", name, d)
		}
		if len(got.GetPasswordHash()) == 0 {
			t.Errorf("user %s lost its password hash", name)
		}
	}
	if _, v, _ := st.GetUser(ctx, AllTenants(), "new"); v != newVersion {
		t.Errorf("a user of today: version %d after the migration, want %d (untouched)", v, newVersion)
	}

	// A migrated user is seen by scope as any other.
	us, err := st.ListUsers(ctx, TenantScope("a"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"alice", "new"}, mapIDs(us, (*ospreyv1.User).GetName)); d != "" {
		t.Errorf("users of tenant a after the migration (-want +got):\n%s", d)
	}

	// Again: nothing to do.
	again, err := st.MigrateUsers(ctx, auth.Upgrade)
	if err != nil || len(again) != 0 {
		t.Errorf("second run: got %v, %v, want nothing migrated", again, err)
	}
}
