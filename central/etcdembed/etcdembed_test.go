package etcdembed

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseInitialCluster(t *testing.T) {
	got, err := ParseInitialCluster("n1=http://10.0.0.1:2380, n2=http://10.0.0.2:2380,n2=http://[fd00::2]:2380")
	if err != nil {
		t.Fatal(err)
	}
	flat := map[string][]string{}
	for name, urls := range got {
		for _, u := range urls {
			flat[name] = append(flat[name], u.String())
		}
	}
	want := map[string][]string{"n1": {"http://10.0.0.1:2380"}, "n2": {"http://10.0.0.2:2380", "http://[fd00::2]:2380"}}
	if diff := cmp.Diff(want, flat); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, wantErr := range map[string]string{
		"":                         "empty",
		"n1":                       "want name=http://host:port",
		"n1=https://10.0.0.1:2380": "peer TLS is not supported yet",
		"n1=http://10.0.0.1":       "want name=http://host:port",
		"n1=http://0.0.0.0:2380":   "not 0.0.0.0",
		"=http://10.0.0.1:2380":    "want name=http://host:port",
	} {
		if _, err := ParseInitialCluster(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseInitialCluster(%q): got %v, want an error containing %q", in, err, wantErr)
		}
	}
	if _, err := MemberPeerURLs("n1=http://10.0.0.1:2380", "n2"); err == nil || !strings.Contains(err.Error(), `"n2"`) {
		t.Errorf("MemberPeerURLs without this member: got %v", err)
	}
}

// freeAddr returns a loopback address nobody listens on now: a member's peer
// URL must be known before it starts, to add it to the cluster.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestAddAndRemoveMember grows a one-member cluster to two the way the
// operations guide says (etcdctl member add, then start the new member with
// the initial cluster and state "existing"), checks that both serve the same
// data, then removes the new member again.
func TestAddAndRemoveMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	peer1, peer2 := freeAddr(t), freeAddr(t)
	m1, err := Start(ctx, Options{Name: "m1", Dir: filepath.Join(dir, "m1"), ClientAddr: "127.0.0.1:0", PeerAddr: peer1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if _, err := m1.Client().Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}

	added, err := m1.Client().MemberAdd(ctx, []string{"http://" + peer2})
	if err != nil {
		t.Fatal(err)
	}
	var initial []string
	for _, m := range added.Members {
		name := m.Name
		if m.ID == added.Member.ID {
			name = "m2"
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	m2, err := Start(ctx, Options{Name: "m2", Dir: filepath.Join(dir, "m2"), ClientAddr: "127.0.0.1:0", PeerAddr: peer2,
		InitialCluster: strings.Join(initial, ","), ClusterState: "existing", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			m2.Close()
		}
	}()
	if _, err := m1.Client().Put(ctx, "after", "2"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"before", "after"} {
		resp, err := m2.Client().Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("read %s on the new member: %v, %v", key, resp, err)
		}
	}
	list, err := m2.Client().MemberList(ctx)
	if err != nil || len(list.Members) != 2 {
		t.Fatalf("members: %v, %v; want 2", list, err)
	}

	// etcd refuses to remove a member until the remaining ones have been
	// connected for 5 s (its strict reconfiguration check): retry.
	for {
		_, err := m1.Client().MemberRemove(ctx, added.Member.ID)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	m2.Close()
	closed = true
	// One member is the whole quorum again: writes go through.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := m1.Client().Put(wctx, "alone", "3"); err != nil {
		t.Fatalf("write after removing the member: %v", err)
	}
	list, err = m1.Client().MemberList(ctx)
	if err != nil || len(list.Members) != 1 {
		t.Fatalf("members after remove: %v, %v; want 1", list, err)
	}
}
