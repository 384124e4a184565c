package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// setSensorState writes sensor s1 of tenant a with state and name, and
// returns its version.
func setSensorState(t *testing.T, st *Store, state ospreyv1.SensorState, name string) int64 {
	t.Helper()
	sn := sensor("a", "s1")
	sn.State, sn.Name = state, name
	v, err := st.UpdateSensor(t.Context(), AllTenants(), sn, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hubOfS1 makes tenant a with sensor s1, and runs a hub.
func hubOfS1(t *testing.T) (*Store, *clientv3.Client, *ConfigHub) {
	t.Helper()
	st, cli := testStore(t)
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	return st, cli, startHub(t, st)
}

// dispatched waits until the hub has dispatched every change up to rev (or
// its watch started after rev, with nothing held from before).
func dispatched(t *testing.T, h *ConfigHub, rev int64) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("the hub to dispatch revision %d", rev), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.rev >= rev
	})
}

// held returns the record of a sensor that the hub holds, which Sensor
// answers with from memory, or nil.
func held(h *ConfigHub, tenant, id string) *ospreyv1.Sensor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sensors[sensorRef{tenant, id}].sn
}

// TestHubSensor: the hub answers an approved sensor's record from memory,
// kept current by its watch, and reads any other from etcd. Once the hub
// has dispatched a change, Sensor answers with it.
func TestHubSensor(t *testing.T) {
	st, cli, h := hubOfS1(t)
	ctx := t.Context()

	if _, err := h.Sensor(ctx, "a", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing sensor: got %v, want ErrNotFound", err)
	}
	if _, err := h.Sensor(ctx, "a", "../s1"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("invalid id: got %v, want ErrInvalidID", err)
	}
	if sn, err := h.Sensor(ctx, "a", "s1"); err != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_PENDING {
		t.Fatalf("pending sensor: got %v, %v", sn, err)
	}
	if sn := held(h, "a", "s1"); sn != nil {
		t.Errorf("a pending sensor's record is held: %v", sn)
	}

	// An approval applies to the next call, dispatched or not.
	v := setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "approved")
	if sn, err := h.Sensor(ctx, "a", "s1"); err != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		t.Fatalf("just approved: got %v, %v; want approved", sn, err)
	}
	dispatched(t, h, v)
	if _, err := h.Sensor(ctx, "a", "s1"); err != nil {
		t.Fatal(err)
	}
	if sn := held(h, "a", "s1"); sn.GetName() != "approved" {
		t.Fatalf("approved sensor: held %v, want its record", sn)
	}

	// The watch brings changes to the record it holds.
	v = setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "renamed")
	dispatched(t, h, v)
	if sn := held(h, "a", "s1"); sn.GetName() != "renamed" {
		t.Errorf("after a rename: held %v, want the renamed record", sn)
	}

	// A revocation drops it: the next call reads the revoked record.
	v = setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_REVOKED, "renamed")
	dispatched(t, h, v)
	if sn := held(h, "a", "s1"); sn != nil {
		t.Errorf("after the revocation: held %v, want nothing", sn)
	}
	if sn, err := h.Sensor(ctx, "a", "s1"); err != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_REVOKED {
		t.Errorf("after the revocation: got %v, %v; want revoked", sn, err)
	}

	// So does a deletion.
	dispatched(t, h, setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "again"))
	if _, err := h.Sensor(ctx, "a", "s1"); err != nil {
		t.Fatal(err)
	}
	if sn := held(h, "a", "s1"); sn.GetName() != "again" {
		t.Fatalf("approved again: held %v, want the record", sn)
	}
	del, err := cli.Delete(ctx, sensorPrefix("a", "s1"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	dispatched(t, h, del.Header.Revision)
	if sn, err := h.Sensor(ctx, "a", "s1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the deletion: got %v, %v; want ErrNotFound", sn, err)
	}
}

// TestHubSensorOnlyWhileWatching: the hub holds records only while its
// watch is up, and drops them when it ends.
func TestHubSensorOnlyWhileWatching(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "approved")
	h := NewConfigHub(st, CacheOptions{})
	if sn, err := h.Sensor(ctx, "a", "s1"); err != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		t.Fatalf("before the watch: got %v, %v; want approved, read from etcd", sn, err)
	}
	if sn := held(h, "a", "s1"); sn != nil {
		t.Errorf("before the watch: held %v, want nothing", sn)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	dispatched(t, h, setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, "watched"))
	if _, err := h.Sensor(ctx, "a", "s1"); err != nil {
		t.Fatal(err)
	}
	if sn := held(h, "a", "s1"); sn.GetName() != "watched" {
		t.Fatalf("while watching: held %v, want the record", sn)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sn := held(h, "a", "s1"); sn != nil {
		t.Errorf("after the watch ended: held %v, want nothing", sn)
	}
}

// TestHubSensorRacesWithWrites reads a sensor's record while its state
// flips between approved and revoked: once a revocation is dispatched, no
// read that raced with it has left an approved record behind, until the
// next approval.
func TestHubSensorRacesWithWrites(t *testing.T) {
	st, _, h := hubOfS1(t)
	ctx := t.Context()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := h.Sensor(ctx, "a", "s1"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range 50 {
		setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_APPROVED, fmt.Sprintf("approved %d", i))
		dispatched(t, h, setSensorState(t, st, ospreyv1.SensorState_SENSOR_STATE_REVOKED, fmt.Sprintf("revoked %d", i)))
		if sn := held(h, "a", "s1"); sn != nil {
			t.Fatalf("revocation %d dispatched: held %v, want nothing", i, sn)
		}
	}
}
