package backup

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The backup directory's layout; every name is relative to it.
const (
	manifestFile   = "manifest.json"
	etcdFile       = "etcd.snapshot"
	sqliteFile     = "osprey.db"
	clusterKeyFile = "cluster.key"
	// sensorDir holds the identity of the node's own Sensor component
	// (the files of its identity/ directory).
	sensorDir = "local-sensor/identity"
)

// Format names what a manifest describes; Version is the layout this
// code writes and the newest it reads.
const (
	Format  = "osprey-backup"
	Version = 1
)

// Manifest describes a backup: it is manifest.json in the backup's
// directory.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// OspreyVersion is the version of the binary that took the backup.
	OspreyVersion string    `json:"osprey_version"`
	CreatedAt     time.Time `json:"created_at"`
	// Node is the name of the node the backup was taken from.
	Node string `json:"node"`
	// DataDir is that node's data dir, for the record.
	DataDir string     `json:"data_dir"`
	Etcd    EtcdPart   `json:"etcd"`
	SQL     SQLPart    `json:"sql"`
	Key     KeyPart    `json:"cluster_key"`
	Sensor  SensorPart `json:"local_sensor"`
	// Files lists every file of the backup but the manifest, with its
	// size and SHA-256.
	Files []File `json:"files"`
}

// EtcdPart is the etcd snapshot.
type EtcdPart struct {
	File string `json:"file"`
	// Endpoint is the member the snapshot was taken from.
	Endpoint string `json:"endpoint"`
	// Member is that member's name.
	Member        string `json:"member"`
	ServerVersion string `json:"server_version"`
	ClusterID     string `json:"cluster_id"`
	// Revision is the etcd revision the snapshot holds, Keys how many keys.
	Revision int64 `json:"revision"`
	Keys     int   `json:"keys"`
	// Members are the cluster's members when the backup was taken.
	Members []Member `json:"members"`
}

// Member is an etcd member.
type Member struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peer_urls"`
}

// The SQL dialects a backup names.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// SQLPart is the SQL store of message records and alerts.
type SQLPart struct {
	// Dialect is DialectSQLite (the file is in the backup) or
	// DialectPostgres (it is not: PostgreSQL is backed up with its own
	// tools).
	Dialect string `json:"dialect"`
	File    string `json:"file,omitempty"`
	// Tables counts the rows of each table of the SQLite copy.
	Tables map[string]int64 `json:"tables,omitempty"`
	Note   string           `json:"note,omitempty"`
}

// KeyPart says whether the cluster key is in the backup, and how to
// recognise the right one when it is not.
type KeyPart struct {
	Included bool   `json:"included"`
	File     string `json:"file,omitempty"`
	// Check is KeyCheck of the key: a restore compares the key it is given
	// with it. It reveals nothing of the key.
	Check string `json:"check"`
}

// SensorPart is the identity of the node's own Sensor component (osprey
// dev, osprey central --sensor), when it has one.
type SensorPart struct {
	Included bool   `json:"included"`
	Dir      string `json:"dir,omitempty"`
	// ID is the sensor's id, from its identity.
	ID string `json:"id,omitempty"`
}

// File is one file of a backup.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Mode is the permission the file is restored with (octal).
	Mode string `json:"mode"`
}

// KeyCheck is the check value of a cluster key: the start of an HMAC of a
// fixed text under the key.
func KeyCheck(key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("osprey backup: cluster key check"))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// ErrInvalid marks a backup that cannot be restored: no manifest, a format
// or version this binary does not know, a file missing or changed.
var ErrInvalid = errors.New("invalid backup")

// Open reads the manifest of the backup in dir and checks it: the format
// and version, then the size and SHA-256 of every file it lists.
func Open(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: %w", dir, manifestFile, ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("read the backup's manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", filepath.Join(dir, manifestFile), ErrInvalid, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q: %w", dir, m.Format, Format, ErrInvalid)
	}
	if m.Version < 1 || m.Version > Version {
		return nil, fmt.Errorf("%s: version %d of the backup format (osprey %s), this osprey reads versions 1 to %d: %w",
			dir, m.Version, m.OspreyVersion, Version, ErrInvalid)
	}
	if err := m.check(dir); err != nil {
		return nil, err
	}
	return &m, nil
}

// check verifies that the parts the manifest names are among its files,
// and every file's size and SHA-256.
func (m *Manifest) check(dir string) error {
	listed := map[string]bool{}
	for _, f := range m.Files {
		if !localName(f.Name) {
			return fmt.Errorf("%s: file %q: not a name inside the backup: %w", dir, f.Name, ErrInvalid)
		}
		listed[f.Name] = true
	}
	need := []string{m.Etcd.File}
	if m.SQL.Dialect == DialectSQLite {
		need = append(need, m.SQL.File)
	}
	if m.Key.Included {
		need = append(need, m.Key.File)
	}
	for _, n := range need {
		if n == "" || !listed[n] {
			return fmt.Errorf("%s: the manifest names %q, not among its files: %w", dir, n, ErrInvalid)
		}
	}
	switch m.SQL.Dialect {
	case DialectSQLite, DialectPostgres:
	default:
		return fmt.Errorf("%s: SQL store %q, want %s or %s: %w", dir, m.SQL.Dialect, DialectSQLite, DialectPostgres, ErrInvalid)
	}
	var errs []error
	for _, f := range m.Files {
		if _, err := parseMode(f.Mode); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, err))
			continue
		}
		size, sum, err := fileSum(filepath.Join(dir, filepath.FromSlash(f.Name)))
		switch {
		case err != nil:
			errs = append(errs, err)
		case size != f.Size || sum != f.SHA256:
			errs = append(errs, fmt.Errorf("%s: %d bytes with SHA-256 %s, the manifest says %d bytes with SHA-256 %s",
				f.Name, size, sum, f.Size, f.SHA256))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w: %w", dir, ErrInvalid, err)
	}
	return nil
}

// localName reports whether name is a clean relative slash path that stays
// inside the backup.
func localName(name string) bool {
	return name != "" && name == path.Clean(name) && !path.IsAbs(name) && name != ".." && !strings.HasPrefix(name, "../")
}

func parseMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n&^0o777 != 0 {
		return 0, fmt.Errorf("mode %q: want octal permission bits, as 0600", s)
	}
	return os.FileMode(n), nil
}

func formatMode(m os.FileMode) string { return fmt.Sprintf("%#o", m.Perm()) }

// fileSum returns the size and SHA-256 (hex) of the file at name.
func fileSum(name string) (int64, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", name, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
