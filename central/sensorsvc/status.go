package sensorsvc

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Status writing. Every stream's status changes (hello, ack, nack, periodic
// reports) are coalesced per sensor and written in batches under this node's
// lease, so 10,000 sensors cost a few etcd transactions a second rather than
// one per message, and a dead node's sensors go offline when its lease expires.
const (
	statusLeaseTTL   = 10 // seconds
	statusFlushEvery = 100 * time.Millisecond
)

// StatusWriter owns this node's status lease and the batch of pending writes.
type StatusWriter struct {
	store *store.Store
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]store.StatusWrite
	live    map[string]*session
}

// NewStatusWriter makes a writer; Run starts it.
func NewStatusWriter(st *store.Store, log *slog.Logger) *StatusWriter {
	return &StatusWriter{
		store:   st,
		log:     log,
		pending: map[string]store.StatusWrite{},
		live:    map[string]*session{},
	}
}

// Run holds the lease and flushes pending writes until ctx ends; then it
// flushes what is left and revokes the lease, so a clean shutdown marks this
// node's sensors offline at once.
func (w *StatusWriter) Run(ctx context.Context) error {
	for {
		err := w.runLease(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("status lease lost; taking a new one", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
	}
}

func (w *StatusWriter) runLease(ctx context.Context) error {
	lease, err := w.store.Lease(ctx, statusLeaseTTL)
	if err != nil {
		return err
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	alive, err := w.store.KeepAlive(kctx, lease)
	if err != nil {
		return err
	}
	// A new lease holds none of the live entries: write them all again.
	w.mu.Lock()
	for id, s := range w.live {
		w.pending[id] = store.StatusWrite{Status: proto.Clone(s.rt).(*ospreyv1.SensorRuntime)}
	}
	w.mu.Unlock()

	tick := time.NewTicker(statusFlushEvery)
	defer tick.Stop()
	for {
		select {
		case _, ok := <-alive:
			if !ok {
				return context.Cause(kctx)
			}
		case <-tick.C:
			if err := w.flush(ctx, lease); err != nil {
				w.log.Warn("write sensor status", "err", err)
			}
		case <-ctx.Done():
			final, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancelFinal()
			if err := w.flush(final, lease); err != nil {
				w.log.Warn("write sensor status at shutdown", "err", err)
			}
			if err := w.store.Revoke(final, lease); err != nil {
				w.log.Warn("revoke status lease", "err", err)
			}
			return nil
		}
	}
}

func (w *StatusWriter) flush(ctx context.Context, lease clientv3.LeaseID) error {
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	batch := make([]store.StatusWrite, 0, len(w.pending))
	for _, sw := range w.pending {
		batch = append(batch, sw)
	}
	clear(w.pending)
	w.mu.Unlock()
	if err := w.store.PutStatuses(ctx, lease, batch); err != nil {
		// Put them back unless a newer write for the same sensor came in.
		w.mu.Lock()
		for _, sw := range batch {
			if _, newer := w.pending[sw.Status.GetSensorId()]; !newer {
				w.pending[sw.Status.GetSensorId()] = sw
			}
		}
		w.mu.Unlock()
		return err
	}
	return nil
}

// session is the status of one open stream.
type session struct {
	w  *StatusWriter
	rt *ospreyv1.SensorRuntime // guarded by w.mu
}

// open records a sensor online on this node.
func (w *StatusWriter) open(rt *ospreyv1.SensorRuntime) *session {
	s := &session{w: w, rt: rt}
	w.mu.Lock()
	defer w.mu.Unlock()
	// A reconnect may race the old stream's end: the newest stream wins.
	w.live[rt.GetSensorId()] = s
	w.pending[rt.GetSensorId()] = store.StatusWrite{Status: proto.Clone(rt).(*ospreyv1.SensorRuntime), Durable: true}
	return s
}

// update changes the status; durable ones (ack, nack) are also kept as the
// sensor's last known state.
func (s *session) update(durable bool, f func(rt *ospreyv1.SensorRuntime)) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	f(s.rt)
	if s.w.live[s.rt.GetSensorId()] != s {
		return // A newer stream of the same sensor owns the status.
	}
	prev := s.w.pending[s.rt.GetSensorId()]
	s.w.pending[s.rt.GetSensorId()] = store.StatusWrite{Status: proto.Clone(s.rt).(*ospreyv1.SensorRuntime), Durable: durable || prev.Durable}
}

// close records the sensor offline, unless a newer stream took over.
func (s *session) close(now time.Time) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.live[s.rt.GetSensorId()] != s {
		return
	}
	delete(s.w.live, s.rt.GetSensorId())
	s.rt.Online = false
	s.rt.LastSeen = timestamppb.New(now)
	s.w.pending[s.rt.GetSensorId()] = store.StatusWrite{Status: proto.Clone(s.rt).(*ospreyv1.SensorRuntime), Offline: true}
}

// Bounds of what a sensor's status may store: the sensor is trusted with
// its own status, not with the size of the etcd values that hold it.
const (
	maxStatusProblems = 32
	maxStatusText     = 1024 // bytes of one problem or error
	maxStatusCounters = 256
)

// boundStatus returns st cut to the bounds above: a status that exceeds
// them keeps its first problems and counters (by name), each text cut.
func boundStatus(st *ospreyv1.SensorStatus) *ospreyv1.SensorStatus {
	st = proto.CloneOf(st)
	st.Counters = boundCounters(st.GetCounters())
	st.Problems = boundTexts(st.GetProblems())
	for _, in := range []*ospreyv1.IntegrationStatus{st.GetSmtp(), st.GetPop3()} {
		if in == nil {
			continue
		}
		in.Target = cutText(in.GetTarget())
		in.LastError = cutText(in.GetLastError())
		in.Refusals = boundCounters(in.GetRefusals())
		in.Problems = boundTexts(in.GetProblems())
	}
	if sp := st.GetSpool(); sp != nil {
		sp.Error = cutText(sp.GetError())
		sp.Problems = boundTexts(sp.GetProblems())
	}
	return st
}

func boundTexts(texts []string) []string {
	texts = texts[:min(len(texts), maxStatusProblems)]
	for i, t := range texts {
		texts[i] = cutText(t)
	}
	return texts
}

func boundCounters(m map[string]uint64) map[string]uint64 {
	if len(m) <= maxStatusCounters {
		for k := range m {
			if len(k) > 128 {
				delete(m, k)
			}
		}
		return m
	}
	out := make(map[string]uint64, maxStatusCounters)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(out) == maxStatusCounters {
			break
		}
		if len(k) <= 128 {
			out[k] = m[k]
		}
	}
	return out
}

// cutText cuts s to maxStatusText bytes, on a character boundary.
func cutText(s string) string {
	if len(s) <= maxStatusText {
		return s
	}
	return strings.ToValidUTF8(s[:maxStatusText], "") + "…"
}
