package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestStatusLiveUnderLeaseAndDurableAfter(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	lease, err := st.Lease(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	live := &ospreyv1.SensorRuntime{SensorId: "s1", Tenant: "acme", Online: true, Node: "n1", AppliedVersion: 7}
	other := &ospreyv1.SensorRuntime{SensorId: "s2", Tenant: "globex", Online: true, Node: "n1"}
	if err := st.PutStatuses(ctx, lease, []store.StatusWrite{{Status: live, Durable: true}, {Status: other}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Status(ctx, store.TenantScope("acme"), "s1")
	if err != nil || got == nil || !got.GetOnline() || got.GetAppliedVersion() != 7 {
		t.Fatalf("live status: got %v, %v; want online at version 7", got, err)
	}
	if got, err := st.Status(ctx, store.TenantScope("acme"), "s2"); err != nil || got != nil {
		t.Errorf("another tenant's status: got %v, %v; want nothing", got, err)
	}
	all, err := st.Statuses(ctx, store.TenantScope("acme"))
	if err != nil || len(all) != 1 || all["s1"] == nil {
		t.Errorf("statuses in acme: got %v, %v; want s1 only", all, err)
	}

	// The node dies: its lease goes, and with it the live entries; the
	// durable copy says what was last known, offline.
	if err := st.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	got, err = st.Status(ctx, store.AllTenants(), "s1")
	if err != nil || got == nil || got.GetOnline() || got.GetAppliedVersion() != 7 {
		t.Errorf("after the lease ended: got %v, %v; want offline, version 7 kept", got, err)
	}
	if got, _ := st.Status(ctx, store.AllTenants(), "s2"); got != nil {
		t.Errorf("a status never made durable outlived its lease: %v", got)
	}
}

func TestClusterCAIsCreatedOnce(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	if _, err := st.ClusterCA(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new cluster: got %v, want ErrNotFound", err)
	}
	if err := st.CreateClusterCA(ctx, &ospreyv1.ClusterCA{CertPem: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateClusterCA(ctx, &ospreyv1.ClusterCA{CertPem: "second"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("second CA: got %v, want ErrExists", err)
	}
	ca, err := st.ClusterCA(ctx)
	if err != nil || ca.GetCertPem() != "first" {
		t.Errorf("got %v, %v; want the first CA kept", ca, err)
	}
}

func TestPublicKeyIsClaimedOnce(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	fp := strings.Repeat("ab", 32)
	if err := st.ClaimPublicKey(t.Context(), fp, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimPublicKey(t.Context(), fp, "s2"); !errors.Is(err, store.ErrExists) {
		t.Errorf("replayed key: got %v, want ErrExists", err)
	}
	if err := st.ClaimPublicKey(t.Context(), "../x", "s2"); !errors.Is(err, store.ErrInvalidID) {
		t.Errorf("malformed fingerprint: got %v, want ErrInvalidID", err)
	}
}
