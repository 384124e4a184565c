package sqlstore

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/central/store"
)

// TestScopeOfSeveralTenants checks the reads of a user of tenants a and b
// where c also has data: every list holds a's and b's, none of c's, and
// naming c is not found.
func TestScopeOfSeveralTenants(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st := db.open(AlertRetention{})
		ctx := t.Context()
		var want []string
		for _, tenant := range []string{"a", "b", "c"} {
			ids := raise(t, st, db.clk, tenant, "s-"+tenant, 2, high)
			if tenant != "c" {
				want = append(want, ids...)
			}
		}
		slices.Reverse(want)
		ab := store.TenantsScope("a", "b")
		if d := cmp.Diff(want, allAlerts(t, st, ab, AlertQuery{Limit: 3})); d != "" {
			t.Errorf("alerts of a and b (-want +got):\n%s", d)
		}
		cAlerts := allAlerts(t, st, store.TenantScope("c"), AlertQuery{})
		if _, err := st.GetAlert(ctx, ab, "", cAlerts[0]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get c's alert: got %v, want ErrNotFound", err)
		}
		if _, err := st.GetAlert(ctx, ab, "", want[0]); err != nil {
			t.Errorf("get b's alert: %v", err)
		}
		if _, err := st.ListAlerts(ctx, ab, AlertQuery{Tenant: "c"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("list c's alerts: got %v, want ErrNotFound", err)
		}

		msgs, err := st.ListMessages(ctx, ab, MessageQuery{Limit: MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		var tenants []string
		for _, m := range msgs.Messages {
			tenants = append(tenants, m.GetTenant())
		}
		if d := cmp.Diff([]string{"a", "a", "b", "b"}, tenants); d != "" {
			t.Errorf("tenants of the message records (-want +got):\n%s", d)
		}

		audit, err := st.ListAudit(ctx, ab, AuditQuery{Limit: MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		tenants = tenants[:0]
		for _, e := range audit.Events {
			tenants = append(tenants, e.Tenant)
		}
		slices.Sort(tenants)
		if d := cmp.Diff([]string{"a", "a", "b", "b"}, tenants); d != "" {
			t.Errorf("tenants of the audit log (-want +got):\n%s", d)
		}
	})
}
