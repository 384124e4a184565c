package store_test

import (
	"fmt"
	"testing"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestApplySMTPToEverySensorOfATenant(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	all := store.AllTenants()
	for _, tn := range []string{"acme", "globex"} {
		if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tn, Name: tn}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 150 // more than two transactions' worth
	for i := range n {
		if _, err := st.CreateSensor(ctx, all, &ospreyv1.Sensor{Id: fmt.Sprintf("s%03d", i), Tenant: "acme", Name: "x", State: ospreyv1.SensorState_SENSOR_STATE_PENDING}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateSensor(ctx, all, &ospreyv1.Sensor{Id: "other", Tenant: "globex", Name: "x", State: ospreyv1.SensorState_SENSOR_STATE_PENDING}); err != nil {
		t.Fatal(err)
	}
	cfg := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "0.0.0.0:25", DestinationDomains: []string{"example.com"},
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 10, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}}
	// One sensor has it already: it is not rewritten.
	v0, err := st.PutSMTP(ctx, all, "s007", cfg, store.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	changed, rev, err := st.ApplySMTP(ctx, store.TenantScope("acme"), "acme", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if changed != n-1 || rev == 0 {
		t.Errorf("changed %d at revision %d, want %d", changed, rev, n-1)
	}
	for i := range n {
		got, v, err := st.GetSMTP(ctx, all, fmt.Sprintf("s%03d", i))
		if err != nil || got.GetListen() != "0.0.0.0:25" {
			t.Fatalf("s%03d: %v, %v", i, got, err)
		}
		if i == 7 && v != v0 {
			t.Errorf("the sensor that had the value already was rewritten: version %d, want %d", v, v0)
		}
	}
	if _, v, _ := st.GetSMTP(ctx, all, "other"); v != 0 {
		t.Error("a sensor of another tenant was written")
	}
	if _, _, err := st.ApplySMTP(ctx, store.TenantScope("acme"), "globex", cfg); err == nil {
		t.Error("a tenant scope applied to another tenant")
	}
	bad := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "nope"}
	if _, _, err := st.ApplySMTP(ctx, all, "acme", bad); err == nil {
		t.Error("an invalid configuration was applied")
	}
}
