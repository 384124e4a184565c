package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ConfigHub follows the configuration of every sensor with one etcd watch
// and hands each change to the streams that follow that sensor, so a node
// serving ten thousand sensors holds one watch, not ten thousand.
//
// Design note. A Follower is registered before it reads its snapshot: every
// change the hub receives after the registration is queued for it, and the
// snapshot, read after the registration, already holds every change the hub
// received before it (etcd's reads are linearizable). Next applies the queued
// changes newer than the follower's configuration, so nothing is missed and
// nothing is applied twice. Next returns the configuration as of the newest
// change only: a stream sends full configurations, so the ones in between
// would be sent only to be replaced. The hub never waits for a follower: a
// follower that falls far behind, and every follower when the hub's watch
// had to start again from a revision etcd no longer has, reads a fresh
// snapshot instead.
//
// The same watch keeps the records of approved sensors that Sensor has read
// (for the check of every upload) current. A record read at revision r is
// kept only when the hub has dispatched no change after r, so every later
// change reaches it; a change that leaves a sensor anything but approved
// drops it, and so does the end of the watch, for whatever reason: a record
// is answered from memory only while the watch that keeps it is up.
type ConfigHub struct {
	st  *Store
	log *slog.Logger

	mu        sync.Mutex
	followers map[sensorRef]map[*Follower]struct{}
	// rev is the revision of the last change dispatched (0: the hub has not
	// started watching); the watch resumes from rev+1.
	rev int64
	// watching is true while the watch is up; sensors is empty otherwise.
	watching bool
	sensors  map[sensorRef]heldSensor
}

// heldSensor is an approved sensor's record as of revision rev.
type heldSensor struct {
	sn  *ospreyv1.Sensor
	rev int64
}

type sensorRef struct{ tenant, id string }

// maxPending is how many changes a follower may have queued before it
// falls back to a fresh snapshot.
const maxPending = 1024

// NewConfigHub returns a hub over st's sensors; Run follows etcd.
func NewConfigHub(st *Store, opts CacheOptions) *ConfigHub {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConfigHub{st: st, log: log, followers: map[sensorRef]map[*Follower]struct{}{}, sensors: map[sensorRef]heldSensor{}}
}

// Sensor returns the record of sensor id of tenant, for a check that runs
// on every upload. An approved sensor's record comes from memory while the
// hub's watch is up, so a revocation or deletion written through any node
// applies within the watch's latency; any other record (pending, revoked,
// none: ErrNotFound), and every record while the watch is down, is read from
// etcd, so that an approval applies at once and a refusal is never stale.
// The record is shared: callers must not modify it.
func (h *ConfigHub) Sensor(ctx context.Context, tenant, id string) (*ospreyv1.Sensor, error) {
	if err := CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	if err := CheckID("sensor", id); err != nil {
		return nil, err
	}
	ref := sensorRef{tenant, id}
	h.mu.Lock()
	held, ok := h.sensors[ref]
	h.mu.Unlock()
	if ok {
		return held.sn, nil
	}
	sn := new(ospreyv1.Sensor)
	_, read, err := h.st.getAt(ctx, sensorKey(tenant, id, partMeta), sn)
	if err != nil {
		return nil, fmt.Errorf("sensor %q: %w", id, err)
	}
	if sn.GetState() == ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		h.mu.Lock()
		// A change dispatched after the read would not reach the record.
		if cur, ok := h.sensors[ref]; h.watching && h.rev <= read && (!ok || cur.rev < read) {
			h.sensors[ref] = heldSensor{sn: sn, rev: read}
		}
		h.mu.Unlock()
	}
	return sn, nil
}

// Follow registers a follower of one sensor's configuration. Its Changed
// channel is ready at once, for the first configuration; Close unregisters
// it. A sensor outside scope is ErrNotFound.
func (h *ConfigHub) Follow(ctx context.Context, scope Scope, sensorID string) (*Follower, error) {
	tenant, err := h.st.sensorTenant(ctx, scope, sensorID)
	if err != nil {
		return nil, err
	}
	f := &Follower{hub: h, ref: sensorRef{tenant, sensorID}, wake: make(chan struct{}, 1), resync: true}
	f.wake <- struct{}{}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.followers[f.ref]
	if set == nil {
		set = map[*Follower]struct{}{}
		h.followers[f.ref] = set
	}
	set[f] = struct{}{}
	return f, nil
}

// Run follows the configuration of every sensor until ctx ends; it returns
// nil then. Failures are logged and retried with backoff, resuming from the
// last change dispatched.
func (h *ConfigHub) Run(ctx context.Context) error {
	backoff := cacheRetryMin
	for {
		err := h.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrCompacted) {
			h.log.InfoContext(ctx, "sensor configuration watch compacted; every stream reads a fresh snapshot", "err", err)
			h.mu.Lock()
			h.rev = 0
			h.mu.Unlock()
			continue
		}
		h.log.WarnContext(ctx, "sensor configuration watch failed; resuming", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, cacheRetryMax)
	}
}

// watch follows etcd from the revision after the last change dispatched,
// or, when there is none, from now, after which every follower reads a fresh
// snapshot (changes before now were not dispatched to it).
func (h *ConfigHub) watch(ctx context.Context) error {
	h.mu.Lock()
	rev := h.rev
	h.mu.Unlock()
	fresh := rev == 0
	if fresh {
		resp, err := h.st.cli.Get(ctx, tenantsPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return etcdErr("range", tenantsPrefix, err)
		}
		rev = resp.Header.Revision
	}
	h.mu.Lock()
	if fresh {
		h.rev = rev
		for _, set := range h.followers {
			for f := range set {
				f.markResync()
			}
		}
	}
	h.watching = true
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	defer func() {
		h.mu.Lock()
		h.watching = false
		clear(h.sensors)
		h.mu.Unlock()
	}()
	for wr := range h.st.cli.Watch(ctx, tenantsPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("watch sensors from revision %d: compacted at %d: %w", rev, wr.CompactRevision, ErrCompacted)
		}
		if err := wr.Err(); err != nil {
			return etcdErr("watch", tenantsPrefix, err)
		}
		h.dispatch(wr.Events)
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("etcd watch closed")
}

// dispatch queues each change for the followers of its sensor. The events
// of one response are queued together, so a follower never sees part of a
// transaction.
func (h *ConfigHub) dispatch(events []*clientv3.Event) {
	if len(events) == 0 {
		return
	}
	byRef := map[sensorRef][]partChange{}
	for _, ev := range events {
		tenant, id, part, ok := parseSensorKey(string(ev.Kv.Key))
		if !ok {
			continue
		}
		c := partChange{part: part, rev: ev.Kv.ModRevision, kv: ev.Kv}
		if ev.Type == clientv3.EventTypeDelete {
			c.kv = nil
		}
		ref := sensorRef{tenant, id}
		byRef[ref] = append(byRef[ref], c)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ref, cs := range byRef {
		h.updateSensor(ref, cs)
		for f := range h.followers[ref] {
			f.queue(cs)
		}
	}
	h.rev = events[len(events)-1].Kv.ModRevision
}

// updateSensor applies changes of one sensor to the record Sensor keeps of
// it, if any: it keeps an approved sensor's newer record, and drops any
// other. h.mu is held.
func (h *ConfigHub) updateSensor(ref sensorRef, cs []partChange) {
	held, ok := h.sensors[ref]
	if !ok {
		return
	}
	for _, c := range cs {
		if c.part != partMeta || c.rev <= held.rev {
			continue
		}
		sn := new(ospreyv1.Sensor)
		if c.kv == nil || decode(c.kv, sn) != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
			// Deleted, unreadable, or no longer approved: the next
			// Sensor reads etcd.
			delete(h.sensors, ref)
			return
		}
		held = heldSensor{sn: sn, rev: c.rev}
		h.sensors[ref] = held
	}
}

// partChange is one watched change of one part of a sensor's configuration.
type partChange struct {
	part string
	rev  int64
	kv   *mvccpb.KeyValue // nil: deleted
}

// Follower follows one sensor's configuration through a ConfigHub. Changed
// and Next are for one goroutine, the stream's; the hub queues changes from
// its own.
type Follower struct {
	hub  *ConfigHub
	ref  sensorRef
	wake chan struct{} // holds a token while there is something to read

	mu      sync.Mutex
	pending []partChange
	resync  bool // read a fresh snapshot before applying pending

	cfg *SensorConfig // owned by the caller of Next
}

// Changed returns a channel that is ready when Next may have a newer
// configuration.
func (f *Follower) Changed() <-chan struct{} { return f.wake }

// Next returns the sensor's configuration as of the newest change it has
// not returned yet, or nil when there is none. The first call returns the
// current configuration. A sensor that has been deleted is ErrNotFound.
func (f *Follower) Next(ctx context.Context) (*SensorConfig, error) {
	f.mu.Lock()
	pending, resync := f.pending, f.resync
	f.pending, f.resync = nil, false
	f.mu.Unlock()
	changed := false
	if resync || f.cfg == nil {
		cfg, err := f.hub.st.sensorConfigAt(ctx, f.ref.tenant, f.ref.id, true)
		if err != nil {
			f.markResync()
			return nil, err
		}
		f.cfg, changed = cfg, true
	}
	for i, c := range pending {
		if c.rev <= f.cfg.Revision {
			continue
		}
		if err := f.cfg.apply(c.part, c.kv); err != nil {
			f.markResync()
			return nil, err
		}
		changed = true
		// The parts of one transaction share a revision: the configuration
		// holds at it once the last of them is applied.
		if i+1 == len(pending) || pending[i+1].rev != c.rev {
			f.cfg.Revision = c.rev
		}
	}
	if f.cfg.Sensor == nil {
		return nil, fmt.Errorf("sensor %q deleted at revision %d: %w", f.ref.id, f.cfg.Revision, ErrNotFound)
	}
	if !changed {
		return nil, nil
	}
	return f.cfg.clone(), nil
}

// Close unregisters the follower.
func (f *Follower) Close() {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.followers[f.ref]; set != nil {
		delete(set, f)
		if len(set) == 0 {
			delete(h.followers, f.ref)
		}
	}
}

// queue adds changes for Next, or, past maxPending, drops them for a fresh
// snapshot.
func (f *Follower) queue(cs []partChange) {
	f.mu.Lock()
	if !f.resync {
		if len(f.pending)+len(cs) > maxPending {
			f.pending, f.resync = nil, true
		} else {
			f.pending = append(f.pending, cs...)
		}
	}
	f.mu.Unlock()
	f.signal()
}

// markResync makes the next Next read a fresh snapshot.
func (f *Follower) markResync() {
	f.mu.Lock()
	f.pending, f.resync = nil, true
	f.mu.Unlock()
	f.signal()
}

func (f *Follower) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}
