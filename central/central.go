// Package central is the Central Node: it owns the lifecycle of every component
// of a node (etcd, the configuration store, the REST API and web UI, the sensor
// service with the scanning pipeline, the SQL store of messages, alerts and
// audit events, the SIEM export, gossip membership with the node's health,
// and the DNS responder) and composes them under one Run(ctx).
//
// cmd/osprey parses flags into Options and calls Run; tests start whole nodes
// in-process through the same call, on listeners bound to 127.0.0.1:0.
package central

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/ospreysec/osprey/central/dnsserver"
	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/gossip"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/pkg/pki"
)

// Options configures a Central Node.
type Options struct {
	// NodeName names this node in the cluster, in etcd, and as its own sensor.
	NodeName string
	// DataDir holds the embedded etcd's data and the node's local secrets.
	DataDir string
	// Dev runs the single-process trial mode: plain HTTP on loopback (HTTPS
	// with HTTPTLSCert), text logs, and the node's own Sensor component
	// registered and approved.
	Dev bool

	// HTTPAddr is where the REST API and web UI listen.
	HTTPAddr string
	// HTTPListener, when set, is used instead of listening on HTTPAddr.
	HTTPListener net.Listener
	// HTTPTLSCert and HTTPTLSKey are the API's certificate and key files. Outside
	// dev, when they are empty, the node makes a self-signed pair in DataDir.
	HTTPTLSCert, HTTPTLSKey string

	// GRPCAddr is where sensors enroll and hold their configuration streams.
	GRPCAddr string
	// GRPCListener, when set, is used instead of listening on GRPCAddr.
	GRPCListener net.Listener
	// ClusterKeyFile holds the 32-byte key that seals the cluster CA's key in
	// etcd; every central node of a cluster needs the same file. Default:
	// DataDir/cluster.key, made on the first start of a new cluster.
	ClusterKeyFile string

	// EtcdEndpoints selects an external etcd cluster; empty embeds a member.
	EtcdEndpoints []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile are the TLS files for an external etcd.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdUsername and EtcdPassword authenticate to an external etcd.
	EtcdUsername, EtcdPassword string
	// EtcdClientAddr and EtcdPeerAddr are the embedded member's listeners.
	EtcdClientAddr, EtcdPeerAddr string

	// EtcdInitialCluster ("n1=https://10.0.0.1:2380,n2=...,n3=...") makes the
	// embedded member one of a cluster formed by the central nodes; it must
	// name this node. Empty: a single-member cluster.
	EtcdInitialCluster string
	// EtcdInitialClusterState is "new" (default) when the members in
	// EtcdInitialCluster start a cluster together, or "existing" when this
	// member was added to a running cluster (etcdctl member add).
	EtcdInitialClusterState string

	// Sensor runs the node's own Sensor component (--sensor; dev always
	// does): the node registers it as an approved sensor named after the
	// node and gossips the sensor role and its SMTP listener. cmd/osprey
	// runs the component once the node is ready.
	Sensor bool
	// LocalSensorUnenrolled says that the node's own Sensor component has
	// no identity in its data dir (lost, or a data dir restored from
	// another node's backup) though its record names a certificate: the
	// node then makes it a join token all the same (Ready), and it enrolls
	// into its record again. cmd/osprey looks at the sensor's data dir.
	LocalSensorUnenrolled bool

	// GossipAddr is where the node gossips with the other central nodes,
	// UDP and TCP (--gossip-addr); port 0 picks one. A dev node without one
	// gossips on 127.0.0.1, port picked by the kernel.
	GossipAddr string
	// GossipAdvertiseAddr, when set, is the IP:port the other nodes reach
	// this one at (behind NAT); by default the bound address, or a private
	// IP of the host when it binds every address.
	GossipAdvertiseAddr string
	// Join are the gossip addresses (host:port) of nodes to join at start
	// and to rejoin while they are not seen alive; this node's own address
	// may be among them. The node list in etcd is used too.
	Join []string
	// GossipKey is the base64 of the 32-byte key that encrypts gossip;
	// GossipKeyringFile a JSON array of such keys, the primary first. One is
	// required outside dev.
	GossipKey, GossipKeyringFile string
	// GossipTiming is GossipTuned (default) or GossipLAN.
	GossipTiming string

	// DNSAddr is where the DNS responder listens, UDP and TCP; a dev node
	// without one listens on 127.0.0.1, port picked by the kernel.
	DNSAddr string
	// DNSZone is the zone every central node is authoritative for
	// (default DefaultDNSZone).
	DNSZone string
	// DNSTTL is the TTL of every DNS answer (default DefaultDNSTTL).
	DNSTTL time.Duration

	// BootstrapAdminPassword is the first admin's password on a new cluster.
	// When empty one is generated and written to DataDir/initial-admin-password.
	BootstrapAdminPassword string
	// ClamdAddress, when set, adds the ClamAV engine: a clamd socket path
	// ("/run/clamav/clamd.ctl") or host:port.
	ClamdAddress string
	// DBURL is the SQL store of message records and alerts: a postgres://
	// URL, which every node of a cluster shares (--db-url). Empty: SQLite in
	// DataDir, for a node alone; a cluster node refuses to start without it.
	DBURL string
	// AlertRetention bounds each tenant's alerts; zero fields take the
	// store's defaults (20,000 alerts, 30 days).
	AlertRetention sqlstore.AlertRetention
	// MessageRetention is how long message records are kept; 0 means the
	// store's default (30 days).
	MessageRetention time.Duration
	// SensorCertValidity is the lifetime of the sensors' client
	// certificates (--sensor-cert-validity). SensorCertRenewFrom and
	// SensorCertRenewUntil are the window, in percent of a certificate's
	// lifetime, in which sensors renew it (--sensor-cert-renew-from,
	// --sensor-cert-renew-until). Zero means the default (24h, 60, 75);
	// every node of a cluster should be given the same.
	SensorCertValidity                        time.Duration
	SensorCertRenewFrom, SensorCertRenewUntil int

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnReady, when set, is called once the node serves.
	OnReady func(Ready)
}

// Ready tells where a started node can be reached.
type Ready struct {
	// HTTPURL is the base URL of the REST API and web UI.
	HTTPURL string
	// HTTPCertFingerprint is the SHA-256 (lower-case hex) of the
	// certificate the API is served with, for clients to pin
	// (osprey ctl --tls-fingerprint); empty over plain HTTP.
	// HTTPCertSelfSigned says whether the node made that certificate.
	HTTPCertFingerprint string
	HTTPCertSelfSigned  bool
	// AdminUser is the bootstrap administrator's name.
	AdminUser string
	// AdminPassword is the bootstrap administrator's generated password, when
	// this node generated it and it is still in AdminPasswordFile; empty otherwise.
	AdminPassword string
	// AdminPasswordFile is where a generated password is kept.
	AdminPasswordFile string
	// GRPCAddr is the address of the sensor service.
	GRPCAddr string
	// CAHash is the SHA-256 of the cluster CA's public key, as join tokens carry it.
	CAHash string
	// LocalSensorJoinToken, in dev and with --sensor, enrolls the node's own Sensor component
	// (bound to LocalSensorID) when it has no identity yet.
	LocalSensorJoinToken string
	// EtcdEndpoints are the embedded etcd member's client URLs (none with an external etcd).
	EtcdEndpoints []string
	// Etcd is the node's etcd client, usable until Run returns; the node's
	// own Sensor component locks its POP3 mailboxes with it
	// (central/mailboxlock).
	Etcd *clientv3.Client
	// LocalSensorID is the id of the node's own Sensor component, in dev
	// and with --sensor.
	LocalSensorID string
	// Metrics registers the metrics of what the process runs beside the
	// node (its own Sensor component), to be served with the node's on its
	// /metrics.
	Metrics prometheus.Registerer
	// GossipAddr is where the node gossips; GossipEncrypted says whether
	// with a key.
	GossipAddr      string
	GossipEncrypted bool
	// DNSAddr is where the DNS responder listens, DNSZone its zone.
	DNSAddr, DNSZone string
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name: required"))
	} else if !validNodeName(o.NodeName) {
		errs = append(errs, fmt.Errorf("--node-name: %q: use lower-case letters, digits, '-' and '.', at most 63", o.NodeName))
	}
	if o.HTTPListener == nil {
		if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("--http-addr: %q: %w", o.HTTPAddr, err))
		}
	}
	if o.GRPCListener == nil {
		if _, _, err := net.SplitHostPort(o.GRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("--grpc-addr: %q: %w", o.GRPCAddr, err))
		}
	}
	if (o.HTTPTLSCert == "") != (o.HTTPTLSKey == "") {
		errs = append(errs, errors.New("--http-tls-cert and --http-tls-key: give both or neither"))
	}
	if len(o.EtcdEndpoints) == 0 {
		if o.EtcdCAFile != "" || o.EtcdCertFile != "" || o.EtcdUsername != "" {
			errs = append(errs, errors.New("--etcd-ca/--etcd-cert/--etcd-username: only with --etcd-endpoints"))
		}
	}
	if (o.EtcdCertFile == "") != (o.EtcdKeyFile == "") {
		errs = append(errs, errors.New("--etcd-cert and --etcd-key: give both or neither"))
	}
	errs = append(errs, o.validateEtcdCluster(), o.validateCluster(), o.sensorCerts().ValidateCerts(), o.validateDB())
	return errors.Join(errs...)
}

// sensorCerts is the part of the sensor service's options that sets the
// certificate lifetimes.
func (o *Options) sensorCerts() sensorsvc.Options {
	return sensorsvc.Options{
		CertValidity:   o.SensorCertValidity,
		CertRenewFrom:  o.SensorCertRenewFrom,
		CertRenewUntil: o.SensorCertRenewUntil,
	}
}

// validateDB checks the SQL store's options.
func (o *Options) validateDB() error {
	var errs []error
	if o.DBURL == "" && (o.EtcdInitialCluster != "" || len(o.EtcdEndpoints) > 0 || len(o.Join) > 0) {
		errs = append(errs, errors.New("--db-url: required for a node of a cluster, which shares its message records and alerts with the other nodes in one PostgreSQL (postgres://user@host/osprey?target_session_attrs=read-write); only a node alone keeps them in SQLite in its data dir"))
	}
	if o.DBURL != "" {
		if err := sqlstore.CheckURL(o.DBURL); err != nil {
			errs = append(errs, fmt.Errorf("--db-url: %w", err))
		}
	}
	if o.MessageRetention != 0 && o.MessageRetention < sqlstore.MinMessageRetention {
		errs = append(errs, fmt.Errorf("--message-retention: %s: want at least %s (a record also recognises a sensor's retry of its upload)", o.MessageRetention, sqlstore.MinMessageRetention))
	}
	return errors.Join(errs...)
}

// validateEtcdCluster checks the embedded member's cluster options.
func (o *Options) validateEtcdCluster() error {
	var errs []error
	switch o.EtcdInitialClusterState {
	case "", "new":
	case "existing":
		if o.EtcdInitialCluster == "" {
			errs = append(errs, errors.New("--etcd-initial-cluster-state existing: needs --etcd-initial-cluster"))
		}
	default:
		errs = append(errs, fmt.Errorf("--etcd-initial-cluster-state: %q: want new or existing", o.EtcdInitialClusterState))
	}
	if o.EtcdInitialCluster == "" {
		return errors.Join(errs...)
	}
	if len(o.EtcdEndpoints) > 0 {
		errs = append(errs, errors.New("--etcd-initial-cluster: only with the embedded etcd, not with --etcd-endpoints"))
	}
	if _, err := etcdembed.MemberPeerURLs(o.EtcdInitialCluster, o.NodeName); err != nil {
		errs = append(errs, fmt.Errorf("--etcd-initial-cluster: %w", err))
	} else {
		members, _ := etcdembed.ParseInitialCluster(o.EtcdInitialCluster)
		for _, name := range slices.Sorted(maps.Keys(members)) {
			for _, u := range members[name] {
				if u.Scheme != "https" {
					errs = append(errs, fmt.Errorf("--etcd-initial-cluster: %s=%s: the members talk mutual TLS (with certificates from the cluster key), so peer URLs are https://", name, u.String()))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// servesTLS says whether the API and web UI are served over HTTPS: always,
// but on a dev node without --http-tls-cert.
func (o *Options) servesTLS() bool { return !o.Dev || o.HTTPTLSCert != "" }

// devLoopback is where a dev node gossips and answers DNS when no address
// is given: a cluster of one, on ports the kernel picks.
const devLoopback = "127.0.0.1:0"

// clusterDefaults fills what a dev node may leave out (Run and Validate
// both see it so).
func (o Options) clusterDefaults() Options {
	if o.Dev {
		o.GossipAddr = cmp.Or(o.GossipAddr, devLoopback)
		o.DNSAddr = cmp.Or(o.DNSAddr, devLoopback)
	}
	return o
}

// validateCluster checks the gossip and DNS options, with their packages'
// own validation. Their node name checks are left to Validate's.
func (o *Options) validateCluster() error {
	withDefaults := o.clusterDefaults()
	o = &withDefaults
	var errs []error
	g := o.gossipOptions()
	g.NodeName = "node"
	if err := g.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch o.GossipTiming {
	case "", GossipTuned, GossipLAN:
	default:
		errs = append(errs, fmt.Errorf("--gossip-timing: %q: want %s or %s", o.GossipTiming, GossipTuned, GossipLAN))
	}
	if o.DNSAddr == "" {
		errs = append(errs, errors.New("--dns-addr: required"))
	}
	d := dnsserver.Options{Zone: cmp.Or(o.DNSZone, DefaultDNSZone), NodeName: "node", View: noView{}, Addr: o.DNSAddr, TTL: o.DNSTTL}
	if validNodeName(o.NodeName) {
		d.NodeName = o.NodeName
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// noView stands for the DNS view while the options are validated.
type noView struct{}

func (noView) Healthy(gossip.Role) []gossip.Member { return nil }
func (noView) Quorum() bool                        { return false }

func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '.'))
		if !ok {
			return false
		}
	}
	return true
}

// Run starts the node and serves until ctx ends or a component fails, then
// shuts every component down (bounded in time) and returns.
func Run(ctx context.Context, opts Options) error {
	opts = opts.clusterDefaults()
	if err := opts.Validate(); err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", opts.NodeName)
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	if opts.ClusterKeyFile == "" {
		opts.ClusterKeyFile = filepath.Join(opts.DataDir, "cluster.key")
	}
	kek, err := pki.LoadOrCreateKEK(opts.ClusterKeyFile)
	if err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	cli, embedded, err := connectEtcd(ctx, opts, kek, log)
	if err != nil {
		return err
	}
	if embedded != nil {
		defer embedded.Close()
	} else {
		defer cli.Close()
	}

	grpcLn := opts.GRPCListener
	if grpcLn == nil {
		if grpcLn, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
			return fmt.Errorf("listen for gRPC: %w", err)
		}
	}
	defer grpcLn.Close()
	db, err := openDB(ctx, opts, log)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := newNode(ctx, opts, kek, cli, db, grpcLn.Addr(), log)
	if err != nil {
		return err
	}

	ln := opts.HTTPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
			return fmt.Errorf("listen for HTTP: %w", err)
		}
	}
	httpAddr := ln.Addr()
	scheme := "http"
	var cert *httpCert
	if opts.servesTLS() {
		if cert, err = httpTLSConfig(opts, []net.Addr{httpAddr, grpcLn.Addr()}, log); err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, cert.config)
		scheme = "https"
	}
	httpURL := scheme + "://" + advertised(httpAddr)
	cluster, err := startCluster(ctx, opts, clusterDeps{
		store: n.store, etcdRead: n.etcdRead, sqlPing: db.Ping, ca: n.ca.Cert, grpcAddr: grpcLn.Addr(), httpAddr: httpAddr,
		httpURL: httpURL, registry: n.registry, log: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer cluster.close()
	n.cluster.Store(cluster)
	srv := &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve HTTP: %w", err)
		}
		return nil
	})
	// The status writer outlives the gRPC server, so the streams that close
	// at shutdown are recorded offline before the node's lease is revoked.
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	statusDone := make(chan error, 1)
	go func() { statusDone <- n.status.Run(statusCtx) }()
	g.Go(func() error {
		if err := n.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		n.sensors.Shutdown()
		stopGRPC(n.grpc, 5*time.Second)
		stopStatus()
		return <-statusDone
	})
	cluster.run(gctx, g)
	g.Go(func() error { return n.configs.Run(gctx) })
	g.Go(func() error { return n.rules.Run(gctx) })
	g.Go(func() error { return n.sweeper.Run(gctx) })
	g.Go(func() error { return n.exports.Run(gctx) })
	g.Go(func() error { return n.feeder.Run(gctx) })
	g.Go(func() error { return n.exporter.Run(gctx) })
	if embedded != nil {
		g.Go(func() error {
			select {
			case err := <-embedded.Err():
				return fmt.Errorf("embedded etcd: %w", err)
			case <-gctx.Done():
				return nil
			}
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})

	ready := n.ready
	ready.HTTPURL = httpURL
	ready.GRPCAddr = advertised(grpcLn.Addr())
	ready.Etcd = cli
	ready.Metrics = n.registry
	if embedded != nil {
		ready.EtcdEndpoints = embedded.Endpoints()
	}
	ready.GossipAddr, ready.GossipEncrypted = cluster.gossipAddr(), opts.GossipKey != "" || opts.GossipKeyringFile != ""
	ready.DNSAddr, ready.DNSZone = cluster.dnsAddr(), cluster.zone
	if cert != nil {
		ready.HTTPCertFingerprint, ready.HTTPCertSelfSigned = cert.fingerprint, cert.selfSigned
	}
	log.Info("central node ready", "http", ready.HTTPURL, "http_cert_sha256", ready.HTTPCertFingerprint, "grpc", ready.GRPCAddr,
		"etcd", strings.Join(ready.EtcdEndpoints, ","), "gossip", ready.GossipAddr, "dns", ready.DNSAddr, "zone", ready.DNSZone)
	if opts.OnReady != nil {
		opts.OnReady(ready)
	}
	err = g.Wait()
	log.Info("central node stopped")
	return err
}

// openDB opens the SQL store: PostgreSQL at --db-url, or SQLite in the data
// dir.
func openDB(ctx context.Context, opts Options, log *slog.Logger) (*sqlstore.Store, error) {
	url := opts.DBURL
	if url == "" {
		url = filepath.Join(opts.DataDir, "osprey.db")
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: url, AlertRetention: opts.AlertRetention,
		MessageRetention: opts.MessageRetention, Logger: log.With("component", "sqlstore")})
	if err != nil {
		return nil, fmt.Errorf("message store: %w", err)
	}
	return db, nil
}

// connectEtcd starts the embedded member or connects to the external cluster.
func connectEtcd(ctx context.Context, opts Options, kek []byte, log *slog.Logger) (*clientv3.Client, *etcdembed.Server, error) {
	if len(opts.EtcdEndpoints) > 0 {
		cfg := clientv3.Config{
			Endpoints:   opts.EtcdEndpoints,
			DialTimeout: 5 * time.Second,
			Username:    opts.EtcdUsername,
			Password:    opts.EtcdPassword,
			Context:     ctx,
			Logger:      nil,
		}
		if opts.EtcdCAFile != "" || opts.EtcdCertFile != "" {
			tc, err := EtcdClientTLS(opts.EtcdCAFile, opts.EtcdCertFile, opts.EtcdKeyFile)
			if err != nil {
				return nil, nil, err
			}
			cfg.TLS = tc
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(opts.EtcdEndpoints, ","), err)
		}
		return cli, nil, nil
	}
	peerAddr := opts.EtcdPeerAddr
	if peerAddr == "" && opts.EtcdInitialCluster != "" {
		// Listen where the initial cluster says the others reach this member.
		if own, err := etcdembed.MemberPeerURLs(opts.EtcdInitialCluster, opts.NodeName); err == nil {
			peerAddr = own[0].Host
		}
	}
	if host, _, err := net.SplitHostPort(opts.EtcdClientAddr); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("the embedded etcd's client listener is not on loopback: it serves every tenant's data, without authentication, to whoever reaches it",
				"etcd_client_addr", opts.EtcdClientAddr)
		}
	}
	// The members authenticate each other with certificates from a CA
	// that every holder of the cluster key derives: etcd, where the
	// cluster CA lives, is not readable yet.
	peerCA, err := pki.DeriveCA(kek, "etcd peers", "Osprey etcd peer CA")
	if err != nil {
		return nil, nil, err
	}
	srv, err := etcdembed.Start(ctx, etcdembed.Options{
		Name:           opts.NodeName,
		Dir:            filepath.Join(opts.DataDir, "etcd"),
		ClientAddr:     opts.EtcdClientAddr,
		PeerAddr:       peerAddr,
		InitialCluster: opts.EtcdInitialCluster,
		ClusterState:   opts.EtcdInitialClusterState,
		Logger:         log.With("component", "etcd"),
		PeerTLS:        &etcdembed.PeerTLS{CA: peerCA, Dir: filepath.Join(opts.DataDir, "etcd-peer-tls")},
	})
	if err != nil {
		return nil, nil, err
	}
	return srv.Client(), srv, nil
}

// advertised turns a listener address into one a browser can use: a wildcard
// host becomes loopback.
func advertised(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// stopGRPC stops the server gracefully, or at once after timeout: configuration
// streams never end by themselves.
func stopGRPC(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
		<-done
	}
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
