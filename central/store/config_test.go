package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

// recv returns the next event of a watch, failing the test after a generous
// timeout (a guard against a hung test, not a wait for anything).
func recv[E any](t *testing.T, ch <-chan E) E {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch closed, want an event")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatalf("no event after 20s")
	}
	panic("unreachable")
}

// recvClosed fails unless ch is closed (after draining nothing).
func recvClosed[E any](t *testing.T, ch <-chan E) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("got event %+v, want the watch closed", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("watch not closed after 20s")
	}
}

// change is one write of a test sequence.
type change struct {
	write func(ctx context.Context, st *Store) (int64, error)
	check func(cfg *SensorConfig) string
}

// changes returns n distinct writes to sensor s1 of tenant a, cycling
// through its SMTP, POP3 and meta parts.
func changes(n int) []change {
	var out []change
	for i := range n {
		switch i % 3 {
		case 0:
			want := smtp(fmt.Sprintf("d%d.example.com", i))
			out = append(out, change{
				write: func(ctx context.Context, st *Store) (int64, error) {
					return st.PutSMTP(ctx, AllTenants(), "s1", want, AnyVersion)
				},
				check: func(cfg *SensorConfig) string { return diff(want, cfg.SMTP) },
			})
		case 1:
			want := pop3(fmt.Sprintf("pop%d.example.com", i))
			out = append(out, change{
				write: func(ctx context.Context, st *Store) (int64, error) {
					return st.PutPOP3(ctx, AllTenants(), "s1", want, AnyVersion)
				},
				check: func(cfg *SensorConfig) string { return diff(want, cfg.POP3) },
			})
		default:
			want := sensor("a", "s1")
			want.Name = fmt.Sprintf("renamed %d", i)
			out = append(out, change{
				write: func(ctx context.Context, st *Store) (int64, error) {
					return st.UpdateSensor(ctx, AllTenants(), want, AnyVersion)
				},
				check: func(cfg *SensorConfig) string { return diff(want, cfg.Sensor) },
			})
		}
	}
	return out
}

func TestWatchDeliversEveryChangeInOrder(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"}, [2]string{"a", "other"})
	snap, err := st.SensorConfig(ctx, TenantScope("a"), "s1")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	events := st.WatchSensorConfig(ctx, TenantScope("a"), "s1", snap.Revision)

	const n = 30
	cs := changes(n)
	versions := make([]int64, n)
	for i, c := range cs {
		v, err := c.write(ctx, st)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		versions[i] = v
		// Another sensor's changes are not this watch's business.
		if _, err := st.PutSMTP(ctx, AllTenants(), "other", smtp(fmt.Sprintf("o%d.example.com", i)), AnyVersion); err != nil {
			t.Fatalf("change other sensor: %v", err)
		}
	}

	last := snap.Revision
	var lastEv ConfigEvent
	for i, c := range cs {
		ev := recv(t, events)
		lastEv = ev
		if ev.Err != nil {
			t.Fatalf("event %d: %v", i, ev.Err)
		}
		if ev.Config.Revision != versions[i] || ev.Config.Revision <= last {
			t.Errorf("event %d: revision %d, want %d (after %d)", i, ev.Config.Revision, versions[i], last)
		}
		last = ev.Config.Revision
		if d := c.check(ev.Config); d != "" {
			t.Errorf("event %d: diff (-want +got):\n%s", i, d)
		}
	}

	// The last event is what a fresh snapshot reads.
	now, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	now.Revision = lastEv.Config.Revision
	if d := diff(now, lastEv.Config); d != "" {
		t.Errorf("last event differs from a snapshot: diff (-snapshot +event):\n%s", d)
	}
}

func TestWatchGroupsOneTransaction(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	snap, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	events := st.WatchSensorConfig(ctx, AllTenants(), "s1", snap.Revision)

	s, _ := encode(smtp("example.com"))
	p, _ := encode(pop3("pop.example.com"))
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpPut(sensorKey("a", "s1", partSMTP), string(s)),
		clientv3.OpPut(sensorKey("a", "s1", partPOP3), string(p)),
	).Commit()
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	if _, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("next.example.com"), AnyVersion); err != nil {
		t.Fatalf("put smtp: %v", err)
	}

	rev := resp.Header.Revision
	ev := recv(t, events)
	if ev.Err != nil || ev.Config.Revision != rev || ev.Config.SMTPVersion != rev || ev.Config.POP3Version != rev {
		t.Fatalf("first event: got %+v, want both parts at revision %d", ev, rev)
	}
	if d := diff(pop3("pop.example.com"), ev.Config.POP3); d != "" {
		t.Errorf("pop3: diff (-want +got):\n%s", d)
	}
	if ev := recv(t, events); ev.Err != nil || ev.Config.Revision <= rev {
		t.Errorf("second event: got %+v, want the next change", ev)
	}
}

func TestWatchResumesFromRevision(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	cs := changes(6)
	versions := make([]int64, len(cs))
	for i, c := range cs {
		v, err := c.write(ctx, st)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		versions[i] = v
	}

	// A sensor that applied change 2 resumes from its revision.
	const applied = 2
	events := st.WatchSensorConfig(ctx, AllTenants(), "s1", versions[applied])
	more := changes(7)[6]
	v, err := more.write(ctx, st)
	if err != nil {
		t.Fatalf("change after resume: %v", err)
	}
	later, laterV := append(cs[applied+1:], more), append(versions[applied+1:], v)
	for i, c := range later {
		ev := recv(t, events)
		if ev.Err != nil {
			t.Fatalf("event %d: %v", i, ev.Err)
		}
		if ev.Config.Revision != laterV[i] {
			t.Errorf("event %d: revision %d, want %d", i, ev.Config.Revision, laterV[i])
		}
		if d := c.check(ev.Config); d != "" {
			t.Errorf("event %d: diff (-want +got):\n%s", i, d)
		}
		// The first change after the resume point (meta) carries the POP3
		// part written before it.
		if i == 0 && ev.Config.POP3Version != versions[1] {
			t.Errorf("event %d: POP3 version %d, want %d from before the resume point", i, ev.Config.POP3Version, versions[1])
		}
	}
}

func TestWatchCompacted(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	var versions []int64
	for i, c := range changes(4) {
		v, err := c.write(ctx, st)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		versions = append(versions, v)
	}
	if _, err := cli.Compact(ctx, versions[2], clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}

	events := st.WatchSensorConfig(ctx, AllTenants(), "s1", versions[1])
	ev := recv(t, events)
	if !errors.Is(ev.Err, ErrCompacted) || ev.Config != nil {
		t.Fatalf("watch from a compacted revision: got %+v, want Err ErrCompacted", ev)
	}
	recvClosed(t, events)

	// The compaction revision itself is still there.
	events = st.WatchSensorConfig(ctx, AllTenants(), "s1", versions[2])
	if ev := recv(t, events); ev.Err != nil || ev.Config.Revision != versions[3] {
		t.Errorf("watch from the compaction revision: got %+v, want the change at %d", ev, versions[3])
	}
}

func TestWatchSensors(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"})
	start := revision(t, cli)
	all := st.WatchSensors(ctx, AllTenants(), start)
	onlyB := st.WatchSensors(ctx, TenantScope("b"), start)
	mustCreate(t, st, nil, [2]string{"a", "a1"}, [2]string{"b", "b1"})
	if _, err := st.PutSMTP(ctx, AllTenants(), "a1", smtp("example.com"), AnyVersion); err != nil {
		t.Fatalf("put smtp: %v", err)
	}

	type seen struct{ Tenant, SensorID, Part string }
	want := []seen{{"a", "a1", partMeta}, {"b", "b1", partMeta}, {"a", "a1", partSMTP}}
	for i, w := range want {
		c := recv(t, all)
		if got := (seen{c.Tenant, c.SensorID, c.Part}); got != w || c.Err != nil {
			t.Errorf("all tenants, change %d: got %+v, want %+v", i, c, w)
		}
	}
	if c := recv(t, onlyB); c.SensorID != "b1" || c.Part != partMeta {
		t.Errorf("tenant b: got %+v, want b1 meta", c)
	}
}

// TestWatchGoroutinesExit checks that a watch's goroutines end with its
// context: while blocked on etcd, while blocked on a consumer that stopped
// reading, and after delivering an error.
func TestWatchGoroutinesExit(t *testing.T) {
	st, _ := testStore(t)
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	ignore := goleak.IgnoreCurrent()

	ctx, cancel := context.WithCancel(t.Context())
	idle := st.WatchSensorConfig(ctx, AllTenants(), "s1", 0)
	stuck := st.WatchSensorConfig(ctx, AllTenants(), "s1", 0) // never read
	list := st.WatchSensors(ctx, AllTenants(), 0)
	failed := st.WatchSensorConfig(ctx, AllTenants(), "missing", 0)
	if ev := recv(t, failed); !errors.Is(ev.Err, ErrNotFound) {
		t.Errorf("watch of a missing sensor: got %+v, want ErrNotFound", ev)
	}
	recvClosed(t, failed)
	for i, c := range changes(3) {
		if _, err := c.write(t.Context(), st); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	recv(t, idle)
	recv(t, list)
	cancel()

	drainClosed(t, idle)
	drainClosed(t, list)
	// Nobody reads stuck: its goroutine must leave on its own.
	goleak.VerifyNone(t, ignore)
	recvClosed(t, stuck)
}

// drainClosed reads ch until it is closed.
func drainClosed[E any](t *testing.T, ch <-chan E) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("watch not closed 20s after its context ended")
		}
	}
}
