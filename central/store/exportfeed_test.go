package store

import (
	"errors"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestAlertsAfterAndExportCursor(t *testing.T) {
	st, clk, cli := alertStore(t, AlertRetention{})
	ctx := t.Context()
	var revs []int64
	for _, m := range []string{"m1", "m2", "m3"} {
		rec, _, err := st.RecordScan(ctx, AllTenants(), record("a", "s1", m), alertFor(1, m), clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := st.AlertsAfter(ctx, AllTenants(), "a", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		last := got[len(got)-1]
		if last.Alert.GetId() != rec.GetAlertId() {
			t.Fatalf("the newest alert read is %s, want %s", last.Alert.GetId(), rec.GetAlertId())
		}
		revs = append(revs, last.Revision)
		clk.Advance(-1e9) // an older id, a later revision: the order is etcd's, not the ids'
	}
	got, _, err := st.AlertsAfter(ctx, AllTenants(), "a", revs[0], 1)
	if err != nil || len(got) != 1 || got[0].Revision != revs[1] {
		t.Fatalf("AlertsAfter(rev of the first, limit 1) = %v, %v; want the second", got, err)
	}
	if _, _, err := st.AlertsAfter(ctx, TenantScope("b"), "a", 0, 1); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrForbidden) {
		t.Errorf("another tenant's scope read the alerts: %v", err)
	}

	if _, ok, err := st.ExportCursor(ctx, "a"); ok || err != nil {
		t.Fatalf("cursor before any: %v, %v", ok, err)
	}
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	leaderKey := ExportLeaderPrefix() + "x"
	put, err := cli.Put(ctx, leaderKey, "n1", clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	leader := clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", put.Header.Revision)
	if err := st.SetExportCursor(ctx, "a", revs[1], leader); err != nil {
		t.Fatal(err)
	}
	if cur, ok, err := st.ExportCursor(ctx, "a"); cur != revs[1] || !ok || err != nil {
		t.Fatalf("cursor = %d, %v, %v; want %d", cur, ok, err, revs[1])
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil { // leadership lost
		t.Fatal(err)
	}
	if err := st.SetExportCursor(ctx, "a", revs[2], leader); !errors.Is(err, ErrNotLeader) {
		t.Errorf("cursor write after losing the lead: %v, want ErrNotLeader", err)
	}
	if err := st.DeleteExportCursor(ctx, "a", leader); !errors.Is(err, ErrNotLeader) {
		t.Errorf("cursor delete after losing the lead: %v, want ErrNotLeader", err)
	}
	if cur, _, _ := st.ExportCursor(ctx, "a"); cur != revs[1] {
		t.Errorf("cursor = %d after refused writes, want %d", cur, revs[1])
	}
}
