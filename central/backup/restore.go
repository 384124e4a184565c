package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/pkg/pki"
)

// RevisionBump is how far a restore raises etcd's revision past the
// snapshot's: more than the configuration writes a cluster makes between a
// backup and its restore, so that no version (a revision) given out before
// the restore is given again to another value.
const RevisionBump = 1_000_000_000

// DefaultPeerAddr is the embedded etcd member's peer listener when neither
// --etcd-peer-addr nor --etcd-initial-cluster says otherwise, as on the node.
const DefaultPeerAddr = "127.0.0.1:2380"

// RestoreOptions configures a restore.
type RestoreOptions struct {
	// From is the backup's directory.
	From string
	// DataDir is the stopped node's data dir.
	DataDir string
	// NodeName is the node's name, its etcd member's; empty: the name of
	// the node the backup was taken from.
	NodeName string
	// EtcdPeerAddr is the member's peer address when it is alone (default
	// DefaultPeerAddr).
	EtcdPeerAddr string
	// EtcdInitialCluster is the embedded cluster the member is one of,
	// name=https://host:port,...: restore every member from the same
	// backup with the same value. Empty: a member alone.
	EtcdInitialCluster string
	// ClusterKeyFile is the node's cluster key (default
	// DataDir/cluster.key): checked against the backup's, or written from
	// the backup when it is missing and the backup holds the key.
	ClusterKeyFile string
	// LocalSensorDir is the data dir of the node's own Sensor component:
	// when the node is the one the backup was taken from, the backup's
	// sensor identity goes back in its identity/ if that is missing.
	// Empty: it is not restored.
	LocalSensorDir string
	// Force restores over a data dir that holds a node's data, which is
	// moved aside first.
	Force bool
	// Now names the directory the old data is moved to; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem with the options at once.
func (o *RestoreOptions) Validate() error {
	var errs []error
	if o.From == "" {
		errs = append(errs, errors.New("--from: required"))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if o.EtcdInitialCluster != "" {
		if o.NodeName == "" {
			errs = append(errs, errors.New("--node-name: required with --etcd-initial-cluster"))
		} else if _, err := o.peerURLs(); err != nil {
			errs = append(errs, fmt.Errorf("--etcd-initial-cluster: %w", err))
		}
	} else if o.EtcdPeerAddr != "" {
		if _, _, err := net.SplitHostPort(o.EtcdPeerAddr); err != nil {
			errs = append(errs, fmt.Errorf("--etcd-peer-addr: %q: %w", o.EtcdPeerAddr, err))
		}
	}
	return errors.Join(errs...)
}

// peerURLs returns this member's peer URLs and the initial cluster, as the
// node's embedded member will advertise them: peer URLs are https://, the
// members talking mutual TLS.
func (o *RestoreOptions) peerURLs() ([]string, error) {
	if o.EtcdInitialCluster == "" {
		addr := o.EtcdPeerAddr
		if addr == "" {
			addr = DefaultPeerAddr
		}
		return []string{"https://" + addr}, nil
	}
	members, err := etcdembed.ParseInitialCluster(o.EtcdInitialCluster)
	if err != nil {
		return nil, err
	}
	var errs []error
	for name, urls := range members {
		for _, u := range urls {
			if u.Scheme != "https" {
				errs = append(errs, fmt.Errorf("%s=%s: the members talk mutual TLS, so peer URLs are https://", name, u.String()))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	own, err := etcdembed.MemberPeerURLs(o.EtcdInitialCluster, o.NodeName)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range own {
		out = append(out, u.String())
	}
	return out, nil
}

func (o *RestoreOptions) initialCluster(peerURLs []string) string {
	if o.EtcdInitialCluster != "" {
		return o.EtcdInitialCluster
	}
	return o.NodeName + "=" + peerURLs[0]
}

// Restored says what Restore did.
type Restored struct {
	Manifest *Manifest
	// Node is the member restored; InitialCluster its cluster.
	Node, InitialCluster string
	// Revision is the restored etcd's revision.
	Revision int64
	// SQLite says whether the SQLite store was restored; with a PostgreSQL
	// store the operator restores the database.
	SQLite bool
	// Sensor says whether the own sensor's identity was restored, or kept
	// in place (SensorKept).
	Sensor, SensorKept bool
	// KeyWritten is the cluster key file written from the backup, if any.
	KeyWritten string
	// MovedAside is where the data the restore replaced went (Force).
	MovedAside string
}

// ErrDataDirInUse is returned when the data dir holds a node's data and
// the restore is not forced, or when a node runs on it.
var ErrDataDirInUse = errors.New("the data dir holds a node's data")

// Restore rebuilds the data dir of a stopped node from the backup.
func Restore(ctx context.Context, opts RestoreOptions) (*Restored, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m, err := Open(opts.From)
	if err != nil {
		return nil, err
	}
	if opts.NodeName == "" {
		opts.NodeName = m.Node
	}
	peerURLs, err := opts.peerURLs()
	if err != nil {
		return nil, err
	}
	r := &Restored{Manifest: m, Node: opts.NodeName, InitialCluster: opts.initialCluster(peerURLs),
		Revision: m.Etcd.Revision + RevisionBump, SQLite: m.SQL.Dialect == DialectSQLite}

	// Everything is checked before anything is written.
	keyPath := opts.ClusterKeyFile
	if keyPath == "" {
		keyPath = filepath.Join(opts.DataDir, "cluster.key")
	}
	writeKey, err := planKey(opts.From, m, keyPath)
	if err != nil {
		return nil, err
	}
	identity := ""
	// The identity is the backed-up node's own sensor's: the other nodes
	// of a cluster restored from the backup enroll theirs again.
	if m.Sensor.Included && opts.LocalSensorDir != "" && opts.NodeName == m.Node {
		identity = filepath.Join(opts.LocalSensorDir, "identity")
		if _, err := os.Lstat(identity); err == nil {
			// The identity in place is the backup's or newer: keep it.
			identity, r.SensorKept = "", true
		}
	}
	replaced, err := occupied(opts.DataDir, r.SQLite)
	if err != nil {
		return nil, err
	}
	if len(replaced) > 0 {
		if !opts.Force {
			return nil, fmt.Errorf("%w: %s holds %s; restore into an empty data dir, or give --force to move them aside",
				ErrDataDirInUse, opts.DataDir, strings.Join(replaced, ", "))
		}
		if err := notRunning(opts.DataDir); err != nil {
			return nil, err
		}
	}

	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the data dir: %w", err)
	}
	stage, err := os.MkdirTemp(opts.DataDir, ".restore-")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	err = etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath:        filepath.Join(opts.From, filepath.FromSlash(m.Etcd.File)),
		Name:                opts.NodeName,
		OutputDataDir:       filepath.Join(stage, "etcd"),
		PeerURLs:            peerURLs,
		InitialCluster:      r.InitialCluster,
		InitialClusterToken: embed.NewConfig().InitialClusterToken,
		RevisionBump:        RevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("restore the etcd snapshot: %w", err)
	}
	if r.SQLite {
		if err := copyFile(filepath.Join(opts.From, filepath.FromSlash(m.SQL.File)), filepath.Join(stage, "osprey.db"), 0o600); err != nil {
			return nil, err
		}
	}
	if identity != "" {
		if err := stageIdentity(opts.From, m, filepath.Join(stage, "identity")); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	if len(replaced) > 0 {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		if r.MovedAside, err = moveAside(opts.DataDir, replaced, now()); err != nil {
			return nil, err
		}
	}
	moves := [][2]string{{filepath.Join(stage, "etcd"), filepath.Join(opts.DataDir, "etcd")}}
	if r.SQLite {
		moves = append(moves, [2]string{filepath.Join(stage, "osprey.db"), filepath.Join(opts.DataDir, "osprey.db")})
	}
	if identity != "" {
		if err := os.MkdirAll(opts.LocalSensorDir, 0o700); err != nil {
			return nil, err
		}
		moves = append(moves, [2]string{filepath.Join(stage, "identity"), identity})
		r.Sensor = true
	}
	for _, mv := range moves {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if err := syncDir(filepath.Dir(mv[1])); err != nil {
			return nil, err
		}
	}
	if writeKey != nil {
		if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
			return nil, err
		}
		if err := writeFileSync(keyPath, writeKey, 0o600); err != nil {
			return nil, err
		}
		r.KeyWritten = keyPath
		if err := syncDir(filepath.Dir(keyPath)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// planKey checks the cluster key at keyPath against the backup's, and
// returns the key to write there when it is missing and the backup holds it.
func planKey(from string, m *Manifest, keyPath string) ([]byte, error) {
	key, err := pki.LoadKEK(keyPath)
	switch {
	case err == nil:
		if m.Key.Check != "" && KeyCheck(key) != m.Key.Check {
			return nil, fmt.Errorf("cluster key %s: not the key of the cluster this backup was taken from (its check value is %s, the backup's %s)",
				keyPath, KeyCheck(key), m.Key.Check)
		}
		return nil, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cluster key: %w", err)
	case !m.Key.Included:
		return nil, fmt.Errorf("cluster key %s is missing, and the backup does not hold the key: copy the cluster key kept apart from the backup there (mode 0600), or give --cluster-key-file where it is", keyPath)
	}
	key, err = pki.LoadKEK(filepath.Join(from, filepath.FromSlash(m.Key.File)))
	if err != nil {
		return nil, fmt.Errorf("the backup's cluster key: %w", err)
	}
	if m.Key.Check != "" && KeyCheck(key) != m.Key.Check {
		return nil, fmt.Errorf("the backup's cluster key does not match its check value: %w", ErrInvalid)
	}
	return key, nil
}

// occupied returns what in dataDir a restore would replace: the etcd data,
// and the SQLite store when the backup has one.
func occupied(dataDir string, sqlite bool) ([]string, error) {
	var out []string
	entries, err := os.ReadDir(filepath.Join(dataDir, "etcd"))
	switch {
	case err == nil && len(entries) > 0:
		out = append(out, "etcd")
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Lstat(filepath.Join(dataDir, "etcd")); serr == nil {
			out = append(out, "etcd") // a file, or unreadable: in the way all the same
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return nil, serr
		}
	}
	if sqlite {
		for _, name := range []string{"osprey.db", "osprey.db-wal", "osprey.db-shm", "osprey.db-journal"} {
			if _, err := os.Lstat(filepath.Join(dataDir, name)); err == nil {
				out = append(out, name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	return out, nil
}

// notRunning refuses a data dir whose etcd a running node holds: etcd
// keeps an exclusive lock on its database while it runs.
func notRunning(dataDir string) error {
	db := filepath.Join(dataDir, "etcd", "member", "snap", "db")
	held, err := locked(db)
	if err != nil {
		return fmt.Errorf("check whether a node runs on %s: %w", dataDir, err)
	}
	if held {
		return fmt.Errorf("%w: a running node holds %s: stop it first", ErrDataDirInUse, db)
	}
	return nil
}

// moveAside moves the names in dataDir into a new directory
// before-restore-<time> there, and returns it.
func moveAside(dataDir string, names []string, now time.Time) (string, error) {
	aside := filepath.Join(dataDir, "before-restore-"+now.UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(aside, 0o700); err != nil {
		return "", fmt.Errorf("move the data in the way aside: %w", err)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(dataDir, n), filepath.Join(aside, n)); err != nil {
			return "", fmt.Errorf("move the data in the way aside: %w", err)
		}
	}
	if err := syncDir(dataDir); err != nil {
		return "", err
	}
	return aside, nil
}

// stageIdentity copies the backup's sensor identity to dir, each file with
// its mode.
func stageIdentity(from string, m *Manifest, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	prefix := m.Sensor.Dir + "/"
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Name, prefix) || strings.Contains(f.Name[len(prefix):], "/") {
			continue
		}
		mode, err := parseMode(f.Mode)
		if err != nil {
			return err
		}
		if err := copyFile(filepath.Join(from, filepath.FromSlash(f.Name)), filepath.Join(dir, f.Name[len(prefix):]), mode); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// Members formats the backup's etcd members as an initial cluster, for
// the operator to read.
func (m *Manifest) Members() string {
	var parts []string
	for _, mem := range m.Etcd.Members {
		for _, u := range mem.PeerURLs {
			parts = append(parts, mem.Name+"="+u)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
