package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNodeList(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	if err := st.PutNode(ctx, "n1", "127.0.0.1:7946"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutNode(ctx, "n2", "[fd00::2]:7946"); err != nil {
		t.Fatal(err)
	}
	// A restart at the same address writes nothing.
	before := revision(t, cli)
	if err := st.PutNode(ctx, "n1", "127.0.0.1:7946"); err != nil {
		t.Fatal(err)
	}
	if after := revision(t, cli); after != before {
		t.Errorf("an unchanged node record made revision %d (was %d)", after, before)
	}
	if err := st.PutNode(ctx, "n1", "127.0.0.9:7946"); err != nil {
		t.Fatal(err)
	}
	got, err := st.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{{Name: "n1", GossipAddr: "127.0.0.9:7946"}, {Name: "n2", GossipAddr: "[fd00::2]:7946"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListNodes (-want +got):\n%s", diff)
	}

	for _, bad := range []struct{ name, addr string }{{"N1", "127.0.0.1:1"}, {"../x", "127.0.0.1:1"}, {"n3", "host:7946"}, {"n3", ""}} {
		if err := st.PutNode(ctx, bad.name, bad.addr); err == nil {
			t.Errorf("PutNode(%q, %q): got nil, want an error", bad.name, bad.addr)
		}
	}
}

func TestEtcdErrUnavailable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrNoLeader, true},
		{fmt.Errorf("wrapped: %w", rpctypes.ErrLeaderChanged), true},
		{status.Error(codes.Unavailable, "all endpoints down"), true},
		{rpctypes.ErrCompacted, false},
		{errors.New("other"), false},
	} {
		err := etcdErr("get", "k", tt.err)
		if got := errors.Is(err, ErrUnavailable); got != tt.want {
			t.Errorf("etcdErr(%v) is ErrUnavailable: got %v, want %v", tt.err, got, tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("etcdErr(%v) = %v: does not wrap the cause", tt.err, err)
		}
	}
}
