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

// startHub runs a ConfigHub over st until the test ends.
func startHub(t *testing.T, st *Store) *ConfigHub {
	t.Helper()
	h := NewConfigHub(st, CacheOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	return h
}

// follow registers a follower of sensor id, closed when the test ends.
func follow(t *testing.T, h *ConfigHub, scope Scope, id string) *Follower {
	t.Helper()
	f, err := h.Follow(t.Context(), scope, id)
	if err != nil {
		t.Fatalf("follow %s: %v", id, err)
	}
	t.Cleanup(f.Close)
	return f
}

// next returns the follower's next configuration, failing the test after a
// generous timeout (a guard against a hung test, not a wait for anything).
func next(t *testing.T, f *Follower) *SensorConfig {
	t.Helper()
	cfg, err := nextErr(t, f)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return cfg
}

func nextErr(t *testing.T, f *Follower) (*SensorConfig, error) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case <-f.Changed():
			cfg, err := f.Next(t.Context())
			if err != nil || cfg != nil {
				return cfg, err
			}
		case <-timeout:
			t.Fatalf("no configuration after 20s")
		}
	}
}

// nextAt returns the follower's configuration once it holds at rev or later.
func nextAt(t *testing.T, f *Follower, rev int64) *SensorConfig {
	t.Helper()
	for {
		if cfg := next(t, f); cfg.Revision >= rev {
			return cfg
		}
	}
}

// idle fails unless the follower has nothing new.
func idle(t *testing.T, f *Follower) {
	t.Helper()
	select {
	case <-f.Changed():
		if cfg, err := f.Next(t.Context()); cfg != nil || err != nil {
			t.Errorf("got %+v, %v; want nothing new", cfg, err)
		}
	default:
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

func TestFollowerDeliversEachChange(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"}, [2]string{"a", "other"})
	h := startHub(t, st)
	f := follow(t, h, TenantScope("a"), "s1")
	snap := next(t, f)
	want, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision < want.Revision {
		t.Errorf("first configuration at %d, want at least %d", snap.Revision, want.Revision)
	}
	snap.Revision = want.Revision
	if d := diff(want, snap); d != "" {
		t.Errorf("first configuration: diff (-snapshot +got):\n%s", d)
	}

	last := want.Revision
	for i, c := range changes(30) {
		v, err := c.write(ctx, st)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		// Another sensor's changes are not this follower's business.
		if _, err := st.PutSMTP(ctx, AllTenants(), "other", smtp(fmt.Sprintf("o%d.example.com", i)), AnyVersion); err != nil {
			t.Fatalf("change other sensor: %v", err)
		}
		// The hub may start watching after the follower read its first
		// snapshot; the follower then reads a fresh one, at a revision
		// that may already hold the other sensor's change.
		cfg := next(t, f)
		if cfg.Revision < v || cfg.Revision <= last {
			t.Errorf("change %d: revision %d, want %d or later (after %d)", i, cfg.Revision, v, last)
		}
		last = cfg.Revision
		if d := c.check(cfg); d != "" {
			t.Errorf("change %d: diff (-want +got):\n%s", i, d)
		}
	}
	idle(t, f)
}

// TestFollowerCoalesces checks that a follower that did not read while
// changes were made gets the newest configuration once, equal to a fresh
// snapshot: a stream sends full configurations, so the ones in between
// would only be replaced.
func TestFollowerCoalesces(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := startHub(t, st)
	f := follow(t, h, AllTenants(), "s1")
	next(t, f)
	var v int64
	for i, c := range changes(9) {
		var err error
		if v, err = c.write(ctx, st); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	cfg := nextAt(t, f, v)
	want, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(want, cfg); d != "" {
		t.Errorf("after 9 unread changes: diff (-snapshot +got):\n%s", d)
	}
	idle(t, f)
}

func TestFollowerGroupsOneTransaction(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := startHub(t, st)
	f := follow(t, h, AllTenants(), "s1")
	next(t, f)

	s, _ := encode(smtp("example.com"))
	p, _ := encode(pop3("pop.example.com"))
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpPut(sensorKey("a", "s1", partSMTP), string(s)),
		clientv3.OpPut(sensorKey("a", "s1", partPOP3), string(p)),
	).Commit()
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	rev := resp.Header.Revision
	cfg := next(t, f)
	if cfg.Revision != rev || cfg.SMTPVersion != rev || cfg.POP3Version != rev {
		t.Fatalf("got revision %d, smtp %d, pop3 %d; want both parts at revision %d", cfg.Revision, cfg.SMTPVersion, cfg.POP3Version, rev)
	}
	if d := diff(pop3("pop.example.com"), cfg.POP3); d != "" {
		t.Errorf("pop3: diff (-want +got):\n%s", d)
	}
}

// TestFollowersRaceWithWrites registers followers while a writer changes
// the sensor, before and after the hub starts, and checks that each ends
// with the last configuration written: the registration comes before the
// snapshot, so no change falls between the two.
func TestFollowersRaceWithWrites(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := NewConfigHub(st, CacheOptions{})
	early := follow(t, h, AllTenants(), "s1")
	next(t, early)

	const writes = 60
	written := make(chan int64, 1)
	started := make(chan struct{})
	go func() {
		var v int64
		for i, c := range changes(writes) {
			if i == writes/3 {
				close(started)
			}
			var err error
			if v, err = c.write(ctx, st); err != nil {
				t.Errorf("change %d: %v", i, err)
			}
		}
		written <- v
	}()
	<-started
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	var fs []*Follower
	for range 10 {
		f := follow(t, h, AllTenants(), "s1")
		next(t, f) // reads its snapshot while the writer goes on
		fs = append(fs, f)
	}
	last := <-written
	want, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range append(fs, early) {
		if d := diff(want, nextAt(t, f, last)); d != "" {
			t.Errorf("follower %d: diff (-snapshot +got):\n%s", i, d)
		}
	}
}

// TestFollowerFallsBackToSnapshot checks the two ways a follower misses
// changes, each answered with a fresh snapshot: it left more than
// maxPending unread, or the hub's watch restarted from a compacted
// revision.
func TestFollowerFallsBackToSnapshot(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := startHub(t, st)
	f := follow(t, h, AllTenants(), "s1")
	next(t, f)
	var v int64
	for i := range maxPending + 10 {
		var err error
		if v, err = st.PutSMTP(ctx, AllTenants(), "s1", smtp(fmt.Sprintf("d%d.example.com", i)), AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	cfg := nextAt(t, f, v)
	if d := diff(smtp(fmt.Sprintf("d%d.example.com", maxPending+9)), cfg.SMTP); d != "" {
		t.Errorf("after %d unread changes: diff (-want +got):\n%s", maxPending+10, d)
	}

	// A hub that stops, misses changes that etcd then compacts away, and
	// runs again.
	h2 := NewConfigHub(st, CacheOptions{})
	f2 := follow(t, h2, AllTenants(), "s1")
	next(t, f2)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h2.Run(runCtx) }()
	v, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("seen.example.com"), AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	nextAt(t, f2, v)
	cancel()
	<-done
	for i := range 3 {
		if v, err = st.PutSMTP(ctx, AllTenants(), "s1", smtp(fmt.Sprintf("missed%d.example.com", i)), AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Compact(ctx, v, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	runCtx, cancel = context.WithCancel(ctx)
	go func() { done <- h2.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	if cfg := nextAt(t, f2, v); cfg.SMTP.GetDestinationDomains()[0] != "missed2.example.com" {
		t.Errorf("after compaction: smtp %v, want missed2.example.com", cfg.SMTP.GetDestinationDomains())
	}
	if v, err = st.PutSMTP(ctx, AllTenants(), "s1", smtp("after.example.com"), AnyVersion); err != nil {
		t.Fatal(err)
	}
	if cfg := nextAt(t, f2, v); cfg.Revision != v {
		t.Errorf("a change after the compaction: revision %d, want %d", cfg.Revision, v)
	}
}

func TestFollowerOfDeletedOrMissingSensor(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := startHub(t, st)
	if _, err := h.Follow(ctx, AllTenants(), "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("follow a missing sensor: got %v, want ErrNotFound", err)
	}
	f := follow(t, h, AllTenants(), "s1")
	next(t, f)
	if _, err := cli.Delete(ctx, sensorPrefix("a", "s1"), clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := nextErr(t, f); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the sensor was deleted: got %v, want ErrNotFound", err)
	}
}

// TestHubGoroutinesExit checks that the hub's goroutines end with its
// context, with followers registered that nobody reads.
func TestHubGoroutinesExit(t *testing.T) {
	st, _ := testStore(t)
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	ignore := goleak.IgnoreCurrent()
	h := NewConfigHub(st, CacheOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	read := follow(t, h, AllTenants(), "s1")
	follow(t, h, AllTenants(), "s1") // never read
	next(t, read)
	for i, c := range changes(3) {
		v, err := c.write(t.Context(), st)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		nextAt(t, read, v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}
