package central_test

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func() error { return goleak.Find() }))
}

// testGossipKey encrypts the gossip of the test nodes outside dev.
const testGossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// node is a Central Node started in-process through central.Run.
type node struct {
	ready central.Ready
	stop  func() error
}

func startNode(t *testing.T, opts central.Options) *node {
	t.Helper()
	ln, err := net.Listen("tcp", cmp.Or(opts.HTTP.Addr, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	opts.HTTP.Listener = ln
	if opts.NodeName == "" {
		opts.NodeName = "n1"
	}
	if opts.GRPC.Addr == "" {
		opts.GRPC.Addr = "127.0.0.1:0"
	}
	if opts.Etcd.ClientAddr == "" {
		opts.Etcd.ClientAddr, opts.Etcd.PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	if opts.Gossip.Addr == "" {
		opts.Gossip.Addr, opts.DNS.Addr = "127.0.0.1:0", "127.0.0.1:0"
	}
	if !opts.Dev && opts.Gossip.Key == "" {
		opts.Gossip.Key = testGossipKey
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	readyc := make(chan central.Ready, 1)
	opts.OnReady = func(r central.Ready) { readyc <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- central.Run(ctx, opts) }()
	n := &node{stop: func() error {
		cancel()
		return <-done
	}}
	select {
	case n.ready = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("node stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("node not ready after 60s")
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			n.stop()
		}
	})
	orig := n.stop
	n.stop = func() error { stopped = true; return orig() }
	return n
}

func (n *node) client(t *testing.T, password string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.Config{
		Address: n.ready.HTTPURL, Username: n.ready.AdminUser, Password: password,
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDevNodeKeepsItsDataAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	opts := central.Options{DataDir: dir, Dev: true, NodeName: "dev", HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}}
	n := startNode(t, opts)
	if n.ready.AdminPassword == "" || n.ready.LocalSensorID != "dev" {
		t.Fatalf("first start: ready %+v, want a generated admin password and the local sensor", n.ready)
	}
	password := n.ready.AdminPassword
	c := n.client(t, password)
	cfg := &api.SMTPIntegration{Enabled: true, Listen: "127.0.0.1:2525", DestinationDomains: []string{"example.com"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
	_, version, err := c.PutSMTP(t.Context(), "dev", cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	n2 := startNode(t, opts)
	if n2.ready.AdminPassword != password {
		t.Errorf("second start: dev shows password %q, want the one generated at first start", n2.ready.AdminPassword)
	}
	got, gotVersion, err := n2.client(t, password).SMTP(t.Context(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if gotVersion != version || got.Listen != cfg.Listen {
		t.Errorf("after restart: listen %q version %d, want %q version %d", got.Listen, gotVersion, cfg.Listen, version)
	}
	if err := n2.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestLocalSensorEnrollsAgain: a node makes its own sensor a join token
// while the sensor's record names no certificate and, once it names one,
// only when the sensor has lost its identity (a data dir restored from
// another node's backup), so that it enrolls into its record again.
func TestLocalSensorEnrollsAgain(t *testing.T) {
	opts := central.Options{DataDir: t.TempDir(), Dev: true, NodeName: "dev", HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}}
	n := startNode(t, opts)
	if n.ready.LocalSensorJoinToken == "" {
		t.Fatal("first start: no join token for the own sensor, which never enrolled")
	}
	// The sensor enrolled: its record names its certificate.
	st := store.New(n.ready.Etcd)
	sn, v, err := st.GetSensor(t.Context(), store.AllTenants(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	sn.CertFingerprint = strings.Repeat("ab", 32)
	if _, err := st.UpdateSensor(t.Context(), store.AllTenants(), sn, v); err != nil {
		t.Fatal(err)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for _, unenrolled := range []bool{false, true} {
		opts.LocalSensor.Unenrolled = unenrolled
		n := startNode(t, opts)
		if got := n.ready.LocalSensorJoinToken != ""; got != unenrolled {
			t.Errorf("restart with LocalSensorUnenrolled %v: join token made %v, want %v", unenrolled, got, unenrolled)
		}
		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBootstrapPasswordAndReadiness(t *testing.T) {
	n := startNode(t, central.Options{DataDir: t.TempDir(), Dev: true, BootstrapAdminPassword: "a long bootstrap password",
		HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}})
	if n.ready.AdminPassword != "" {
		t.Errorf("ready shows the bootstrap password; it must never be printed")
	}
	resp, err := http.Get(n.ready.HTTPURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("readyz: got %d, want 200", resp.StatusCode)
	}
	if _, err := n.client(t, "a long bootstrap password").Sensors(t.Context()); err != nil {
		t.Errorf("sign in with the bootstrap password: %v", err)
	}
	var apiErr *api.Error
	if _, err := n.client(t, "wrong").Sensors(t.Context()); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: got %v, want 401", err)
	}
}

// TestCentralWithExternalEtcd runs a second node against the first node's etcd,
// as `osprey central --etcd-endpoints` does: both serve the same configuration,
// over HTTPS with the node's self-signed certificate.
func TestCentralWithExternalEtcd(t *testing.T) {
	dir, db := t.TempDir(), pgtest.DB(t)
	first := startNode(t, central.Options{DataDir: dir, NodeName: "n1", BootstrapAdminPassword: "a long bootstrap password",
		HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}, DB: central.DBOptions{URL: db}})
	second := startNode(t, central.Options{DataDir: t.TempDir(), NodeName: "n2", ClusterKeyFile: filepath.Join(dir, "cluster.key"),
		HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}, DB: central.DBOptions{URL: db}, Etcd: central.EtcdOptions{Endpoints: first.ready.EtcdEndpoints}})
	if first.ready.CAHash == "" || second.ready.CAHash != first.ready.CAHash {
		t.Errorf("CA hashes %q and %q: want one cluster CA", first.ready.CAHash, second.ready.CAHash)
	}
	if second.ready.AdminPassword != "" {
		t.Errorf("the second node generated an admin password; the cluster already had one")
	}
	if got := second.ready.HTTPURL[:8]; got != "https://" {
		t.Errorf("central (not dev) serves %s, want https", second.ready.HTTPURL)
	}
	c1, c2 := first.client(t, "a long bootstrap password"), second.client(t, "a long bootstrap password")
	if _, err := c1.CreateTenant(t.Context(), api.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	ts, err := c2.Tenants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range ts {
		ids = append(ids, tn.ID)
	}
	if len(ids) != 2 {
		t.Errorf("tenants seen through the second node: got %v, want default and acme", ids)
	}
}

func TestInvalidOptionsAreRefusedTogether(t *testing.T) {
	err := central.Run(t.Context(), central.Options{NodeName: "Bad Name", HTTP: central.HTTPOptions{Addr: "nope", TLSCert: "x"},
		SensorCerts: sensorsvc.CertLifetime{Validity: time.Minute, RenewFrom: 80, RenewUntil: 70}})
	if err == nil {
		t.Fatal("got nil, want errors")
	}
	for _, want := range []string{"--data-dir", "--node-name", "--http-addr", "--http-tls-cert",
		"--sensor-cert-validity: 1m0s is too short", "--sensor-cert-renew-from 80 is after --sensor-cert-renew-until 70"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
