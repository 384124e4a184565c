package store

import (
	"errors"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestExportCursor checks that only the export's leader moves a tenant's
// cursor.
func TestExportCursor(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
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
	if err := st.SetExportCursor(ctx, "a", 7, leader); err != nil {
		t.Fatal(err)
	}
	if cur, ok, err := st.ExportCursor(ctx, "a"); cur != 7 || !ok || err != nil {
		t.Fatalf("cursor = %d, %v, %v; want 7", cur, ok, err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil { // leadership lost
		t.Fatal(err)
	}
	if err := st.SetExportCursor(ctx, "a", 9, leader); !errors.Is(err, ErrNotLeader) {
		t.Errorf("cursor write after losing the lead: %v, want ErrNotLeader", err)
	}
	if err := st.DeleteExportCursor(ctx, "a", leader); !errors.Is(err, ErrNotLeader) {
		t.Errorf("cursor delete after losing the lead: %v, want ErrNotLeader", err)
	}
	if cur, _, _ := st.ExportCursor(ctx, "a"); cur != 7 {
		t.Errorf("cursor = %d after refused writes, want 7", cur)
	}
}
