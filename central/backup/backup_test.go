package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// member is an embedded etcd member as a Central Node runs it: peer TLS
// with the CA derived from the cluster key.
type member struct {
	*etcdembed.Server
	stop func()
}

func startMember(t *testing.T, dataDir, name, peerAddr, initial string, key []byte) *member {
	t.Helper()
	srv, err := tryMember(t.Context(), dataDir, name, peerAddr, initial, key)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{Server: srv, stop: sync.OnceFunc(srv.Close)}
	t.Cleanup(m.stop)
	return m
}

func tryMember(ctx context.Context, dataDir, name, peerAddr, initial string, key []byte) (*etcdembed.Server, error) {
	ca, err := pki.DeriveCA(key, "etcd peers", "Osprey etcd peer CA")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return etcdembed.Start(ctx, etcdembed.Options{
		Name: name, Dir: filepath.Join(dataDir, "etcd"), ClientAddr: "127.0.0.1:0", PeerAddr: peerAddr,
		InitialCluster: initial, Logger: slog.New(slog.DiscardHandler),
		PeerTLS: &etcdembed.PeerTLS{CA: ca, Dir: filepath.Join(dataDir, "etcd-peer-tls")},
	})
}

// freeAddr returns a loopback address nobody listens on now: an etcd
// member's peer URL is written into its data at restore, before it starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newKey(t *testing.T, path string) []byte {
	t.Helper()
	key, err := pki.LoadOrCreateKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func record(tenant, msg string) *ospreyv1.MessageRecord {
	return &ospreyv1.MessageRecord{MessageId: msg, SensorId: "s1", Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "bad@evil.example", RcptTo: []string{"ceo@example.com"}}, Verdict: "detected", Node: "n1"}
}

func alert(subject string) *ospreyv1.Alert {
	return &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected",
		Headers: &ospreyv1.HeaderSummary{Subject: subject}}
}

// node is the stores of a Central Node with SQLite, without the node: its
// etcd member (with the cluster CA) and its SQL store.
type node struct {
	dataDir string
	key     []byte
	etcd    *member
	db      *sqlstore.Store
	st      *store.Store
}

func startNode(t *testing.T, dataDir string) *node {
	t.Helper()
	n := &node{dataDir: dataDir, key: newKey(t, filepath.Join(dataDir, "cluster.key"))}
	n.etcd = startMember(t, dataDir, "n1", freeAddr(t), "", n.key)
	n.st = store.New(n.etcd.Client())
	if _, err := clusterca.Load(t.Context(), n.st, n.key); err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(dataDir, "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	n.db = db
	t.Cleanup(func() { n.closeDB() })
	return n
}

func (n *node) closeDB() {
	if n.db != nil {
		n.db.Close()
		n.db = nil
	}
}

// stop stops the node's stores, as a node that shuts down.
func (n *node) stop() {
	n.closeDB()
	n.etcd.stop()
}

func (n *node) backupOptions(out string) Options {
	return Options{Out: out, DataDir: n.dataDir, Etcd: clientv3.Config{Endpoints: n.etcd.Endpoints()},
		LocalSensorDir: filepath.Join(n.dataDir, "sensor")}
}

// writeIdentity writes an own sensor's identity as the sensor keeps it.
func writeIdentity(t *testing.T, sensorDataDir string) map[string]string {
	t.Helper()
	dir := filepath.Join(sensorDataDir, "identity")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"key.pem": "KEY", "cert.pem": "CERT", "ca.pem": "CA", "sensor.json": `{"sensor_id":"n1","tenant":"default"}`}
	for name, body := range files {
		mode := os.FileMode(0o644)
		if name == "key.pem" || name == "sensor.json" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestBackupAndRestore: a backup of a node whose SQL store takes writes
// all along is consistent (every alert with its record, the alert
// numbers without a gap), readable by its owner only, and describes
// itself; the node's data dir wiped, a restore (which first wants the
// cluster key, and the right one) brings back etcd as it was at the backup,
// with a higher revision, the SQLite store and the own sensor's identity;
// a second restore refuses the data dir, and moves it aside when forced,
// but not while a node runs on it.
func TestBackupAndRestore(t *testing.T) {
	ctx := t.Context()
	dataDir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dataDir)
	if _, err := n.st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	identity := writeIdentity(t, filepath.Join(dataDir, "sensor"))
	for i := range 20 {
		if _, _, err := n.db.RecordScan(ctx, store.AllTenants(), record("acme", fmt.Sprintf("before-%d", i)), alert("before"), time.Now()); err != nil {
			t.Fatal(err)
		}
	}

	// Writers go on during the backup, as the node's uploads do.
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var a *ospreyv1.Alert
				if i%2 == 0 {
					a = alert("during")
				}
				if _, _, err := n.db.RecordScan(ctx, store.AllTenants(), record("acme", fmt.Sprintf("w%d-%d", w, i)), a, time.Now()); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		})
	}
	// Let the writers get going before the backup starts.
	testwait.For(t, "20 writes before the backup", func() bool { return written.Load() >= 20 })
	out := filepath.Join(t.TempDir(), "backups", "b1")
	m, err := Create(ctx, n.backupOptions(out))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: etcd revision %d, %d keys; tables %v; %d writes during the run", m.Etcd.Revision, m.Etcd.Keys, m.SQL.Tables, written.Load())

	// What the manifest says.
	if m.Format != Format || m.Version != Version || m.Node != "n1" || m.Etcd.Member != "n1" || m.Etcd.Revision == 0 || m.Etcd.Keys == 0 {
		t.Errorf("manifest: format %q version %d node %q member %q revision %d keys %d", m.Format, m.Version, m.Node, m.Etcd.Member, m.Etcd.Revision, m.Etcd.Keys)
	}
	if m.SQL.Dialect != DialectSQLite || m.SQL.Tables["messages"] < 20 || m.SQL.Tables["alerts"] < 20 {
		t.Errorf("manifest's SQL store: %+v, want SQLite with at least the 20 records and alerts written before", m.SQL)
	}
	if m.Key.Included || m.Key.Check != KeyCheck(n.key) {
		t.Errorf("manifest's cluster key: %+v, want not included, check %s", m.Key, KeyCheck(n.key))
	}
	if !m.Sensor.Included || m.Sensor.ID != "n1" {
		t.Errorf("manifest's own sensor: %+v, want its identity, sensor n1", m.Sensor)
	}
	onDisk, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, onDisk); diff != "" {
		t.Errorf("manifest.json differs from what Create returned (-returned +file):\n%s", diff)
	}
	checkPrivate(t, out)
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("the backups' directory holds %d entries, want the backup alone (no partial one left)", len(entries))
	}

	// The SQLite copy is one transaction's view: each alert has its
	// record, and the alert numbers have no gap.
	checkConsistent(t, filepath.Join(out, sqliteFile))

	// A change after the backup, which the restore must not bring back.
	if _, err := n.st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "later", Name: "Later"}); err != nil {
		t.Fatal(err)
	}
	ca, err := n.st.ClusterCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.stop()
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}

	// The cluster key first: missing, then another cluster's.
	peer := freeAddr(t)
	opts := RestoreOptions{From: out, DataDir: dataDir, EtcdPeerAddr: peer, LocalSensorDir: filepath.Join(dataDir, "sensor")}
	if _, err := Restore(ctx, opts); err == nil || !strings.Contains(err.Error(), "cluster key "+filepath.Join(dataDir, "cluster.key")+" is missing") {
		t.Errorf("restore without the cluster key: got %v, want it named missing", err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	newKey(t, other)
	if _, err := Restore(ctx, RestoreOptions{From: out, DataDir: dataDir, EtcdPeerAddr: peer, ClusterKeyFile: other}); err == nil || !strings.Contains(err.Error(), "not the key of the cluster") {
		t.Errorf("restore with another cluster's key: got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "etcd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused restore left %s/etcd (%v)", dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "cluster.key"), n.key, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "n1" || r.InitialCluster != "n1=https://"+peer || !r.SQLite || !r.Sensor || r.KeyWritten != "" || r.MovedAside != "" {
		t.Errorf("restored: %+v", r)
	}

	// etcd as it was at the backup, its revision raised.
	restored := startMember(t, dataDir, "n1", peer, "", n.key)
	st := store.New(restored.Client())
	tenants, err := st.ListTenants(ctx, store.AllTenants())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range tenants {
		ids = append(ids, tn.GetId())
	}
	if !slices.Contains(ids, "acme") || slices.Contains(ids, "later") {
		t.Errorf("restored tenants %v: want acme, and not the one made after the backup", ids)
	}
	gotCA, err := st.ClusterCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gotCA.GetCertPem() != ca.GetCertPem() {
		t.Error("restored cluster CA differs")
	}
	if _, err := clusterca.Load(ctx, st, n.key); err != nil {
		t.Errorf("the cluster key does not open the restored CA: %v", err)
	}
	v, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "after", Name: "After"})
	if err != nil {
		t.Fatal(err)
	}
	if v <= m.Etcd.Revision+RevisionBump {
		t.Errorf("first write after the restore: version %d, want above %d (the backup's revision %d + %d)", v, m.Etcd.Revision+RevisionBump, m.Etcd.Revision, RevisionBump)
	}

	// The SQLite store as in the backup.
	counts, err := checkSQLite(ctx, filepath.Join(dataDir, "osprey.db"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.SQL.Tables, counts); diff != "" {
		t.Errorf("restored SQLite rows per table (-backup +restored):\n%s", diff)
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: filepath.Join(dataDir, "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetMessage(ctx, store.AllTenants(), "acme", "s1", "before-7"); err != nil {
		t.Errorf("a record written before the backup: %v", err)
	}
	db.Close()

	// The own sensor's identity, each file with its mode.
	for name, body := range identity {
		p := filepath.Join(dataDir, "sensor", "identity", name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != body {
			t.Errorf("restored %s: %q, %v; want %q", name, b, err, body)
			continue
		}
		st, _ := os.Stat(p)
		want := os.FileMode(0o644)
		if name == "key.pem" || name == "sensor.json" {
			want = 0o600
		}
		if st.Mode().Perm() != want {
			t.Errorf("restored %s: mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}

	// The data dir now holds a node's data: refused, even when forced
	// while the node runs.
	if _, err := Restore(ctx, opts); !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "etcd, osprey.db") {
		t.Errorf("restore over a node's data: got %v, want ErrDataDirInUse naming etcd and osprey.db", err)
	}
	forced := opts
	forced.Force = true
	if _, err := Restore(ctx, forced); !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "running node") {
		t.Errorf("forced restore while the member runs: got %v, want ErrDataDirInUse (a running node)", err)
	}
	restored.stop()
	forced.Now = func() time.Time { return time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC) }
	r, err = Restore(ctx, forced)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dataDir, "before-restore-20260504T030201Z"); r.MovedAside != want || !r.SensorKept || r.Sensor {
		t.Errorf("forced restore: moved aside to %q, sensor kept %v restored %v; want %s, the identity in place kept", r.MovedAside, r.SensorKept, r.Sensor, want)
	}
	for _, name := range []string{"etcd", "osprey.db"} {
		if _, err := os.Stat(filepath.Join(r.MovedAside, name)); err != nil {
			t.Errorf("moved aside: %v", err)
		}
	}
	// Another node restored from the backup does not get the backed-up
	// node's sensor identity.
	otherDir := filepath.Join(t.TempDir(), "n2")
	if err := os.MkdirAll(otherDir, 0o700); err != nil {
		t.Fatal(err)
	}
	r, err = Restore(ctx, RestoreOptions{From: out, DataDir: otherDir, NodeName: "n2", EtcdPeerAddr: freeAddr(t),
		ClusterKeyFile: filepath.Join(dataDir, "cluster.key"), LocalSensorDir: filepath.Join(otherDir, "sensor")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(otherDir, "sensor", "identity")); r.Sensor || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("restore of node n2 from n1's backup: sensor identity restored %v (%v), want not", r.Sensor, err)
	}
	again := startMember(t, dataDir, "n1", peer, "", n.key)
	if _, _, err := store.New(again.Client()).GetTenant(ctx, store.AllTenants(), "after"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tenant made after the first restore, after the second: got %v, want not found", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, ".restore-*")); len(entries) > 0 {
		t.Errorf("restore left %v", entries)
	}
}

// checkPrivate checks that the backup's directory is 0700 and every file
// in it 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkConsistent checks the invariants of the SQL store's transactions in
// the SQLite file at path.
func checkConsistent(t *testing.T, path string) {
	t.Helper()
	db, err := openSQLite(path, "ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var alerts, maxSeq, counter, orphans int64
	row := db.QueryRowContext(t.Context(), `SELECT
		(SELECT count(*) FROM alerts WHERE tenant = 'acme'),
		(SELECT coalesce(max(seq), 0) FROM alerts WHERE tenant = 'acme'),
		(SELECT seq FROM alert_seq WHERE tenant = 'acme'),
		(SELECT count(*) FROM alerts a WHERE NOT EXISTS
			(SELECT 1 FROM messages m WHERE m.tenant = a.tenant AND m.sensor_id = a.sensor_id AND m.message_id = a.message_id AND m.alert_id = a.id))`)
	if err := row.Scan(&alerts, &maxSeq, &counter, &orphans); err != nil {
		t.Fatal(err)
	}
	if alerts != maxSeq || maxSeq != counter || orphans != 0 {
		t.Errorf("backup's SQLite: %d alerts, numbered up to %d, counter at %d, %d without their record; want one number each, no gap, none alone",
			alerts, maxSeq, counter, orphans)
	}
}

// TestRestoreCluster: a backup taken from one member of a three-member
// cluster, restored on three new members with the same snapshot and the
// same initial cluster (each with its own name), makes one cluster again,
// whose every member serves the data.
func TestRestoreCluster(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	keyFile := filepath.Join(root, "cluster.key")
	key := newKey(t, keyFile)
	names := []string{"n1", "n2", "n3"}
	startCluster := func(initial string, peers []string, dirs []string) []*member {
		t.Helper()
		members := make([]*member, len(names))
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				srv, err := tryMember(ctx, dirs[i], name, peers[i], initial, key)
				if err != nil {
					errs[i] = err
					return
				}
				members[i] = &member{Server: srv, stop: sync.OnceFunc(srv.Close)}
				t.Cleanup(members[i].stop)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		return members
	}
	cluster := func() (string, []string, []string) {
		var peers, parts, dirs []string
		for _, name := range names {
			peers = append(peers, freeAddr(t))
			parts = append(parts, name+"=https://"+peers[len(peers)-1])
			dirs = append(dirs, filepath.Join(t.TempDir(), name))
		}
		return strings.Join(parts, ","), peers, dirs
	}

	initial, peers, dirs := cluster()
	old := startCluster(initial, peers, dirs)
	st := store.New(old[0].Client())
	if _, err := clusterca.Load(ctx, st, key); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "backup")
	// From the second member, with a PostgreSQL store (not in the backup).
	m, err := Create(ctx, Options{Out: out, DataDir: dirs[1], ClusterKeyFile: keyFile, DBURL: "postgres://osprey@db.example/osprey",
		Etcd: clientv3.Config{Endpoints: old[1].Endpoints()}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Node != "n2" || m.SQL.Dialect != DialectPostgres || m.SQL.File != "" || len(m.Etcd.Members) != 3 || m.Members() != initial {
		t.Errorf("manifest: node %q, SQL %+v, members %s; want n2, PostgreSQL without a file, %s", m.Node, m.SQL, m.Members(), initial)
	}
	if _, err := os.Stat(filepath.Join(out, sqliteFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a backup of a node with PostgreSQL holds %s (%v)", sqliteFile, err)
	}
	for _, o := range old {
		o.stop()
	}

	// Three new members, elsewhere, from the one snapshot.
	initial, peers, dirs = cluster()
	for i, name := range names {
		r, err := Restore(ctx, RestoreOptions{From: out, DataDir: dirs[i], NodeName: name, EtcdInitialCluster: initial, ClusterKeyFile: keyFile})
		if err != nil {
			t.Fatalf("restore %s: %v", name, err)
		}
		if r.SQLite || r.Node != name {
			t.Errorf("restore %s: %+v", name, r)
		}
		if _, err := os.Stat(filepath.Join(dirs[i], "osprey.db")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("restore %s made an osprey.db from a PostgreSQL node's backup", name)
		}
	}
	members := startCluster(initial, peers, dirs)
	for i, mem := range members {
		if _, _, err := store.New(mem.Client()).GetTenant(ctx, store.AllTenants(), "acme"); err != nil {
			t.Errorf("%s: %v", names[i], err)
		}
	}
	ml, err := members[2].Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mem := range ml.Members {
		got = append(got, mem.Name+"="+strings.Join(mem.PeerURLs, ","))
	}
	slices.Sort(got)
	if strings.Join(got, ",") != initial {
		t.Errorf("restored cluster's members %v, want %s", got, initial)
	}
	// It takes writes: a quorum.
	if _, err := store.New(members[0].Client()).CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "after", Name: "After"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.New(members[2].Client()).GetTenant(ctx, store.AllTenants(), "after"); err != nil {
		t.Errorf("a write through n1, read on n3: %v", err)
	}
}

// TestOpenRefuses: a backup that is not whole or not of a format this code
// knows is refused before anything is restored.
func TestOpenRefuses(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dataDir)
	good := filepath.Join(t.TempDir(), "good")
	if _, err := Create(t.Context(), n.backupOptions(good)); err != nil {
		t.Fatal(err)
	}
	editManifest := func(edit func(*Manifest)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, manifestFile))
			if err != nil {
				t.Fatal(err)
			}
			var m Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(&m)
			if b, err = marshalManifest(&m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, manifestFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"a changed snapshot", func(t *testing.T, dir string) {
			p := filepath.Join(dir, etcdFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "etcd.snapshot: "},
		{"a missing file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, sqliteFile)); err != nil {
				t.Fatal(err)
			}
		}, "osprey.db"},
		{"a newer format version", editManifest(func(m *Manifest) { m.Version = Version + 1 }), fmt.Sprintf("version %d of the backup format", Version+1)},
		{"another format", editManifest(func(m *Manifest) { m.Format = "tarball" }), `format "tarball"`},
		{"a file outside the backup", editManifest(func(m *Manifest) { m.Files[0].Name = "../" + m.Files[0].Name }), "not a name inside the backup"},
		{"a part not among the files", editManifest(func(m *Manifest) { m.Etcd.File = "other.snapshot" }), `names "other.snapshot"`},
		{"no manifest", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, manifestFile)); err != nil {
				t.Fatal(err)
			}
		}, "no manifest.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backup")
			if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, dir)
			target := filepath.Join(t.TempDir(), "data")
			_, err := Restore(t.Context(), RestoreOptions{From: dir, DataDir: target, ClusterKeyFile: filepath.Join(dataDir, "cluster.key")})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalid saying %q", err, tt.want)
			}
			if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused restore made %s (%v)", target, err)
			}
		})
	}
}

// TestCreateRefuses: what a backup refuses to start with, before it writes.
func TestCreateRefuses(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dataDir)
	full := filepath.Join(t.TempDir(), "full")
	if err := os.MkdirAll(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	newKey(t, other)
	tests := []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"an output directory that is not empty", func(o *Options) { o.Out = full }, "not empty"},
		{"two endpoints", func(o *Options) { o.Etcd.Endpoints = append(o.Etcd.Endpoints, o.Etcd.Endpoints[0]) }, "--etcd-endpoints: 2 given"},
		{"another cluster's key", func(o *Options) { o.ClusterKeyFile = other }, "not this cluster's key"},
		{"no cluster key", func(o *Options) { o.ClusterKeyFile = filepath.Join(t.TempDir(), "none") }, "--cluster-key-file"},
		{"no SQLite store", func(o *Options) { o.DataDir = t.TempDir(); o.ClusterKeyFile = filepath.Join(dataDir, "cluster.key") }, "give --db-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "backup")
			opts := n.backupOptions(out)
			tt.edit(&opts)
			_, err := Create(t.Context(), opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
			if opts.Out == out {
				if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
					t.Errorf("the refused backup left %v", entries)
				}
			}
		})
	}
}

// TestIncludeClusterKey: a backup that holds the cluster key puts it back
// when the node's is missing, owner-only.
func TestIncludeClusterKey(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dataDir)
	out := filepath.Join(t.TempDir(), "backup")
	opts := n.backupOptions(out)
	opts.IncludeClusterKey = true
	m, err := Create(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Key.Included {
		t.Fatalf("manifest's cluster key: %+v, want included", m.Key)
	}
	checkPrivate(t, out)
	target := filepath.Join(t.TempDir(), "data")
	r, err := Restore(t.Context(), RestoreOptions{From: out, DataDir: target, EtcdPeerAddr: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(target, "cluster.key")
	if r.KeyWritten != keyPath {
		t.Errorf("key written to %q, want %s", r.KeyWritten, keyPath)
	}
	got, err := pki.LoadKEK(keyPath) // which checks its mode
	if err != nil || !bytes.Equal(got, n.key) {
		t.Errorf("restored key: %v, equal %v", err, bytes.Equal(got, n.key))
	}
}
