package store_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// An SCN belongs to no tenant while pending, and to its tenant once
// accepted: only the all-tenants scope sees a pending one or changes any.
func TestServersScopedToTheirTenant(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	all := store.AllTenants()
	if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: "acme", Name: "Acme", CreatedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	v, err := st.CreateServer(ctx, &ospreyv1.Server{Id: "branch", State: ospreyv1.ServerState_SERVER_STATE_PENDING})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateServer(ctx, &ospreyv1.Server{Id: "branch"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second request under the same id: %v, want ErrExists", err)
	}
	acme := store.TenantScope("acme")
	if _, _, err := st.GetServer(ctx, acme, "branch"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a tenant reads a pending server: %v, want ErrNotFound", err)
	}
	accepted := &ospreyv1.Server{Id: "branch", Tenant: "acme", State: ospreyv1.ServerState_SERVER_STATE_ACCEPTED}
	if _, err := st.UpdateServer(ctx, acme, accepted, v); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("a tenant accepts a server: %v, want ErrForbidden", err)
	}
	if _, err := st.UpdateServer(ctx, all, &ospreyv1.Server{Id: "branch", Tenant: "nope"}, v); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("accepted into a tenant that does not exist: %v, want ErrNotFound", err)
	}
	v2, err := st.UpdateServer(ctx, all, accepted, v)
	if err != nil {
		t.Fatal(err)
	}
	stale := &ospreyv1.Server{Id: "branch", Tenant: "acme", State: ospreyv1.ServerState_SERVER_STATE_DISCONNECTED}
	if _, err := st.UpdateServer(ctx, all, stale, v); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a write at an old version: %v, want ErrConflict", err)
	}
	if list, err := st.ListServers(ctx, acme); err != nil || len(list) != 1 {
		t.Errorf("acme's servers: %v, %v; want branch", list, err)
	}
	if list, err := st.ListServers(ctx, store.TenantScope("globex")); err != nil || len(list) != 0 {
		t.Errorf("another tenant's servers: %v, %v; want none", list, err)
	}
	if err := st.DeleteServer(ctx, all, "branch", v2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetServer(ctx, all, "branch"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}

// A link is live under the lease of the node holding it; when the node
// dies its last known state stays, offline.
func TestServerLinkLiveUnderLease(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	lease, err := st.Lease(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutServerLink(ctx, lease, &ospreyv1.ServerLink{ServerId: "branch", Online: true, Sensors: 3}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutServerLink(ctx, lease, &ospreyv1.ServerLink{ServerId: "branch", Online: false, Sensors: 3}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutServerLink(ctx, lease, &ospreyv1.ServerLink{ServerId: "branch", Online: true, Sensors: 4}); err != nil {
		t.Fatal(err)
	}
	links, err := st.ServerLinks(ctx)
	if err != nil || !links["branch"].GetOnline() || links["branch"].GetSensors() != 4 {
		t.Fatalf("live link: %v, %v; want online with 4 sensors", links, err)
	}
	if err := st.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	links, err = st.ServerLinks(ctx)
	if err != nil || links["branch"] == nil || links["branch"].GetOnline() || links["branch"].GetSensors() != 3 {
		t.Errorf("after the node died: %v, %v; want the last known state, offline", links, err)
	}
}
