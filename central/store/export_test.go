package store

import (
	"errors"
	"testing"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestExport(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	a, b := TenantScope("a"), TenantScope("b")

	e, err := st.GetExport(ctx, a, "a")
	if err != nil {
		t.Fatal(err)
	}
	if e.GetEnabled() || e.GetVersion() != 0 {
		t.Errorf("never written: got %v, want disabled at version 0", e)
	}
	in := &ospreyv1.SyslogExport{Enabled: true, Address: "siem.example.com:6514", Tls: true}
	stored, err := st.PutExport(ctx, a, "", in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetVersion() == 0 {
		t.Error("no version after a write")
	}
	if _, err := st.PutExport(ctx, a, "a", in, 0); err != nil {
		t.Errorf("writing the same value with a stale version: got %v, want success (nothing to lose)", err)
	}
	in.Facility = 16
	if _, err := st.PutExport(ctx, a, "a", in, 0); !errors.Is(err, ErrConflict) {
		t.Errorf("stale write: got %v, want ErrConflict", err)
	}
	got, err := st.GetExport(ctx, AllTenants(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(stored, got); d != "" {
		t.Errorf("GetExport (-put +got):\n%s", d)
	}
	if _, err := st.GetExport(ctx, b, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("b reads a's export: got %v, want ErrNotFound", err)
	}
	if _, err := st.PutExport(ctx, b, "a", in, AnyVersion); !errors.Is(err, ErrForbidden) {
		t.Errorf("b writes a's export: got %v, want ErrForbidden", err)
	}
	if _, err := st.GetExport(ctx, AllTenants(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tenant: got %v, want ErrNotFound", err)
	}
	if _, err := st.PutExport(ctx, AllTenants(), "nope", in, AnyVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("write to a missing tenant: got %v, want ErrNotFound", err)
	}
	_, err = st.PutExport(ctx, a, "a", &ospreyv1.SyslogExport{Enabled: true, Facility: 40}, AnyVersion)
	if es, ok := validate.AsErrors(err); !ok || len(es) != 2 {
		t.Errorf("invalid export: got %v, want field errors on address and facility", err)
	}
}

func TestExportCache(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	all := AllTenants()
	if _, err := st.PutExport(ctx, all, "a", &ospreyv1.SyslogExport{Enabled: true, Address: "siem:514"}, AnyVersion); err != nil {
		t.Fatal(err)
	}
	c := NewExportCache(st, CacheOptions{})
	runCache(t, c.Run, c.Wait)
	if e, _ := c.Export("a"); e.GetAddress() != "siem:514" {
		t.Errorf("a's export after the load: got %v", e)
	}
	if e, _ := c.Export("b"); e != nil {
		t.Errorf("b's export: got %v, want none", e)
	}
	_, _, changed := c.Exports()
	put, err := st.PutExport(ctx, all, "b", &ospreyv1.SyslogExport{Enabled: true, Address: "siem-b:6514", Tls: true}, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	<-changed
	waitFor(t, c.c.changedChan, func() bool {
		m, rev, _ := c.Exports()
		return len(m) == 2 && m["b"].GetVersion() == put.GetVersion() && rev >= put.GetVersion()
	})
}
