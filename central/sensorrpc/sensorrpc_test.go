package sensorrpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// cluster is an etcd and the routers of some nodes on it, each with its
// own client, as central nodes have.
type cluster struct {
	t         *testing.T
	endpoints []string
}

func newCluster(t *testing.T) *cluster {
	srv := etcdtest.Start(t)
	return &cluster{t: t, endpoints: srv.Endpoints()}
}

func (c *cluster) client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// node starts a router and stops it when the test ends.
func (c *cluster) node() *Router {
	r := New(c.client(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	return r
}

// sensor is a stream of a sensor attached to a node: it answers each
// request with a reply naming the request's message id, and counts them.
type sensor struct {
	mu   sync.Mutex
	seen map[string]int // by request id
}

func (c *cluster) connect(r *Router, id string) (s *sensor, disconnect func()) {
	s = &sensor{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	requests, detach := r.Attach(ctx, id)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-requests:
				s.mu.Lock()
				s.seen[req.GetId()]++
				s.mu.Unlock()
				r.Reply(ctx, &ospreyv1.SensorReply{Id: req.GetId(), Result: &ospreyv1.SensorReply_QueueEntry{
					QueueEntry: &ospreyv1.QueueEntry{MessageId: req.GetQueueGet().GetMessageId(), Sender: id}}})
			}
		}
	}()
	var once sync.Once
	disconnect = func() { once.Do(func() { cancel(); <-done; detach() }) }
	c.t.Cleanup(disconnect)
	return s, disconnect
}

func (s *sensor) requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

func get(msg string) *ospreyv1.SensorRequest {
	return &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueGet{QueueGet: &ospreyv1.QueueGetRequest{MessageId: msg}}}
}

// TestCallReachesTheSensorsNode: a call made on one node reaches the
// sensor whose stream another node holds, once, and its reply comes back;
// the request and the reply are gone from etcd afterwards.
func TestCallReachesTheSensorsNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	s1, _ := c.connect(b, "s1")
	s2, _ := c.connect(a, "s2")
	for i, target := range []string{"s1", "s2", "s1"} {
		msg := string(rune('a' + i))
		rep, err := a.Call(t.Context(), target, get(msg))
		if err != nil {
			t.Fatalf("call %d to %s: %v", i, target, err)
		}
		if e := rep.GetQueueEntry(); e.GetMessageId() != msg || e.GetSender() != target {
			t.Errorf("call %d to %s: reply %v", i, target, rep)
		}
	}
	if n := len(s1.requests()); n != 2 {
		t.Errorf("s1 had %d requests, want 2", n)
	}
	for id, n := range s2.requests() {
		if n != 1 {
			t.Errorf("request %s reached s2 %d times", id, n)
		}
	}
	resp, err := c.client().Get(t.Context(), "/osprey/v1/cluster/sensor-rpc", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("%d request or reply keys left in etcd (%v), want none", resp.Count, err)
	}
}

// TestCallToNoStreamIsUnavailable: no node holds the sensor's stream: the
// call fails with ErrUnavailable at its deadline, and leaves nothing.
func TestCallToNoStreamIsUnavailable(t *testing.T) {
	c := newCluster(t)
	a := c.node()
	a.replyWait = 200 * time.Millisecond // the wait for a reply only: storing the request takes what it takes
	if _, err := a.Call(t.Context(), "s1", get("x")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("call to a sensor nobody holds: %v, want ErrUnavailable", err)
	}
	if resp, err := c.client().Get(t.Context(), store.SensorRequestKey("s1", ""), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("the request left in etcd (%v), want it gone with its lease", err)
	}
	if _, err := a.Call(t.Context(), "Not/An/ID", get("x")); !errors.Is(err, store.ErrInvalidID) {
		t.Errorf("call to a bad id: %v, want ErrInvalidID", err)
	}
}

// TestRequestWaitsForTheReconnect: a request made while the sensor is
// between streams reaches it on the node it reconnects to.
func TestRequestWaitsForTheReconnect(t *testing.T) {
	c := newCluster(t)
	a, b := c.node(), c.node()
	_, disconnect := c.connect(a, "s1")
	disconnect()
	type result struct {
		rep *ospreyv1.SensorReply
		err error
	}
	got := make(chan result, 1)
	go func() {
		rep, err := a.Call(t.Context(), "s1", get("late"))
		got <- result{rep, err}
	}()
	// The request is in etcd before the sensor is back.
	for {
		resp, err := c.client().Get(t.Context(), store.SensorRequestKey("s1", ""), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, _ := c.connect(b, "s1")
	r := <-got
	if r.err != nil || r.rep.GetQueueEntry().GetMessageId() != "late" {
		t.Fatalf("call: %v, %v", r.rep, r.err)
	}
	for id, n := range s.requests() {
		if n != 1 {
			t.Errorf("request %s reached the sensor %d times (read at attach and watched)", id, n)
		}
	}
}

// TestReplyToUnknownRequestIsDropped: a reply naming no request handed out
// (a sensor's answer after its caller gave up, or forged) writes nothing.
func TestReplyToUnknownRequestIsDropped(t *testing.T) {
	c := newCluster(t)
	a := c.node()
	a.Reply(t.Context(), &ospreyv1.SensorReply{Id: "0123456789abcdef0123456789abcdef"})
	resp, err := c.client().Get(t.Context(), store.SensorReplyKey(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("%d reply keys (%v), want none", resp.Count, err)
	}
}
