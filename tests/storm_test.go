package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/sensorsim"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var grpcLine = regexp.MustCompile(`Sensors connect:\s+(\S+)`)

// Storm sizes and bounds: the acceptance test that found the defect used
// 1,000 sensors and dropped 990 of them at once.
const (
	stormSensors = 1000
	stormStay    = 10
	stormBack    = 10
	// stormPush bounds how long a change may take to reach the sensors
	// after the storm; without it, a wedged push shows as a timeout.
	stormPush = time.Second
	// stormStop bounds how long the node may take to stop after SIGTERM.
	stormStop = 10 * time.Second
)

// TestConfigPushSurvivesDisconnectStorm connects 1,000 simulated sensors to
// one `osprey central` process, drops 990 of them at once (a branch network
// going down), and checks that a tenant-wide change still reaches the ones
// that stayed and the ones that come back, each within a second, and that
// the node stops within 10 s of SIGTERM. The node's etcd client once
// deadlocked under such a storm of watch cancellations, which wedged every
// configuration push and the node's shutdown.
func TestConfigPushSurvivesDisconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 1,000 gRPC streams")
	}
	dataDir := t.TempDir()
	p := start(t, nil, "central", "--node-name", "storm", "--data-dir", dataDir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--gossip-key", testGossipKey,
		"--bootstrap-admin-password", adminPassword, "--log-level", "warn")
	apiURL := p.waitLine(t, apiLine)[1]
	grpcAddr := p.waitLine(t, grpcLine)[1]
	etcdURL := p.waitLine(t, etcdLine)[1]

	ctx := t.Context()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st := store.New(cli)
	kek, err := pki.LoadOrCreateKEK(filepath.Join(dataDir, "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := clusterca.Load(ctx, st, kek)
	if err != nil {
		t.Fatal(err)
	}
	const tenant = "storm"
	if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: tenant, Name: "Storm"}); err != nil {
		t.Fatal(err)
	}
	fleet, err := sensorsim.NewFleet(ctx, st, ca, tenant, "s", stormSensors)
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	if err := fleet.Connect(ctx, grpcAddr); err != nil {
		t.Fatal(err)
	}
	waitNewer(t, "the first configuration", fleet.Sensors, nil, 2*time.Minute)

	basic, err := api.NewClient(api.Config{Address: apiURL, Username: "admin", Password: adminPassword,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := basic.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "storm test"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(api.Config{Address: apiURL, Token: tok.Secret, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}

	stay := fleet.Sensors[:stormStay]
	gone := fleet.Sensors[stormStay:]
	back := gone[:stormBack]
	// The storm: every other sensor's connection drops at the same moment.
	drop := make(chan struct{})
	dropped := make(chan struct{}, len(gone))
	for _, s := range gone {
		go func() {
			<-drop
			s.Close()
			dropped <- struct{}{}
		}()
	}
	close(drop)
	for range gone {
		<-dropped
	}
	waitOnline(t, c, tenant, stormStay)

	change := func(n int) {
		t.Helper()
		_, err := c.ApplySMTP(ctx, tenant, &api.SMTPIntegration{Listen: "0.0.0.0:25",
			DestinationDomains: []string{"storm" + string(rune('a'+n)) + ".example.com"},
			MaxMessageSize:     &api.SizeLimit{Value: 10, Unit: api.MB}})
		if err != nil {
			t.Fatalf("change %d: %v", n, err)
		}
	}
	before := sensorsim.Versions(stay)
	change(1)
	waitNewer(t, "the change after the storm, on the sensors that stayed", stay, before, stormPush)

	// Sensors that come back get the configuration as it is now, then
	// every later change.
	before = sensorsim.Versions(back)
	for _, s := range back {
		if err := s.Connect(ctx, grpcAddr); err != nil {
			t.Fatal(err)
		}
	}
	waitNewer(t, "the snapshot after reconnecting", back, before, 30*time.Second)
	live := append(append([]*sensorsim.Sensor(nil), stay...), back...)
	before = sensorsim.Versions(live)
	change(2)
	waitNewer(t, "the next change, on the sensors that stayed and came back", live, before, stormPush)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(stormStop):
		p.cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump on stderr, logged below
		<-p.done
		t.Fatalf("still running %s after SIGTERM", stormStop)
	}
}

// waitNewer fails t unless every sensor acknowledges a version newer than
// before within d.
func waitNewer(t *testing.T, what string, sensors []*sensorsim.Sensor, before []int64, d time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if err := sensorsim.WaitNewer(ctx, sensors, before); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %d sensors in %s", what, len(sensors), time.Since(start).Round(time.Millisecond))
}

// waitOnline waits until the node shows exactly n sensors of tenant online.
func waitOnline(t *testing.T, c *api.Client, tenant string, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("exactly %d sensors of %s online", n, tenant), func() bool {
		l, err := c.Sensors(t.Context())
		if err != nil {
			return false
		}
		got := 0
		for _, s := range l {
			if s.Tenant == tenant && s.Online {
				got++
			}
		}
		return got == n
	})
}
