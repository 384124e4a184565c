package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is the gossip key of the test clusters.
var testKey = EncodeKey([]byte("0123456789abcdef0123456789abcdef"))

// fakeClock ticks only when the test says so.
type fakeClock struct{ c chan time.Time }

func newFakeClock() *fakeClock { return &fakeClock{c: make(chan time.Time, 1)} }

func (f *fakeClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return f.c, func() {} }

// tick makes the next rejoin happen.
func (f *fakeClock) tick() { f.c <- time.Now() }

type testNode struct {
	name   string
	c      *Cluster
	lt     *LossyTransport
	clock  *fakeClock
	cancel context.CancelFunc
	done   chan error
}

// testLogger writes to the test log when -v is given, and nowhere otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() || os.Getenv("OSPREY_GOSSIP_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// sensorMeta is the metadata of a healthy central+sensor node.
func sensorMeta(i int) Meta {
	return Meta{
		Roles:    []Role{RoleCentral, RoleSensor},
		GRPCAddr: fmt.Sprintf("127.0.1.%d:7443", i),
		HTTPAddr: fmt.Sprintf("127.0.1.%d:8443", i),
		SMTPAddr: fmt.Sprintf("[fd00::%d]:25", i),
		Health:   Health{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: true},
	}
}

// startNode starts a node on 127.0.0.1:0 with a lossy transport and a fake
// rejoin clock, running until the test ends.
func startNode(t testing.TB, name string, seeds []string, mods ...func(*Options)) *testNode {
	t.Helper()
	n := &testNode{name: name, clock: newFakeClock(), done: make(chan error, 1)}
	opts := Options{
		NodeName:          name,
		BindAddr:          "127.0.0.1:0",
		Seeds:             seeds,
		Key:               testKey,
		RequireEncryption: true,
		Meta:              sensorMeta(1),
		Clock:             n.clock,
		Logger:            testLogger(t),
		WrapTransport: func(tr memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			n.lt = NewLossyTransport(tr, seedOf(name))
			return n.lt
		},
	}
	for _, m := range mods {
		m(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	n.c = c
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop leaves gracefully and waits for Run to return.
func (n *testNode) stop() {
	n.cancel()
	<-n.done
	n.done <- nil // later stops return at once
}

func (n *testNode) addr() string { return n.c.Addr().String() }

// waitFor waits until cond holds for c's members, without polling: it
// re-checks on every change of the view, for at most testwait.Timeout.
func waitFor(t testing.TB, c *Cluster, what string, cond func([]Member) bool) {
	t.Helper()
	ch, cancel := c.Subscribe()
	defer cancel()
	timer := time.NewTimer(testwait.Timeout)
	defer timer.Stop()
	for !cond(c.Members()) {
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("%s: not within %v; members: %v", what, testwait.Timeout, c.Members())
		}
	}
}

// stateOf returns the state of the member called name, and whether it is known.
func stateOf(ms []Member, name string) (State, bool) {
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return 0, false
	}
	return ms[i].State, true
}

func allAlive(names ...string) func([]Member) bool {
	return func(ms []Member) bool {
		for _, n := range names {
			if s, ok := stateOf(ms, n); !ok || s != StateAlive {
				return false
			}
		}
		return true
	}
}

func isState(name string, want State) func([]Member) bool {
	return func(ms []Member) bool {
		s, ok := stateOf(ms, name)
		return ok && s == want
	}
}

// startCluster starts n nodes that join through the first one and waits
// until every node sees every other alive.
func startCluster(t testing.TB, n int, mods ...func(*Options)) []*testNode {
	t.Helper()
	var nodes []*testNode
	var names []string
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].addr()}
		}
		meta := func(o *Options) { o.Meta = sensorMeta(i + 1) }
		nodes = append(nodes, startNode(t, name, seeds, append([]func(*Options){meta}, mods...)...))
		names = append(names, name)
	}
	for _, nd := range nodes {
		waitFor(t, nd.c, nd.name+" sees all alive", allAlive(names...))
	}
	return nodes
}

func seedOf(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}
