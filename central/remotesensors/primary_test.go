package remotesensors

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestCallBounds checks that a call to an SCN never hangs: an SCN whose
// link is down is not asked (ErrOffline), one that does not answer fails
// after the bound (ErrNoAnswer), and one in no scope of the caller is not
// found.
func TestCallBounds(t *testing.T) {
	ctx := t.Context()
	cli := etcdtest.Client(t)
	st := store.New(cli)
	if _, err := st.CreateServer(ctx, &ospreyv1.Server{Id: "branch-1", Name: "branch-1", Tenant: "a", State: ospreyv1.ServerState_SERVER_STATE_ACCEPTED}); err != nil {
		t.Fatal(err)
	}
	p := NewPrimary(PrimaryOptions{Client: cli, Store: st, Timeout: 300 * time.Millisecond})
	call := &ospreyv1.RemoteSensorCall{Sensor: "s1", Document: "smtp"}

	if _, err := p.Call(ctx, store.AllTenants(), "branch-1", call); !errors.Is(err, ErrOffline) {
		t.Errorf("call with the link down: got %v, want ErrOffline", err)
	}
	if _, err := p.Call(ctx, store.TenantScope("b"), "branch-1", call); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("call out of the caller's scope: got %v, want not found", err)
	}
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutServerLink(ctx, lease.ID, &ospreyv1.ServerLink{ServerId: "branch-1", Online: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Call(ctx, store.AllTenants(), "branch-1", call); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("call no node answers: got %v, want ErrNoAnswer", err)
	}
	if resp, err := cli.Get(ctx, store.ServerRequestKey("branch-1", ""), clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("after the call: requests left (%v); want none", err)
	}
}
