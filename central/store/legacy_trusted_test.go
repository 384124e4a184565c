package store

import (
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// putLegacySMTP stores an integration as an earlier version did, with
// trusted networks (which a write through the store now refuses).
func putLegacySMTP(t *testing.T, st *Store, tenant, id string, trusted ...string) {
	t.Helper()
	cfg := &ospreyv1.SmtpIntegration{
		Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 10, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		//lint:ignore SA1019 what an earlier version stored
		Gateway: &ospreyv1.SmtpGateway{Outbound: &ospreyv1.GatewayListener{Listen: "0.0.0.0:2525"}, TrustedNetworks: trusted},
	}
	b, err := encode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.cli.Put(t.Context(), sensorKey(tenant, id, partSMTP), string(b)); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateTrustedNetworks(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"}, [2]string{"a", "s1"}, [2]string{"a", "s2"}, [2]string{"b", "s3"}, [2]string{"b", "s4"})
	putLegacySMTP(t, st, "a", "s1", "10.0.0.0/8", "!10.0.0.5", "2001:DB8::/32")
	putLegacySMTP(t, st, "a", "s2", "192.0.2.0/24")
	if _, err := st.EditAcceptance(ctx, AllTenants(), "s2", outbound, []string{"mail.example.com", "192.0.2.0/24"}, nil, AnyVersion); err != nil {
		t.Fatal(err)
	}
	putLegacySMTP(t, st, "b", "s3", "10.0.0.5")
	if _, err := st.EditAcceptance(ctx, AllTenants(), "s3", outbound, []string{"!10.0.0.5"}, nil, AnyVersion); err != nil {
		t.Fatal(err)
	}
	putLegacySMTP(t, st, "b", "s4")
	_, v4, err := st.GetSMTP(ctx, AllTenants(), "s4")
	if err != nil {
		t.Fatal(err)
	}

	// Two nodes start at once.
	var wg sync.WaitGroup
	results := make([]TrustedMigration, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = st.MigrateTrustedNetworks(ctx) })
	}
	wg.Wait()
	var moved []string
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		moved = append(moved, r.Moved...)
		if _, ok := r.Failed["s3"]; !ok || len(r.Failed) != 1 {
			t.Errorf("node %d failed %v, want s3 only", i, r.Failed)
		}
	}
	slices.Sort(moved)
	if diff := cmp.Diff([]string{"s1", "s2"}, moved); diff != "" {
		t.Errorf("moved by both nodes (-want +got):\n%s", diff)
	}

	for id, want := range map[string][]string{
		"s1": {"10.0.0.0/8", "!10.0.0.5", "2001:db8::/32"},
		"s2": {"192.0.2.0/24", "mail.example.com"},
		"s3": {"!10.0.0.5"},
	} {
		if diff := cmp.Diff(want, getAll(t, st, AllTenants(), id, outbound).Entries); diff != "" {
			t.Errorf("%s outbound list (-want +got):\n%s", id, diff)
		}
	}
	for id, keeps := range map[string]bool{"s1": false, "s2": false, "s3": true} {
		cfg, _, err := st.GetSMTP(ctx, AllTenants(), id)
		if err != nil {
			t.Fatal(err)
		}
		//lint:ignore SA1019 what is moved
		if got := len(cfg.GetGateway().GetTrustedNetworks()) > 0; got != keeps {
			t.Errorf("%s keeps its trusted networks: %t, want %t", id, got, keeps)
		}
		if cfg.GetGateway().GetOutbound().GetListen() != "0.0.0.0:2525" {
			t.Errorf("%s lost the rest of its integration: %v", id, cfg)
		}
	}
	if _, v, _ := st.GetSMTP(ctx, AllTenants(), "s4"); v != v4 {
		t.Errorf("s4, with nothing to move, was written: version %d, was %d", v, v4)
	}

	// Again: nothing to move.
	again, err := st.MigrateTrustedNetworks(ctx)
	if err != nil || len(again.Moved) != 0 {
		t.Errorf("second run: %+v, %v; want nothing moved", again, err)
	}
	if _, ok := again.Failed["s3"]; !ok {
		t.Errorf("second run: s3 not reported, want its failure again")
	}
}
