// Package backup takes a backup of a running Central Node and restores a
// stopped node's data dir from one.
//
// Design note. A node keeps two stores: etcd (configuration, users,
// sensors and their certificate fingerprints, tokens, rules, the sealed
// cluster CA) and the SQL store (message records and alerts). A backup is a
// directory, readable by its owner only, that describes itself in
// manifest.json: the format's version, the time, the node, what it holds,
// and the size and SHA-256 of every file. It holds
//
//   - etcd.snapshot: a consistent snapshot of the node's etcd member,
//     streamed from the running member as etcdctl snapshot save does (the
//     member appends a SHA-256, checked here), then checked as a bbolt
//     database;
//   - osprey.db: when the node keeps its SQL store in SQLite, a copy made
//     with VACUUM INTO, which reads one transaction's view of the database
//     while the node goes on writing, so it is consistent. A cluster's
//     PostgreSQL is not in the backup: the operator backs it up with its
//     own tools (pg_dump, base backups);
//   - local-sensor/identity/: the identity (key and certificates) of the
//     node's own Sensor component, which lives in the data dir: restored on
//     that node, the sensor goes on with its certificate (the other nodes
//     of a cluster restored from the backup enroll theirs again);
//   - cluster.key, only when asked: the key unseals the cluster CA's key,
//     so by default it stays out and the manifest keeps a check value that
//     a restore compares the key it is given with.
//
// A backup is written in a directory beside its destination and renamed
// into place once complete, so a failed backup never looks like one.
//
// Restore rebuilds a stopped node's data dir: etcd's data from the
// snapshot for this member of the given initial cluster (as etcdutl
// snapshot restore does; every member of a cluster is restored from the
// same snapshot with the same initial cluster), the SQLite file and the
// sensor identity. It checks everything before it writes anything, builds
// the new files in the data dir, and renames them into place. It refuses a
// data dir that holds a node's data unless forced, and then moves that
// data aside rather than delete it. The restored etcd's revision is raised
// past every revision the cluster may have given out after the backup, so
// a configuration version is never given twice.
package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/buildinfo"
	"github.com/ospreysec/osprey/pkg/pki"
)

// Options configures a backup.
type Options struct {
	// Out is the backup's directory; it must not exist, or be empty.
	Out string
	// DataDir is the node's data dir: its SQLite store, and its cluster
	// key unless ClusterKeyFile says otherwise.
	DataDir string
	// NodeName is recorded in the manifest; empty: the etcd member's name.
	NodeName string
	// Etcd reaches the member to snapshot: exactly one endpoint.
	Etcd clientv3.Config
	// DBURL is the node's --db-url. A PostgreSQL store is not in the
	// backup; empty means SQLite in DataDir, which is.
	DBURL string
	// ClusterKeyFile is the node's cluster key (default
	// DataDir/cluster.key): the backup checks that it opens the cluster CA
	// and records its check value.
	ClusterKeyFile string
	// IncludeClusterKey puts the key itself in the backup.
	IncludeClusterKey bool
	// LocalSensorDir is the data dir of the node's own Sensor component;
	// its identity/ is kept when there is one.
	LocalSensorDir string
	// Now is the clock of the manifest; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Out == "" {
		errs = append(errs, errors.New("--out: required"))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if len(o.Etcd.Endpoints) != 1 {
		errs = append(errs, fmt.Errorf("--etcd-endpoints: %d given, want one member's client URL: a snapshot is one member's", len(o.Etcd.Endpoints)))
	}
	return errors.Join(errs...)
}

func (o *Options) keyFile() string {
	if o.ClusterKeyFile != "" {
		return o.ClusterKeyFile
	}
	return filepath.Join(o.DataDir, "cluster.key")
}

// Create takes a backup of the running node opts describes and returns its
// manifest.
func Create(ctx context.Context, opts Options) (*Manifest, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	key, err := loadKey(opts.keyFile())
	if err != nil {
		return nil, err
	}
	if err := checkOut(opts.Out); err != nil {
		return nil, err
	}
	cfg := opts.Etcd
	cfg.Logger = zap.NewNop()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", cfg.Endpoints[0], err)
	}
	defer cli.Close()
	m := &Manifest{
		Format: Format, Version: Version, OspreyVersion: buildinfo.Version(),
		CreatedAt: now().UTC().Truncate(time.Second), Node: opts.NodeName, DataDir: absPath(opts.DataDir),
		Key: KeyPart{Check: KeyCheck(key)},
	}
	// A member that does not answer fails the backup instead of holding it.
	dctx, cancel := context.WithTimeout(ctx, describeTimeout)
	err = describeEtcd(dctx, cli, key, &m.Etcd)
	cancel()
	if err != nil {
		return nil, err
	}
	if m.Node == "" {
		m.Node = m.Etcd.Member
	}

	parent := filepath.Dir(filepath.Clean(opts.Out))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", parent, err)
	}
	// MkdirTemp makes the directory 0700: the backup holds every tenant's
	// configuration and user password hashes.
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(opts.Out)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("create the backup: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	// The snapshot first: the sensor identity copied after it is the same
	// or newer than the certificate its record names, which the sensor
	// service takes as the sensor's newest.
	if err := saveSnapshot(ctx, cli, filepath.Join(tmp, etcdFile), &m.Etcd); err != nil {
		return nil, err
	}
	if opts.DBURL != "" {
		m.SQL = SQLPart{Dialect: DialectPostgres,
			Note: "the message records and alerts are in the cluster's PostgreSQL, not in this backup: back it up with pg_dump or base backups, and restore it before the nodes start"}
	} else {
		m.SQL = SQLPart{Dialect: DialectSQLite, File: sqliteFile}
		if m.SQL.Tables, err = copySQLite(ctx, filepath.Join(opts.DataDir, "osprey.db"), filepath.Join(tmp, sqliteFile)); err != nil {
			return nil, err
		}
	}
	if opts.LocalSensorDir != "" {
		if m.Sensor, err = copySensorIdentity(filepath.Join(opts.LocalSensorDir, "identity"), tmp); err != nil {
			return nil, err
		}
	}
	if opts.IncludeClusterKey {
		if err := writeFileSync(filepath.Join(tmp, clusterKeyFile), key, 0o600); err != nil {
			return nil, err
		}
		m.Key.Included, m.Key.File = true, clusterKeyFile
	}
	if err := m.list(tmp); err != nil {
		return nil, err
	}
	b, err := marshalManifest(m)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, manifestFile), b, 0o600); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	// An empty directory made for the backup gives way to the complete one.
	if err := os.Remove(opts.Out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("replace the empty %s: %w", opts.Out, err)
	}
	if err := os.Rename(tmp, opts.Out); err != nil {
		return nil, fmt.Errorf("move the backup into place: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return nil, err
	}
	return m, nil
}

// describeTimeout bounds the calls that describe the etcd member before
// its snapshot.
const describeTimeout = 15 * time.Second

// checkOut refuses a destination that holds anything.
func checkOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case len(entries) > 0:
		return fmt.Errorf("--out %s: not empty; give a new directory for each backup", out)
	}
	return nil
}

// loadKey reads the cluster key without making one, as the node would.
func loadKey(path string) ([]byte, error) {
	key, err := pki.LoadKEK(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w (give the node's --cluster-key-file)", err)
	}
	return key, nil
}

// describeEtcd fills what the manifest says of the member and its cluster,
// and checks that key is the cluster's: it opens the cluster CA's key.
func describeEtcd(ctx context.Context, cli *clientv3.Client, key []byte, p *EtcdPart) error {
	ep := cli.Endpoints()[0]
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return fmt.Errorf("etcd at %s: %w (is the node running? it prints its embedded etcd's URL at start)", ep, err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd members: %w", err)
	}
	p.Endpoint, p.ServerVersion = ep, st.Version
	p.ClusterID = strconv.FormatUint(st.Header.GetClusterId(), 16)
	for _, mem := range ml.Members {
		p.Members = append(p.Members, Member{Name: mem.Name, PeerURLs: mem.PeerURLs})
		if mem.ID == st.Header.GetMemberId() {
			p.Member = mem.Name
		}
	}
	ca, err := store.New(cli).ClusterCA(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("etcd at %s holds no cluster CA: is it an Osprey cluster's?", ep)
	}
	if err != nil {
		return err
	}
	if _, err := pki.Open(ca.GetSealedKey(), key, pki.CAKeyLabel); err != nil {
		return fmt.Errorf("the cluster key does not open the cluster CA in etcd at %s: it is not this cluster's key (%w)", ep, err)
	}
	return nil
}

// saveSnapshot streams the member's snapshot to name, checks the SHA-256
// the member appends, then opens it as etcd's database to check it and
// count its keys.
func saveSnapshot(ctx context.Context, cli *clientv3.Client, name string, p *EtcdPart) error {
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer resp.Snapshot.Close()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer f.Close()
	// The stream is the database, then the SHA-256 of the database.
	sum := &hashTail{h: sha256.New(), n: sha256.Size}
	if _, err := io.Copy(io.MultiWriter(f, sum), resp.Snapshot); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	if len(sum.tail) < sha256.Size || !bytes.Equal(sum.h.Sum(nil), sum.tail) {
		return errors.New("etcd snapshot: the SHA-256 the member sent does not match its data: the stream was damaged")
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	status, err := etcdutl.NewV3(zap.NewNop()).Status(name)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	p.File, p.Revision, p.Keys = etcdFile, status.Revision, status.TotalKey
	if p.ServerVersion == "" {
		p.ServerVersion = resp.Version
	}
	return nil
}

// hashTail hashes what is written to it but the last n bytes, which it
// keeps.
type hashTail struct {
	h    hash.Hash
	n    int
	tail []byte
}

func (w *hashTail) Write(p []byte) (int, error) {
	w.tail = append(w.tail, p...)
	if over := len(w.tail) - w.n; over > 0 {
		w.h.Write(w.tail[:over])
		w.tail = append(w.tail[:0], w.tail[over:]...)
	}
	return len(p), nil
}

// copySensorIdentity copies the regular files of the own sensor's identity
// directory into the backup; there is none before the sensor enrolled, or
// on a node without one.
func copySensorIdentity(dir, out string) (SensorPart, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return SensorPart{}, nil
	}
	if err != nil {
		return SensorPart{}, fmt.Errorf("the own sensor's identity: %w", err)
	}
	dst := filepath.Join(out, filepath.FromSlash(sensorDir))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return SensorPart{}, err
	}
	p := SensorPart{Included: true, Dir: sensorDir}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return SensorPart{}, fmt.Errorf("the own sensor's identity: %w", err)
		}
		if err := writeFileSync(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return SensorPart{}, err
		}
		if e.Name() == "sensor.json" {
			p.ID = sensorID(b)
		}
	}
	return p, nil
}

// list fills m.Files with every file under dir, as it will be restored:
// the sensor's certificates world-readable as the sensor writes them, the
// rest owner-only.
func (m *Manifest) list(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		size, sum, err := fileSum(p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		mode := os.FileMode(0o600)
		if filepath.Dir(name) == sensorDir && filepath.Ext(name) == ".pem" && d.Name() != "key.pem" {
			mode = 0o644
		}
		m.Files = append(m.Files, File{Name: name, Size: size, SHA256: sum, Mode: formatMode(mode)})
		return nil
	})
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
