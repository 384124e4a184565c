package hierarchy

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/central/store"
)

// leaseHolder keeps the lease a node writes its live link records under:
// when the node dies, etcd deletes them after the lease's TTL, so the link
// shows offline.
type leaseHolder struct {
	st  *store.Store
	ttl int64

	mu      sync.Mutex
	lease   clientv3.LeaseID
	changed chan struct{} // closed when lease changes
}

func newLeaseHolder(st *store.Store, heartbeat time.Duration) *leaseHolder {
	ttl := int64((missedHeartbeats * heartbeat).Seconds())
	return &leaseHolder{st: st, ttl: max(ttl, 5), changed: make(chan struct{})}
}

// run grants the lease and keeps it alive, granting a new one when it is
// lost, until ctx ends; then it revokes it.
func (h *leaseHolder) run(ctx context.Context) error {
	for ctx.Err() == nil {
		lease, err := h.st.Lease(ctx, h.ttl)
		if err != nil {
			if !sleep(ctx, time.Second) {
				break
			}
			continue
		}
		kctx, cancel := context.WithCancel(ctx)
		ch, err := h.st.KeepAlive(kctx, lease)
		if err != nil {
			cancel()
			continue
		}
		h.set(lease)
		for range ch { // until the lease is lost or ctx ends
		}
		cancel()
		h.set(0)
		if ctx.Err() != nil {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = h.st.Revoke(rctx, lease) // at worst the TTL deletes the records
			rcancel()
		}
	}
	return nil
}

func (h *leaseHolder) set(l clientv3.LeaseID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lease = l
	close(h.changed)
	h.changed = make(chan struct{})
}

// get returns the current lease, waiting for one while there is none.
func (h *leaseHolder) get(ctx context.Context) (clientv3.LeaseID, error) {
	for {
		h.mu.Lock()
		l, ch := h.lease, h.changed
		h.mu.Unlock()
		if l != 0 {
			return l, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("no lease: %w", context.Cause(ctx))
		}
	}
}

// sleep waits d, or less when ctx ends first; it reports whether ctx lives.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
