package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/central/backup"
)

const adminUsage = `Usage: osprey admin <command> [flags]

Commands:
  backup    back up a running Central Node into a new directory: a consistent
            snapshot of its etcd, a copy of its SQLite store, its own sensor's
            identity, and a manifest with the checksums
  restore   rebuild a stopped Central Node's data dir from a backup (every node
            of an embedded etcd cluster from the same backup)

Run "osprey admin <command> -h" for a command's flags.
`

// runAdmin runs `osprey admin`.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "osprey admin: no command\n\n%s", adminUsage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "backup":
		return runBackup(ctx, rest, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "osprey admin: unknown command %q\n\n%s", cmd, adminUsage)
		return errUsage
	}
}

// runBackup runs `osprey admin backup`.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("admin backup", `Back up a running Central Node into a new directory (mode 0700, its files 0600):
a consistent snapshot of its etcd member, a copy of its SQLite store (a node
with --db-url: back up the PostgreSQL with pg_dump), its own sensor's identity,
and manifest.json (version, time, node, contents, SHA-256 of every file). The
cluster key is not in it unless --include-cluster-key: keep a copy apart.`, stderr)
	defer func() { err = withUsage(err, stderr, "admin backup", fs.Usage) }()
	var opts backup.Options
	var endpoints stringList
	var clientAddr, caFile, certFile, keyFile string
	fs.StringVar(&opts.Out, "out", "", "the backup's directory, new or empty (required)")
	fs.StringVar(&opts.DataDir, "data-dir", "./osprey-data", "the node's data dir")
	fs.StringVar(&opts.NodeName, "node-name", "", "the node's name, for the manifest (default: its etcd member's)")
	fs.StringVar(&clientAddr, "etcd-client-addr", "127.0.0.1:2379", "client address of the node's embedded etcd member")
	fs.Var(&endpoints, "etcd-endpoints", "the client URL of one member of an external etcd, instead of --etcd-client-addr")
	fs.StringVar(&caFile, "etcd-ca", "", "CA bundle to verify the external etcd")
	fs.StringVar(&certFile, "etcd-cert", "", "client certificate for the external etcd")
	fs.StringVar(&keyFile, "etcd-key", "", "key of --etcd-cert")
	fs.StringVar(&opts.Etcd.Username, "etcd-username", "", "user name for the external etcd")
	fs.StringVar(&opts.Etcd.Password, "etcd-password", "", "password for the external etcd")
	fs.StringVar(&opts.DBURL, "db-url", "", "the node's --db-url: its message records and alerts are then in PostgreSQL, not in the backup; empty: SQLite in the data dir, copied")
	fs.StringVar(&opts.ClusterKeyFile, "cluster-key-file", "", "the node's cluster key (default <data-dir>/cluster.key): checked to open the cluster CA, and its check value recorded")
	fs.BoolVar(&opts.IncludeClusterKey, "include-cluster-key", false, "put the cluster key in the backup too: whoever reads the backup can then mint sensor certificates")
	if err := parseFlags(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if len(endpoints) == 0 {
		host, port, err := net.SplitHostPort(clientAddr)
		if err != nil {
			return usageErrorf("--etcd-client-addr: %q: %v", clientAddr, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		endpoints = stringList{"http://" + net.JoinHostPort(host, port)}
	}
	opts.Etcd.Endpoints = endpoints
	if err := opts.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if (certFile == "") != (keyFile == "") {
		return usageErrorf("--etcd-cert and --etcd-key: give both or neither")
	}
	if caFile != "" || certFile != "" {
		if opts.Etcd.TLS, err = central.EtcdClientTLS(caFile, certFile, keyFile); err != nil {
			return err
		}
	}
	opts.LocalSensorDir = filepath.Join(opts.DataDir, "sensor")
	if opts.IncludeClusterKey {
		fmt.Fprintln(stderr, "WARNING: --include-cluster-key: this backup holds the cluster key, which unseals the cluster CA's key:"+
			" whoever reads it can mint certificates that every central node trusts. Encrypt it, or keep it where the key itself may be.")
	}
	m, err := backup.Create(ctx, opts)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	printBackup(stdout, opts, m)
	return nil
}

func printBackup(w io.Writer, opts backup.Options, m *backup.Manifest) {
	fmt.Fprintf(w, "Backup of node %s written to %s (%s):\n", m.Node, opts.Out, m.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  etcd:         snapshot of member %s at revision %d, %d keys\n", m.Etcd.Member, m.Etcd.Revision, m.Etcd.Keys)
	if len(m.Etcd.Members) > 1 {
		fmt.Fprintf(w, "                (cluster %s)\n", m.Members())
	}
	switch m.SQL.Dialect {
	case backup.DialectSQLite:
		fmt.Fprintf(w, "  SQL store:    SQLite: %s\n", tableCounts(m.SQL.Tables))
	default:
		fmt.Fprintf(w, "  SQL store:    PostgreSQL: NOT in this backup; back the database up with pg_dump (docs/operations.md, Backups)\n")
	}
	if m.Sensor.Included {
		fmt.Fprintf(w, "  own sensor:   identity of sensor %s\n", m.Sensor.ID)
	}
	key := opts.ClusterKeyFile
	if key == "" {
		key = filepath.Join(opts.DataDir, "cluster.key")
	}
	if m.Key.Included {
		fmt.Fprintf(w, "  cluster key:  INCLUDED (%s): keep the backup as secret as the key\n", key)
	} else {
		fmt.Fprintf(w, "  cluster key:  not included: keep a copy of %s apart from the backup; a restore needs it (check value %s)\n", key, m.Key.Check)
	}
}

func tableCounts(tables map[string]int64) string {
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, tables[n]))
	}
	return strings.Join(parts, ", ")
}

// runRestore runs `osprey admin restore`.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("admin restore", `Rebuild the data dir of a stopped Central Node from a backup: its etcd member
from the snapshot, its SQLite store and its own sensor's identity. The backup's
checksums and version are checked first. A data dir that holds a node's data is
refused unless --force, which moves that data aside. For an embedded etcd
cluster, restore every node from the same backup with the same
--etcd-initial-cluster, each with its own --node-name, then start them together.`, stderr)
	defer func() { err = withUsage(err, stderr, "admin restore", fs.Usage) }()
	var opts backup.RestoreOptions
	fs.StringVar(&opts.From, "from", "", "the backup's directory (required)")
	fs.StringVar(&opts.DataDir, "data-dir", "./osprey-data", "the stopped node's data dir")
	fs.StringVar(&opts.NodeName, "node-name", "", "the node's name (default: the name of the node the backup was taken from)")
	fs.StringVar(&opts.EtcdPeerAddr, "etcd-peer-addr", backup.DefaultPeerAddr, "peer address of the node's embedded etcd member, when it is alone")
	fs.StringVar(&opts.EtcdInitialCluster, "etcd-initial-cluster", "", "the node's --etcd-initial-cluster: name=https://host:peer-port,... (the same on every node)")
	fs.StringVar(&opts.ClusterKeyFile, "cluster-key-file", "", "the node's cluster key (default <data-dir>/cluster.key): it must be the backup's; written from the backup when missing, if the backup holds it")
	fs.BoolVar(&opts.Force, "force", false, "restore over a data dir that holds a node's data, moving that data aside into <data-dir>/before-restore-<time>")
	if err := parseFlags(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if opts.From == "" {
		return usageErrorf("--from: required")
	}
	opts.LocalSensorDir = filepath.Join(opts.DataDir, "sensor")
	if err := opts.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	r, err := backup.Restore(ctx, opts)
	if errors.Is(err, backup.ErrDataDirInUse) {
		return err
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	printRestore(stdout, opts, r)
	return nil
}

func printRestore(w io.Writer, opts backup.RestoreOptions, r *backup.Restored) {
	m := r.Manifest
	fmt.Fprintf(w, "Restored node %s in %s from the backup of node %s taken %s (osprey %s):\n",
		r.Node, opts.DataDir, m.Node, m.CreatedAt.Format(time.RFC3339), m.OspreyVersion)
	fmt.Fprintf(w, "  etcd:         member %s of %s, revision %d (the backup's %d, raised)\n", r.Node, r.InitialCluster, r.Revision, m.Etcd.Revision)
	if r.SQLite {
		fmt.Fprintf(w, "  SQL store:    SQLite: %s\n", tableCounts(m.SQL.Tables))
	} else {
		fmt.Fprintf(w, "  SQL store:    PostgreSQL: restore the database from its own backup (pg_restore) before the node starts\n")
	}
	switch {
	case r.Sensor:
		fmt.Fprintf(w, "  own sensor:   identity of sensor %s\n", m.Sensor.ID)
	case r.SensorKept:
		fmt.Fprintf(w, "  own sensor:   the identity in place kept\n")
	}
	if r.KeyWritten != "" {
		fmt.Fprintf(w, "  cluster key:  written from the backup to %s\n", r.KeyWritten)
	} else {
		fmt.Fprintf(w, "  cluster key:  the backup's\n")
	}
	if r.MovedAside != "" {
		fmt.Fprintf(w, "  moved aside:  %s (delete it once the node runs well)\n", r.MovedAside)
	}
	if opts.EtcdInitialCluster != "" {
		fmt.Fprintf(w, "Restore every node of %s from this backup, then start them together with their usual flags.\n", opts.EtcdInitialCluster)
	} else {
		fmt.Fprintf(w, "Start the node with its usual flags.\n")
	}
}
