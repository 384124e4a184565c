package election_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ospreysec/osprey/central/election"
	"github.com/ospreysec/osprey/internal/etcdtest"
)

// TestTermHandsOverWhenTheLeaderStops runs two nodes' terms: one leads, the
// other waits; when the leader stops it resigns, and the other leads at
// once rather than after the session's TTL (an hour here).
func TestTermHandsOverWhenTheLeaderStops(t *testing.T) {
	cli := etcdtest.Client(t)
	const prefix = "/test/election/"
	leading := make(chan string, 2)
	run := func(ctx context.Context, name string) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- election.Term(ctx, cli, prefix, name, 3600, func(ctx context.Context, _ *concurrency.Election, lease clientv3.LeaseID) {
				if lease == 0 {
					t.Errorf("%s leads without a lease", name)
				}
				leading <- name
				<-ctx.Done()
			})
		}()
		return done
	}
	ctxA, stopA := context.WithCancel(t.Context())
	doneA := run(ctxA, "a")
	if got := <-leading; got != "a" {
		t.Fatalf("%s leads first, want a", got)
	}
	ctxB, stopB := context.WithCancel(t.Context())
	defer stopB()
	doneB := run(ctxB, "b")
	select {
	case got := <-leading:
		t.Fatalf("%s leads while a does", got)
	case <-time.After(500 * time.Millisecond):
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("a's term after it stopped: %v, want nil", err)
	}
	select {
	case got := <-leading:
		if got != "b" {
			t.Fatalf("%s leads after a stopped, want b", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b does not lead 30 s after a stopped: a did not resign")
	}
	stopB()
	if err := <-doneB; err != nil {
		t.Errorf("b's term after it stopped: %v, want nil", err)
	}
}
