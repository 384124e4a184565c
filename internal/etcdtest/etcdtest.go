// Package etcdtest starts a real embedded etcd member for tests: one helper, so
// every package's tests run against the same kind of store the product runs on.
package etcdtest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/central/etcdembed"
)

// Start runs a single-member etcd on loopback ports chosen by the kernel, in a
// directory of t's, and stops it when the test ends.
func Start(t testing.TB) *etcdembed.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, etcdembed.Options{
		Name:       "test",
		Dir:        filepath.Join(t.TempDir(), "etcd"),
		ClientAddr: "127.0.0.1:0",
		PeerAddr:   "127.0.0.1:0",
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// Client starts an etcd member and returns a network client of it (a real
// gRPC connection over loopback, as a second node or a sensor would see).
func Client(t testing.TB) *clientv3.Client {
	t.Helper()
	srv := Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
