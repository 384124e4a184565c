package etcdembed

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
)

// testPeerCA derives a peer CA from a key made of seed's byte.
func testPeerCA(t *testing.T, seed byte) *pki.CA {
	t.Helper()
	ca, err := pki.DeriveCA(bytes.Repeat([]byte{seed}, pki.KEKSize), "etcd peers", "test peer CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestPeerTLS checks who may talk to a member's peer port: not a client
// without a certificate, nor one whose certificate comes from the CA of
// another cluster key, and a member with that other CA cannot join.
func TestPeerTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	peer1, peer2 := freeAddr(t), freeAddr(t)
	initial := "m1=https://" + peer1 + ",m2=https://" + peer2
	m1, err := Start(ctx, Options{Name: "m1", Dir: filepath.Join(dir, "m1"), ClientAddr: "127.0.0.1:0", PeerAddr: peer1,
		Logger: slog.New(slog.DiscardHandler), PeerTLS: &PeerTLS{CA: testPeerCA(t, 1), Dir: filepath.Join(dir, "m1-tls")}})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if got := m1.PeerURLs(); len(got) != 1 || !strings.HasPrefix(got[0], "https://") {
		t.Errorf("peer URLs %v, want one https URL", got)
	}

	// Without a client certificate, or with one from another CA, the
	// handshake fails.
	other := testPeerCA(t, 2)
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := other.SignPeer(key.Public(), []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another cluster's": {foreign}} {
		conn, err := tls.Dial("tcp", peer1, &tls.Config{InsecureSkipVerify: true, Certificates: certs})
		if err == nil {
			// TLS 1.3 reports a refused client certificate at the first read.
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: the peer port accepted the connection (%v)", name, err)
		}
	}

	// A member with another cluster's CA never joins, though the cluster
	// expects it.
	if _, err := m1.Client().MemberAdd(ctx, []string{"https://" + peer2}); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	m2, err := Start(sctx, Options{Name: "m2", Dir: filepath.Join(dir, "m2"), ClientAddr: "127.0.0.1:0", PeerAddr: peer2,
		InitialCluster: initial, ClusterState: "existing", Logger: slog.New(slog.DiscardHandler),
		PeerTLS: &PeerTLS{CA: other, Dir: filepath.Join(dir, "m2-tls")}})
	if err == nil {
		m2.Close()
		t.Fatal("a member with another cluster's peer CA joined")
	}
	t.Logf("the member with another CA: %v", err)

	// A plaintext peer URL is refused up front.
	if _, err := Start(ctx, Options{Name: "m3", Dir: filepath.Join(dir, "m3"), InitialCluster: "m3=http://" + freeAddr(t),
		PeerTLS: &PeerTLS{CA: other, Dir: filepath.Join(dir, "m3-tls")}}); err == nil || !strings.Contains(err.Error(), "must be https://") {
		t.Errorf("http peer URL with peer TLS: got %v", err)
	}
}

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
		"":                        "empty",
		"n1":                      "want name=https://host:port",
		"n1=ftp://10.0.0.1:2380":  "want name=https://host:port",
		"n1=https://10.0.0.1":     "want name=https://host:port",
		"n1=https://0.0.0.0:2380": "not 0.0.0.0",
		"=https://10.0.0.1:2380":  "want name=https://host:port",
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
// data, then removes the new member again. The members talk mutual TLS.
func TestAddAndRemoveMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	peer1, peer2 := freeAddr(t), freeAddr(t)
	ca := testPeerCA(t, 1)
	m1, err := Start(ctx, Options{Name: "m1", Dir: filepath.Join(dir, "m1"), ClientAddr: "127.0.0.1:0", PeerAddr: peer1, Logger: slog.New(slog.DiscardHandler),
		PeerTLS: &PeerTLS{CA: ca, Dir: filepath.Join(dir, "m1-tls")}})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if _, err := m1.Client().Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}

	added, err := m1.Client().MemberAdd(ctx, []string{"https://" + peer2})
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
		InitialCluster: strings.Join(initial, ","), ClusterState: "existing", Logger: slog.New(slog.DiscardHandler),
		PeerTLS: &PeerTLS{CA: ca, Dir: filepath.Join(dir, "m2-tls")}})
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
	testwait.For(t, "etcd to remove the member", func() bool {
		_, err := m1.Client().MemberRemove(ctx, added.Member.ID)
		if err != nil && (!strings.Contains(err.Error(), "unhealthy cluster") || ctx.Err() != nil) {
			t.Fatal(err)
		}
		return err == nil
	})
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

// TestWatchCancellationStorm opens a thousand watches through the member's
// client, as a node does with one per sensor stream, cancels 990 of them at
// once, and checks that a write still reaches the other watches and a new
// one, and that the member closes promptly. etcd's in-process client
// deadlocked in exactly this storm, wedging every watch of the node and its
// shutdown.
func TestWatchCancellationStorm(t *testing.T) {
	srv, err := Start(t.Context(), Options{Name: "storm", Dir: filepath.Join(t.TempDir(), "etcd"),
		ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	cli := srv.Client()
	const n, keep = 1000, 10
	type watch struct {
		ch     clientv3.WatchChan
		cancel context.CancelFunc
	}
	watches := make([]watch, n)
	for i := range watches {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(t.Context()))
		key := fmt.Sprintf("storm/%04d", i)
		watches[i] = watch{cli.Watch(ctx, key, clientv3.WithCreatedNotify()), cancel}
		if wr := <-watches[i].ch; !wr.Created {
			t.Fatalf("watch %d: first response %+v, want created", i, wr)
		}
	}
	for _, w := range watches[keep:] {
		go w.cancel()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	fresh := cli.Watch(clientv3.WithRequireLeader(ctx), "storm/fresh")
	for i := range keep {
		if _, err := cli.Put(ctx, fmt.Sprintf("storm/%04d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "storm/fresh", "v"); err != nil {
		t.Fatal(err)
	}
	for i, w := range append(watches[:keep:keep], watch{ch: fresh}) {
		select {
		case wr := <-w.ch:
			if err := wr.Err(); err != nil || len(wr.Events) != 1 {
				t.Errorf("watch %d after the storm: %d events, err %v; want the write", i, len(wr.Events), err)
			}
		case <-ctx.Done():
			t.Fatalf("watch %d after the storm: no event: the client is wedged", i)
		}
	}
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
		closed = true
	case <-time.After(10 * time.Second):
		t.Fatal("the member did not close within 10s of the storm")
	}
}
