package sensorsvc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestPushCarriesAcceptanceLists checks that a sensor is pushed its
// acceptance lists with the rest of its configuration, that a change of a
// list is a new configuration, and that three lists of 100,000 entries
// (past gRPC's default 4 MiB) reach a client that raised its receive limit
// as the agent does.
func TestPushCarriesAcceptanceLists(t *testing.T) {
	c := newCluster(t, 0)
	ctx := t.Context()
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	id := e.resp.GetSensorId()
	all := store.AllTenants()
	sn, ver, err := c.store.GetSensor(ctx, all, id)
	if err != nil {
		t.Fatal(err)
	}
	sn.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	if _, err := c.store.UpdateSensor(ctx, all, sn, ver); err != nil {
		t.Fatal(err)
	}
	kinds := []ospreyv1.AcceptanceListKind{
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH,
	}
	want := make([]*ospreyv1.AcceptanceList, len(kinds))
	var last int64
	for i, kind := range kinds {
		entries := make([]string, 100_000)
		for j := range entries {
			entries[j] = fmt.Sprintf("host%06d.list%d.example.com", j, i)
		}
		res, err := c.store.ReplaceAcceptance(ctx, all, id, kind, entries, store.AnyVersion)
		if err != nil {
			t.Fatal(err)
		}
		want[i], last = &ospreyv1.AcceptanceList{Kind: kind, Entries: entries}, res.Version
	}

	client := c.dial(t, &e.cert, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	s := connect(t, client, 0)
	cfg := s.next(t).GetConfig()
	if cfg.GetRevision() != last {
		t.Errorf("pushed version %d, want the last list's %d", cfg.GetRevision(), last)
	}
	if len(cfg.GetAcceptance()) != 3 {
		t.Fatalf("pushed %d lists, want 3", len(cfg.GetAcceptance()))
	}
	for i, l := range cfg.GetAcceptance() {
		if l.GetKind() != want[i].GetKind() || !cmp.Equal(l.GetEntries(), want[i].GetEntries()) {
			t.Errorf("list %d: %s with %d entries, want %s with %d", i, l.GetKind(), len(l.GetEntries()), want[i].GetKind(), len(want[i].GetEntries()))
		}
	}

	res, err := c.store.EditAcceptance(ctx, all, id, kinds[0], nil, []string{want[0].GetEntries()[0]}, store.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	cfg = s.next(t).GetConfig()
	if cfg.GetRevision() != res.Version || len(cfg.GetAcceptance()[0].GetEntries()) != 99_999 {
		t.Errorf("after an edit: version %d with %d inbound entries, want %d with 99999", cfg.GetRevision(), len(cfg.GetAcceptance()[0].GetEntries()), res.Version)
	}
}
