package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/mailboxlock"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/agent"
)

// runCentral runs `osprey central`, or `osprey dev` when dev is set.
func runCentral(ctx context.Context, args []string, dev bool, stdout, stderr io.Writer) (err error) {
	name, summary := "central", "Run a Central Node."
	defaults := struct{ dataDir, httpAddr, grpcAddr, node, gossipAddr, dnsAddr string }{
		"/var/lib/osprey", "0.0.0.0:8443", "0.0.0.0:7443", hostname(), "0.0.0.0:7946", "0.0.0.0:53"}
	if dev {
		name, summary = "dev", "Run everything in one process for a first try: a Central Node with an embedded etcd,\nits own sensor approved, the API and UI on loopback."
		defaults.dataDir, defaults.httpAddr, defaults.grpcAddr, defaults.node = "./osprey-data", "127.0.0.1:8080", "127.0.0.1:7443", "dev"
		defaults.gossipAddr, defaults.dnsAddr = "127.0.0.1:7946", "127.0.0.1:8053"
	}
	fs := newFlagSet(name, summary, stderr)
	defer func() { err = withUsage(err, stderr, name, fs.Usage) }()
	var opts central.Options
	var etcdEndpoints, join stringList
	var logFormat, logLevel, pprofAddr string
	var spoolMinFree int64
	var dnsServer string
	fs.StringVar(&opts.NodeName, "node-name", defaults.node, "this node's name in the cluster")
	fs.StringVar(&opts.DataDir, "data-dir", defaults.dataDir, "directory for the embedded etcd and the node's local files")
	fs.StringVar(&opts.HTTP.Addr, "http-addr", defaults.httpAddr, "address of the REST API and web UI")
	fs.StringVar(&opts.HTTP.TLSCert, "http-tls-cert", "", "PEM certificate of the API (outside dev a self-signed one is made when empty)")
	fs.StringVar(&opts.HTTP.TLSKey, "http-tls-key", "", "PEM key of --http-tls-cert")
	fs.StringVar(&opts.GRPC.Addr, "grpc-addr", defaults.grpcAddr, "address where sensors enroll and stream their configuration (gRPC, mutual TLS)")
	fs.StringVar(&opts.ClusterKeyFile, "cluster-key-file", "", "32-byte key sealing the cluster CA in etcd; the same file on every central node (default <data-dir>/cluster.key)")
	fs.StringVar(&opts.Etcd.ClientAddr, "etcd-client-addr", "127.0.0.1:2379", "client address of the embedded etcd member")
	if dev {
		fs.StringVar(&opts.Etcd.PeerAddr, "etcd-peer-addr", "127.0.0.1:2380", "peer address of the embedded etcd member")
	} else {
		fs.StringVar(&opts.Etcd.PeerAddr, "etcd-peer-addr", "", "peer address of the embedded etcd member (default 127.0.0.1:2380, or this node's entry in --etcd-initial-cluster)")
		fs.StringVar(&opts.Etcd.InitialCluster, "etcd-initial-cluster", "", "the embedded etcd cluster formed by the central nodes: name=https://host:peer-port,... (this node's name among them; members speak mutual TLS with certificates derived from the cluster key)")
		fs.StringVar(&opts.Etcd.InitialClusterState, "etcd-initial-cluster-state", "new", `"new" when the members of --etcd-initial-cluster start together, "existing" for a member added with etcdctl member add`)
		fs.BoolVar(&opts.LocalSensor.Run, "sensor", false, "also run the node's own Sensor component, so the node takes mail itself")
	}
	fs.StringVar(&opts.Gossip.Addr, "gossip-addr", defaults.gossipAddr, "address where the node gossips with the other central nodes (UDP and TCP)")
	fs.StringVar(&opts.Gossip.AdvertiseAddr, "gossip-advertise-addr", "", "IP:port the other nodes reach this one's gossip at (default: --gossip-addr, or a private IP when it is 0.0.0.0)")
	fs.Var(&join, "join", "gossip addresses (host:port,...) of central nodes to join; this node's own may be among them")
	fs.StringVar(&opts.Gossip.Key, "gossip-key", "", "base64 of the 32-byte key encrypting gossip, the same on every node (required outside dev, or --gossip-keyring-file)")
	fs.StringVar(&opts.Gossip.KeyringFile, "gossip-keyring-file", "", `JSON array of base64 gossip keys, the primary first (for key rotation)`)
	fs.StringVar(&opts.Gossip.Timing, "gossip-timing", central.GossipTuned, `failure detection timing: "tuned" (about 1 s) or "lan" (memberlist's LAN defaults, about 6 s; for comparisons)`)
	fs.StringVar(&opts.DNS.Addr, "dns-addr", defaults.dnsAddr, "address of the DNS responder (UDP and TCP)")
	fs.StringVar(&opts.DNS.Zone, "dns-zone", central.DefaultDNSZone, "DNS zone the central nodes are authoritative for (smtp.<zone>, central.<zone>)")
	fs.DurationVar(&opts.DNS.TTL, "dns-ttl", central.DefaultDNSTTL, "TTL of the DNS answers")
	if !dev {
		fs.Var(&etcdEndpoints, "etcd-endpoints", "comma-separated URLs of an external etcd cluster (empty: embed a member)")
		fs.StringVar(&opts.Etcd.CAFile, "etcd-ca", "", "CA bundle to verify the external etcd")
		fs.StringVar(&opts.Etcd.CertFile, "etcd-cert", "", "client certificate for the external etcd")
		fs.StringVar(&opts.Etcd.KeyFile, "etcd-key", "", "key of --etcd-cert")
		fs.StringVar(&opts.Etcd.Username, "etcd-username", "", "user name for the external etcd")
		fs.StringVar(&opts.Etcd.Password, "etcd-password", "", "password for the external etcd")
	}
	fs.StringVar(&opts.Scan.ClamdAddress, "clamd-address", "", "clamd socket path (/run/clamav/clamd.ctl) or host:port: adds the ClamAV engine to the scan (empty: off)")
	fs.StringVar(&opts.Scan.RspamdURL, "rspamd-url", "", "URL of an Rspamd normal worker (http://127.0.0.1:11333): asks it about every message beside the scan and keeps its score, action and symbols on the message's record (empty: off)")
	fs.DurationVar(&opts.Scan.RspamdTimeout, "rspamd-timeout", rspamd.DefaultTimeout, "time limit of one Rspamd check; past it the message is recorded without a spam result")
	opts.Scan.RspamdMaxSize = rspamd.DefaultMaxSize
	fs.Var(sizeFlag{&opts.Scan.RspamdMaxSize}, "rspamd-max-size", "larger messages are not sent to Rspamd: its max_message, a number and KB, MB or GB")
	if dev {
		spoolMinFreeFlag(fs, &spoolMinFree, "the node's own sensor")
	} else {
		spoolMinFreeFlag(fs, &spoolMinFree, "with --sensor, the node's own sensor")
	}
	dnsServerFlag(fs, &dnsServer)
	if !dev {
		fs.StringVar(&opts.DB.URL, "db-url", "", "PostgreSQL URL of the message records and alerts, shared by every node of a cluster (postgres://user@host/osprey?target_session_attrs=read-write; the password from the URL or PGPASSWORD); empty: SQLite in the data dir, for a node alone")
	}
	fs.IntVar(&opts.DB.AlertRetention.MaxAlerts, "alert-max", sqlstore.DefaultMaxAlerts, "alerts kept per tenant; the oldest go first")
	fs.DurationVar(&opts.DB.AlertRetention.MaxAge, "alert-max-age", sqlstore.DefaultAlertMaxAge, "how long an alert is kept (at least 1h)")
	fs.DurationVar(&opts.DB.MessageRetention, "message-retention", sqlstore.DefaultMessageRetention, "how long the record of each message is kept (at least 72h)")
	fs.DurationVar(&opts.SensorCerts.Validity, "sensor-cert-validity", sensorsvc.DefaultCertValidity, "lifetime of the sensors' client certificates (1h to 8760h)")
	fs.IntVar(&opts.SensorCerts.RenewFrom, "sensor-cert-renew-from", sensorsvc.DefaultCertRenewFrom, "sensors renew a client certificate after this percent of its lifetime, each at its own point up to --sensor-cert-renew-until (10 to 90)")
	fs.IntVar(&opts.SensorCerts.RenewUntil, "sensor-cert-renew-until", sensorsvc.DefaultCertRenewUntil, "the end of the renewal window, in percent of a client certificate's lifetime (10 to 90)")
	fs.DurationVar(&opts.SensorBalance.Interval, "sensor-balance-interval", sensorsvc.DefaultBalanceInterval, "how often a node compares the sensor streams it holds with its share of the cluster's, and moves a few to other nodes when it holds more (100ms to 1h)")
	fs.Float64Var(&opts.SensorBalance.Step, "sensor-balance-step", sensorsvc.DefaultBalanceStep, "the most streams a node moves to other nodes in one interval, as a fraction of those it holds (0 to 1; 0: the default)")
	fs.BoolVar(&opts.Hierarchy.Primary, "pcn", false, "make this node (every node of its cluster) a Primary Central Node: SCNs join it on --grpc-addr (any node can become an SCN through its API, ctl or UI)")
	fs.DurationVar(&opts.Hierarchy.TokenLifetime, "hierarchy-token-lifetime", hierarchy.DefaultTokenLifetime, "on a PCN: how long an SCN may stay offline before it must log in again with its PCN account (10s to 8760h)")
	fs.DurationVar(&opts.Hierarchy.Heartbeat, "hierarchy-heartbeat", hierarchy.DefaultHeartbeat, "on a PCN: the SCNs' heartbeat interval; three missed ones show an SCN offline (100ms to 5m)")
	fs.DurationVar(&opts.Hierarchy.CertValidity, "hierarchy-cert-validity", hierarchy.DefaultCertValidity, "on a PCN: lifetime of the SCNs' link certificates, renewed at two thirds (1m to 8760h)")
	fs.StringVar(&opts.BootstrapAdminPassword, "bootstrap-admin-password", "", "password of the first admin on a new cluster (generated when empty)")
	fs.StringVar(&logFormat, "log-format", map[bool]string{true: "text", false: "json"}[dev], "log format: json or text")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&pprofAddr, "pprof-addr", "", "address of Go's /debug/pprof/ profiling endpoints, unauthenticated: bind it to loopback (empty: off)")
	if err := parseFlags(fs, args, os.LookupEnv); err != nil {
		return err
	}
	opts.Dev = dev
	opts.Etcd.Endpoints = etcdEndpoints
	opts.Gossip.Join = join
	logger, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	opts.Logger = logger
	if pprofAddr != "" {
		stop, err := startPprof(pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if !dev && !opts.LocalSensor.Run {
		opts.OnReady = func(r central.Ready) { printReady(stdout, r, dev) }
		return central.Run(ctx, opts)
	}
	// dev, and central with --sensor, also run the node's own Sensor
	// component, enrolled with a token bound to the sensor record the node
	// made for it. Its options are checked before the node starts.
	sensorOpts := sensorOptions(sensor.Options{
		DataDir:           filepath.Join(opts.DataDir, "sensor"),
		Name:              opts.NodeName,
		SpoolMinFreeBytes: spoolMinFree,
		DNSServer:         dnsServer,
	}, logger, stdout)
	if err := sensorOpts.Validate(); err != nil {
		return fmt.Errorf("sensor options: %w", err)
	}
	// A sensor without its identity (a data dir restored from another
	// node's backup) enrolls again, into its record.
	if _, err := agent.LoadIdentity(sensorOpts.DataDir); errors.Is(err, agent.ErrNotEnrolled) {
		opts.LocalSensor.Unenrolled = true
	}
	readyc := make(chan central.Ready, 1)
	opts.OnReady = func(r central.Ready) {
		printReady(stdout, r, dev)
		readyc <- r
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return central.Run(gctx, opts) })
	g.Go(func() error {
		select {
		case r := <-readyc:
			// Central nodes that share a POP3 configuration poll each
			// mailbox from one node at a time.
			lock, err := mailboxlock.New(mailboxlock.Options{Client: r.Etcd, Node: opts.NodeName, Logger: logger.With("component", "mailboxlock")})
			if err != nil {
				return err
			}
			defer lock.Close()
			sensorOpts.Central = r.GRPCAddr
			sensorOpts.JoinToken = r.LocalSensorJoinToken
			sensorOpts.MailboxLock = lock
			sensorOpts.Registerer = r.Metrics // served on the node's /metrics
			return sensor.Run(gctx, sensorOpts)
		case <-gctx.Done():
			return nil
		}
	})
	return g.Wait()
}

func printReady(w io.Writer, r central.Ready, dev bool) {
	fmt.Fprintf(w, "\nOsprey Central Node is ready.\n\n")
	fmt.Fprintf(w, "  Web UI:          %s/\n", r.HTTPURL)
	fmt.Fprintf(w, "  API:             %s/api/v1\n", r.HTTPURL)
	fmt.Fprintf(w, "  Health:          %s/readyz\n", r.HTTPURL)
	if r.HTTPCertFingerprint != "" {
		fmt.Fprintf(w, "  API certificate: SHA-256 %s\n", r.HTTPCertFingerprint)
		if r.HTTPCertSelfSigned {
			fmt.Fprintf(w, "                   (self-signed; pin it: osprey ctl --address %s --tls-fingerprint %s)\n", r.HTTPURL, r.HTTPCertFingerprint)
		}
	}
	fmt.Fprintf(w, "  Sensors connect: %s   (osprey sensor --central %s --join-token TOKEN)\n", r.GRPCAddr, r.GRPCAddr)
	if r.Primary {
		fmt.Fprintf(w, "  PCN fingerprint: %s   (SCNs join at %s; compare it with the one they show)\n", r.CAHash, r.GRPCAddr)
	}
	if len(r.EtcdEndpoints) > 0 {
		fmt.Fprintf(w, "  Embedded etcd:   %s\n", strings.Join(r.EtcdEndpoints, ","))
	}
	encrypted := "encrypted"
	if !r.GossipEncrypted {
		encrypted = "NOT encrypted"
	}
	fmt.Fprintf(w, "  Gossip:          %s (%s)\n", r.GossipAddr, encrypted)
	fmt.Fprintf(w, "  DNS:             %s, zone %s (smtp.%s, central.%s)\n", r.DNSAddr, r.DNSZone, r.DNSZone, r.DNSZone)
	switch {
	case r.AdminPassword != "":
		fmt.Fprintf(w, "  Admin:           user %q, password %q\n", r.AdminUser, r.AdminPassword)
		fmt.Fprintf(w, "                   (kept in %s; change it, then delete that file)\n", r.AdminPasswordFile)
	default:
		fmt.Fprintf(w, "  Admin:           user %q, with the password set at bootstrap\n", r.AdminUser)
	}
	if r.LocalSensorID != "" {
		fmt.Fprintf(w, "  Local sensor:    %s (approved)\n", r.LocalSensorID)
	}
	if dev {
		fmt.Fprintf(w, "\nTry:  curl -u %s:PASSWORD %s/api/v1/sensors\n", r.AdminUser, r.HTTPURL)
	}
	fmt.Fprintln(w)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level: %v", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	default:
		return nil, usageErrorf("--log-format: %q is not json or text", format)
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "central"
	}
	h = strings.ToLower(h)
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}
