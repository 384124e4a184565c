package gossip

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func names(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestClusterFormsAndShares(t *testing.T) {
	nodes := startCluster(t, 3)

	// Every node sees every other's metadata, addresses and health.
	for _, nd := range nodes {
		ms := nd.c.Members()
		if got, want := names(ms), []string{"node-1", "node-2", "node-3"}; !slices.Equal(got, want) {
			t.Fatalf("%s: members %v, want %v", nd.name, got, want)
		}
		for i, m := range ms {
			if diff := cmp.Diff(sensorMeta(i+1), m.Meta); diff != "" {
				t.Errorf("%s sees %s meta (-want +got):\n%s", nd.name, m.Name, diff)
			}
			if m.Addr != nodes[i].c.Addr() {
				t.Errorf("%s sees %s at %v, want %v", nd.name, m.Name, m.Addr, nodes[i].c.Addr())
			}
		}
		if got := names(nd.c.Healthy(RoleSensor)); len(got) != 3 {
			t.Errorf("%s: Healthy(sensor) = %v, want all three", nd.name, got)
		}
	}

	// A health change reaches the others.
	start := time.Now()
	if err := nodes[1].c.SetHealth(t.Context(), Health{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: false}); err != nil {
		t.Fatalf("SetHealth: %v", err)
	}
	for _, nd := range nodes {
		waitFor(t, nd.c, nd.name+" sees node-2's spool full", func(ms []Member) bool {
			i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == "node-2" })
			return i >= 0 && !ms[i].Meta.Health.Spool
		})
		if got, want := names(nd.c.Healthy(RoleSensor)), []string{"node-1", "node-3"}; !slices.Equal(got, want) {
			t.Errorf("%s: Healthy(sensor) = %v, want %v", nd.name, got, want)
		}
		if got := names(nd.c.Healthy(RoleCentral)); len(got) != 3 {
			t.Errorf("%s: Healthy(central) = %v, want all three", nd.name, got)
		}
	}
	t.Logf("health change seen everywhere after %v", time.Since(start))

	// New metadata replaces the old one.
	m := sensorMeta(9)
	m.Roles = []Role{RoleCentral}
	if err := nodes[2].c.SetMeta(t.Context(), m); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	waitFor(t, nodes[0].c, "node-1 sees node-3's new meta", func(ms []Member) bool {
		i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == "node-3" })
		return i >= 0 && cmp.Equal(ms[i].Meta, m)
	})
	if got, want := names(nodes[0].c.Healthy(RoleSensor)), []string{"node-1"}; !slices.Equal(got, want) {
		t.Errorf("Healthy(sensor) = %v, want %v", got, want)
	}
	if diff := cmp.Diff(m, nodes[2].c.Meta()); diff != "" {
		t.Errorf("Meta() (-want +got):\n%s", diff)
	}
}

func TestKilledNodeDeclaredDead(t *testing.T) {
	nodes := startCluster(t, 3)

	start := time.Now()
	if err := nodes[2].c.Close(); err != nil { // no leave: a crash
		t.Fatal(err)
	}
	for _, nd := range nodes[:2] {
		waitFor(t, nd.c, nd.name+" sees node-3 dead", isState("node-3", StateDead))
		t.Logf("%s declared the killed node-3 dead after %v", nd.name, time.Since(start))
		if got := names(nd.c.Healthy(RoleSensor)); slices.Contains(got, "node-3") {
			t.Errorf("%s: Healthy(sensor) = %v still has node-3", nd.name, got)
		}
	}
}

func TestGracefulLeave(t *testing.T) {
	nodes := startCluster(t, 3)
	start := time.Now()
	nodes[2].stop()
	left := time.Since(start)
	for _, nd := range nodes[:2] {
		waitFor(t, nd.c, nd.name+" sees node-3 left", isState("node-3", StateLeft))
	}
	t.Logf("Run returned after leaving in %v; the others saw it left after %v", left, time.Since(start))
	if got, want := names(nodes[0].c.Healthy(RoleCentral)), []string{"node-1", "node-2"}; !slices.Equal(got, want) {
		t.Errorf("Healthy(central) = %v, want %v", got, want)
	}
}

func TestForeignKeyRefused(t *testing.T) {
	nodes := startCluster(t, 2)
	seed := nodes[0].addr()
	other := EncodeKey([]byte("fedcba9876543210fedcba9876543210"))

	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"wrong key", func(o *Options) { o.Key = other }},
		{"no key", func(o *Options) { o.Key, o.RequireEncryption = "", false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{NodeName: "intruder", BindAddr: "127.0.0.1:0", Key: testKey, Logger: testLogger(t)}
			tt.mod(&opts)
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if n, err := c.ml.Join([]string{seed}); err == nil {
				t.Errorf("Join with %s: joined %d nodes, want an error", tt.name, n)
			}
			for _, nd := range nodes {
				if _, ok := stateOf(nd.c.Members(), "intruder"); ok {
					t.Errorf("%s knows the intruder", nd.name)
				}
			}
			if got := names(c.Members()); !slices.Equal(got, []string{"intruder"}) {
				t.Errorf("intruder's members = %v, want only itself", got)
			}
		})
	}
}

func TestRejoinAfterPartition(t *testing.T) {
	// Gossip to the dead off, so only the rejoin loop can heal the split.
	noDeadGossip := func(o *Options) {
		o.Configure = func(c *memberlist.Config) { c.GossipToTheDeadTime = 0 }
	}
	nodes := startCluster(t, 3, noDeadGossip)
	a, c := nodes[0], nodes[2]

	c.lt.Isolate(true)
	for _, nd := range nodes[:2] {
		waitFor(t, nd.c, nd.name+" sees node-3 dead", isState("node-3", StateDead))
	}
	waitFor(t, c.c, "node-3 sees the others dead", func(ms []Member) bool {
		return isState("node-1", StateDead)(ms) && isState("node-2", StateDead)(ms)
	})

	c.lt.Isolate(false)
	start := time.Now()
	a.clock.tick() // node-1 rejoins node-3, which it knows as dead
	for _, nd := range nodes {
		waitFor(t, nd.c, nd.name+" sees all alive after the heal", allAlive("node-1", "node-2", "node-3"))
	}
	t.Logf("partition healed %v after the rejoin tick", time.Since(start))
}

func TestRejoinFromPeerSource(t *testing.T) {
	nodes := startCluster(t, 2)
	// A node that knows nobody but has a peer source finds the cluster at
	// the first rejoin tick.
	var known atomic.Bool // the peer source knows the others only from the tick on
	peers := PeerSourceFunc(func(context.Context) ([]string, error) {
		if !known.Load() {
			return nil, nil
		}
		return []string{nodes[1].addr(), "127.0.0.1:1"}, nil
	})
	lone := startNode(t, "node-3", nil, func(o *Options) { o.Meta, o.Peers = sensorMeta(3), peers })
	known.Store(true)
	lone.clock.tick()
	for _, nd := range append(nodes, lone) {
		waitFor(t, nd.c, nd.name+" sees all alive", allAlive("node-1", "node-2", "node-3"))
	}
}

func TestLossDoesNotRemoveHealthyNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	// 10 % loss, twice the 5 % the tuning is meant for, so that some probes
	// do fail within the window and the refutations get exercised.
	var suspects, refutes atomic.Int64
	log := slog.New(countingHandler{&suspects, &refutes})
	nodes := startCluster(t, 3, func(o *Options) { o.Logger = log })
	for _, nd := range nodes {
		nd.lt.SetLoss(0.10)
	}
	// The window is the measurement, not a wait for something to happen.
	window := time.NewTimer(4 * time.Second)
	<-window.C
	for _, nd := range nodes {
		nd.lt.SetLoss(0)
	}
	t.Logf("%d suspicions, %d refutations", suspects.Load(), refutes.Load())
	for _, nd := range nodes {
		f := counterValue(t, nd.c.metrics.failures)
		t.Logf("%s: dropped %d packets and dials, saw %v failures", nd.name, nd.lt.Dropped(), f)
		if f != 0 {
			t.Errorf("%s declared a healthy node dead %v times under 10%% loss", nd.name, f)
		}
	}
}

func TestRequireEncryption(t *testing.T) {
	_, err := New(Options{NodeName: "n", BindAddr: "127.0.0.1:0", RequireEncryption: true})
	if !errors.Is(err, ErrEncryptionRequired) {
		t.Fatalf("New without a key: %v, want ErrEncryptionRequired", err)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := []byte("0123456789abcdef0123456789abcdef"), []byte("ffffffffffffffffffffffffffffffff")
	var nodes []*testNode
	for i, name := range []string{"node-1", "node-2"} {
		file := filepath.Join(dir, name+".json")
		if err := WriteKeyringFile(file, [][]byte{k1}); err != nil {
			t.Fatal(err)
		}
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].addr()}
		}
		nodes = append(nodes, startNode(t, name, seeds, func(o *Options) { o.Key, o.KeyringFile = "", file }))
	}
	for _, nd := range nodes {
		waitFor(t, nd.c, nd.name+" sees all alive", allAlive("node-1", "node-2"))
	}
	for _, step := range []func(*Cluster) error{
		func(c *Cluster) error { return c.AddKey(k2) },
		func(c *Cluster) error { return c.UseKey(k2) },
		func(c *Cluster) error { return c.RemoveKey(k1) },
	} {
		for _, nd := range nodes {
			if err := step(nd.c); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, nd := range nodes {
		keys, err := ReadKeyringFile(filepath.Join(dir, nd.name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([][]byte{k2}, keys); diff != "" {
			t.Errorf("%s keyring file (-want +got):\n%s", nd.name, diff)
		}
	}
	// A node with only the new key joins; one with only the old key cannot.
	startNode(t, "node-3", []string{nodes[0].addr()}, func(o *Options) { o.Key = EncodeKey(k2) })
	waitFor(t, nodes[1].c, "node-2 sees node-3", allAlive("node-3"))

	old, err := New(Options{NodeName: "old", BindAddr: "127.0.0.1:0", Key: EncodeKey(k1)})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.ml.Join([]string{nodes[0].addr()}); err == nil {
		t.Error("a node with the removed key joined")
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
