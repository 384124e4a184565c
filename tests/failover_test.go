package tests

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
)

const adminPassword = "a long admin password for tests"

// testGossipKey encrypts the gossip of test clusters (base64 of 32 bytes).
const testGossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

var (
	centralAPILine  = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)
	centralGRPCLine = regexp.MustCompile(`Sensors connect:\s+(\S+)`)
)

// centralProc is an `osprey central` process.
type centralProc struct {
	*proc
	name string
	api  *api.Client
	grpc string
}

// startCentral runs `osprey central` against a shared external etcd, with the
// cluster key file and the database every node of the cluster shares.
func startCentral(t *testing.T, name string, etcd []string, keyFile, dbURL string) *centralProc {
	t.Helper()
	p := start(t, nil, "central",
		"--node-name", name,
		"--data-dir", filepath.Join(t.TempDir(), name),
		"--http-addr", "127.0.0.1:0",
		"--grpc-addr", "127.0.0.1:0",
		"--etcd-endpoints", strings.Join(etcd, ","),
		"--cluster-key-file", keyFile,
		"--db-url", dbURL,
		"--gossip-addr", "127.0.0.1:0",
		"--dns-addr", "127.0.0.1:0",
		"--gossip-key", testGossipKey,
		"--bootstrap-admin-password", adminPassword,
		"--log-format", "text")
	base := p.waitLine(t, centralAPILine)[1]
	grpcAddr := p.waitLine(t, centralGRPCLine)[1]
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: adminPassword,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	return &centralProc{proc: p, name: name, api: c, grpc: grpcAddr}
}

// kill ends the process with SIGKILL: no graceful leave, no lease revoke.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// waitSensor polls the API until ok accepts the sensor's view, and returns
// that view.
func waitSensor(t *testing.T, c *api.Client, id string, what string, ok func(*api.Sensor) bool) *api.Sensor {
	t.Helper()
	var s *api.Sensor
	testwait.For(t, fmt.Sprintf("sensor %s: %s", id, what), func() bool {
		var err error
		s, err = c.Sensor(t.Context(), id)
		return err == nil && ok(s)
	})
	return s
}

var enrolledLine = regexp.MustCompile(`Enrolled as sensor (\S+) in tenant (\S+)\.`)

// TestSensorFailsOverBetweenCentrals: two central nodes share one etcd; a
// sensor enrolls, is approved, receives its configuration and acknowledges
// it; the node holding its stream is killed (-9); the sensor reconnects to the
// other node, which shows it online. Then: a configuration changed while the
// sensor is down and etcd compacted reaches it as a fresh snapshot; and a
// revoked sensor is cut off.
func TestSensorFailsOverBetweenCentrals(t *testing.T) {
	etcd := etcdtest.Start(t)
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	if _, err := pki.LoadOrCreateKEK(keyFile); err != nil {
		t.Fatal(err)
	}
	db := pgtest.DB(t)
	a := startCentral(t, "a", etcd.Endpoints(), keyFile, db)
	b := startCentral(t, "b", etcd.Endpoints(), keyFile, db)
	ctx := t.Context()

	tok, err := a.api.CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	sensorDir := filepath.Join(t.TempDir(), "sensor")
	sensorArgs := []string{"sensor", "--central", a.grpc + "," + b.grpc, "--data-dir", sensorDir, "--name", "branch-1", "--log-format", "text"}
	s := start(t, nil, append(sensorArgs, "--join-token", tok.Secret)...)
	id := s.waitLine(t, enrolledLine)[1]

	pending := waitSensor(t, b.api, id, "listed as pending", func(v *api.Sensor) bool { return v.State == api.SensorPending })
	if pending.CertFingerprint == "" || !strings.Contains(s.stdout.String(), pending.CertFingerprint) {
		t.Errorf("the sensor printed no fingerprint matching the server list's %q", pending.CertFingerprint)
	}
	if _, err := b.api.ApproveSensor(ctx, id); err != nil {
		t.Fatal(err)
	}
	smtp := &api.SMTPIntegration{Enabled: false, Listen: "127.0.0.1:2525", DestinationDomains: []string{"example.com"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
	_, v1, err := b.api.PutSMTP(ctx, id, smtp, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := waitSensor(t, a.api, id, fmt.Sprintf("online with version %d applied", v1), func(v *api.Sensor) bool {
		return v.Online && v.AppliedVersion == v1
	})
	holder, other := a, b
	if first.Node == "b" {
		holder, other = b, a
	}

	// Kill the node holding the stream: the sensor moves to the other one.
	holder.kill(t)
	moved := waitSensor(t, other.api, id, "online on the surviving node", func(v *api.Sensor) bool {
		return v.Online && v.Node == other.name
	})
	if moved.AppliedVersion != v1 || moved.LastError != "" {
		t.Errorf("after failover: applied %d, last error %q; want %d and none", moved.AppliedVersion, moved.LastError, v1)
	}

	// The sensor goes down; configuration changes twice and etcd compacts
	// its history; the sensor comes back to a fresh snapshot.
	s.interrupt(t)
	waitSensor(t, other.api, id, "offline", func(v *api.Sensor) bool { return !v.Online })
	smtp.DestinationDomains = []string{"example.org"}
	if _, _, err := other.api.PutSMTP(ctx, id, smtp, 0); err != nil {
		t.Fatal(err)
	}
	smtp.DestinationDomains = []string{"example.net"}
	_, v3, err := other.api.PutSMTP(ctx, id, smtp, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli := etcd.Client()
	resp, err := cli.Get(ctx, "compact")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	s = start(t, nil, sensorArgs...)
	waitSensor(t, other.api, id, fmt.Sprintf("back with version %d", v3), func(v *api.Sensor) bool {
		return v.Online && v.AppliedVersion == v3
	})
	if strings.Contains(s.stdout.String(), "Enrolling") {
		t.Error("the restarted sensor enrolled again")
	}

	// Revocation cuts the stream at once.
	if _, err := other.api.RevokeSensor(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitSensor(t, other.api, id, "offline after revocation", func(v *api.Sensor) bool { return !v.Online && v.State == api.SensorRevoked })
	if _, err := os.Stat(filepath.Join(sensorDir, "identity", "sensor.json")); err != nil {
		t.Errorf("the sensor's identity: %v", err)
	}
}
