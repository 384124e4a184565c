// Package sensorrpc carries an operator's request to a sensor and its
// reply back, whichever central node the operator and the sensor are
// connected to: the queue management of a gateway sensor (list, retry,
// hold, release, delete; stop and resume sending and receiving; flush).
//
// A request is a key in etcd (store.SensorRequestKey) under a lease of a
// few seconds that the calling node grants. Every node watches the
// requests once (Run), and the node that holds the sensor's Connect stream
// (Attach) hands the request to it; the sensor answers on its stream, and
// that node writes the reply (store.SensorReplyKey) under the request's
// lease (Reply). The caller waits for the reply with a watch and revokes
// the lease, which deletes both keys; a caller that dies leaves them to
// expire. So etcd holds only the requests in flight, and a sensor that
// reconnects to another node while a request waits is handed it there
// (Attach reads what waits). A request may reach a sensor twice in that
// case; every request is idempotent or says what it found (a second
// delete answers not found), and the caller takes the first reply.
//
// The API and the UI call through Ask, which asks only a sensor in the
// operator's scope and connected, and turns the sensor's refusals into
// errors; QueueListRequest reads a queue listing from the query
// parameters both of them take.
package sensorrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/etcdcall"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults.
const (
	// DefaultTimeout bounds a Call when its context has no earlier deadline.
	DefaultTimeout = 15 * time.Second
	// queued bounds the requests waiting for one stream.
	queued = 16
)

// ErrUnavailable is the error of a Call that no connected sensor answered.
var ErrUnavailable = errors.New("the sensor is not connected")

// Router is one central node's side of the requests; see the package
// comment.
type Router struct {
	cli *clientv3.Client
	log *slog.Logger

	mu       sync.Mutex
	attached map[string]*attachment // by sensor id
	// leases are the leases of the requests handed to a stream of this
	// node and not yet answered, by request id, for Reply.
	leases map[string]clientv3.LeaseID
	// seen are the request ids handed to a stream lately, so that the
	// read of Attach and the watch do not hand one twice.
	seen map[string]time.Time
	// replyWait bounds the wait for a reply once the request is stored:
	// DefaultTimeout (tests shorten it).
	replyWait time.Duration
}

type attachment struct {
	ch chan *ospreyv1.SensorRequest
}

// New returns a Router that uses cli; Run runs it.
func New(cli *clientv3.Client, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{cli: cli, log: log, attached: map[string]*attachment{},
		leases: map[string]clientv3.LeaseID{}, seen: map[string]time.Time{}, replyWait: DefaultTimeout}
}

// Run watches the requests and hands each to the stream of its sensor if
// this node holds it, until ctx ends.
func (r *Router) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := r.follow(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "watch of the sensor requests", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// follow hands over the requests waiting now, then those that come, until
// the watch fails: a request put before the watch started, or while it
// was down, is in the read.
func (r *Router) follow(ctx context.Context) error {
	resp, err := r.cli.Get(ctx, store.SensorRequestPrefix(), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		r.handOver(kv.Key, kv.Value, clientv3.LeaseID(kv.Lease))
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range r.cli.Watch(wctx, store.SensorRequestPrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete(),
		clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			r.handOver(ev.Kv.Key, ev.Kv.Value, clientv3.LeaseID(ev.Kv.Lease))
		}
	}
	return ctx.Err()
}

// handOver gives the request at key to its sensor's stream, if this node
// holds it.
func (r *Router) handOver(key, value []byte, lease clientv3.LeaseID) {
	sensor, id, ok := store.SensorRequestKeyParts(string(key))
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attached[sensor]
	if a == nil {
		return
	}
	if _, dup := r.seen[id]; dup {
		return
	}
	req := new(ospreyv1.SensorRequest)
	if err := proto.Unmarshal(value, req); err != nil || req.GetId() != id {
		r.log.Warn("unreadable sensor request", "key", string(key), "err", err)
		return
	}
	now := time.Now()
	for k, at := range r.seen {
		if now.Sub(at) > 2*etcdcall.LeaseTTL*time.Second {
			delete(r.seen, k)
			delete(r.leases, k) // never answered: its caller gave up long ago
		}
	}
	select {
	case a.ch <- req:
		r.seen[id] = now
		r.leases[id] = lease
	default:
		r.log.Warn("sensor requests waiting for the stream: one dropped", "sensor", sensor, "request", id)
	}
}

// Attach registers the Connect stream of sensor on this node and returns
// the requests to hand it, those already waiting first; detach ends that,
// when the stream does. A sensor has one stream at a time: a second Attach
// replaces the first.
func (r *Router) Attach(ctx context.Context, sensor string) (requests <-chan *ospreyv1.SensorRequest, detach func()) {
	a := &attachment{ch: make(chan *ospreyv1.SensorRequest, queued)}
	r.mu.Lock()
	r.attached[sensor] = a
	r.mu.Unlock()
	detach = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.attached[sensor] == a {
			delete(r.attached, sensor)
		}
	}
	// What waited while the sensor was between streams.
	resp, err := r.cli.Get(ctx, store.SensorRequestKey(sensor, ""), clientv3.WithPrefix())
	if err != nil {
		r.log.WarnContext(ctx, "read the requests waiting for a sensor", "sensor", sensor, "err", err)
	} else {
		for _, kv := range resp.Kvs {
			r.handOver(kv.Key, kv.Value, clientv3.LeaseID(kv.Lease))
		}
	}
	return a.ch, detach
}

// Holds reports whether this node holds the Connect stream of sensor.
func (r *Router) Holds(sensor string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached[sensor] != nil
}

// Reply stores the sensor's reply for the caller of its request. A reply
// to no request handed out here (its caller gave up, or a reply sent
// twice) is dropped.
func (r *Router) Reply(ctx context.Context, rep *ospreyv1.SensorReply) {
	id := rep.GetId()
	r.mu.Lock()
	lease, ok := r.leases[id]
	delete(r.leases, id)
	r.mu.Unlock()
	if !ok || store.CheckID("request", id) != nil {
		return
	}
	b, err := proto.Marshal(rep)
	if err != nil {
		r.log.WarnContext(ctx, "encode a sensor reply", "err", err)
		return
	}
	if _, err := r.cli.Put(ctx, store.SensorReplyKey(id), string(b), clientv3.WithLease(lease)); err != nil && ctx.Err() == nil {
		// Most often the caller's lease ran out: it gave up.
		r.log.InfoContext(ctx, "sensor reply not stored", "request", id, "err", err)
	}
}

// Call hands req to sensor and returns its reply. It fails with
// ErrUnavailable when no node's stream of the sensor answered within ctx's
// deadline, or DefaultTimeout. req's id is set here.
func (r *Router) Call(ctx context.Context, sensor string, req *ospreyv1.SensorRequest) (*ospreyv1.SensorReply, error) {
	if err := store.CheckID("sensor", sensor); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	id, err := etcdcall.NewID()
	if err != nil {
		return nil, err
	}
	req = proto.CloneOf(req)
	req.Id = id
	rep := new(ospreyv1.SensorReply)
	err = etcdcall.Call(ctx, r.cli, store.SensorRequestKey(sensor, id), store.SensorReplyKey(id), req, r.replyWait, rep)
	switch {
	case errors.Is(err, etcdcall.ErrNoReply):
		return nil, fmt.Errorf("sensor %s: no reply: %w", sensor, ErrUnavailable)
	case err != nil:
		return nil, fmt.Errorf("request to sensor %s: %w", sensor, err)
	}
	return rep, nil
}
