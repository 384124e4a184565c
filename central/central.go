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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/pkg/pki"
)

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
	// Primary says the node is a PCN (--pcn): SCNs join it on GRPCAddr,
	// pinned to CAHash.
	Primary bool
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

	grpcLn := opts.GRPC.Listener
	if grpcLn == nil {
		if grpcLn, err = net.Listen("tcp", opts.GRPC.Addr); err != nil {
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

	ln := opts.HTTP.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.HTTP.Addr); err != nil {
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
		store: n.store, etcdRead: n.etcdRead, sqlPing: db.Ping, spamHealth: n.spamHealth(), ca: n.ca.Cert, grpcAddr: grpcLn.Addr(), httpAddr: httpAddr,
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

	// The node's components in the order they start; they stop in the
	// reverse order, each once those after it have stopped. The caches and
	// feeds come first, for the servers use them; the SIEM exporter comes
	// before its feeder, which enqueues into it until it stops; the status
	// writer outlives the gRPC server, so the streams that close at
	// shutdown are recorded offline before the node's lease is revoked; the
	// node joins the cluster (gossip, and with it the DNS answers) once it
	// serves, and leaves it before it stops serving, so mail servers and
	// sensors turn to the other nodes first.
	var components []component
	if embedded != nil {
		components = append(components, component{"etcd", func(ctx context.Context) error {
			select {
			case err := <-embedded.Err():
				return fmt.Errorf("embedded etcd: %w", err)
			case <-ctx.Done():
				return nil
			}
		}})
	}
	components = append(components,
		component{"config-hub", n.configs.Run},
		component{"rule-cache", n.rules.Run},
		component{"export-cache", n.exports.Run},
		component{"policy-cache", n.policies.Run},
		component{"quarantine", n.quarantine.Run},
		component{"retention", n.sweeper.Run},
		component{"siem", n.exporter.Run},
		component{"siemfeed", n.feeder.Run},
		component{"sensor-requests", n.requests.Run},
		component{"sensor-status", n.status.Run},
		component{"sensor-balance", n.balancer.Run},
	)
	if n.primary != nil {
		// Before the gRPC server: a link records itself under its lease.
		components = append(components, component{"hierarchy-primary", n.primary.Run}, component{"uplink-clean", n.uplinkIn.Run})
	}
	components = append(components,
		component{"grpc", func(ctx context.Context) error {
			return serveUntil(ctx, func() error {
				if err := n.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
					return fmt.Errorf("serve gRPC: %w", err)
				}
				return nil
			}, func() error {
				n.sensors.Shutdown()
				stopGRPC(n.grpc, 5*time.Second)
				return nil
			})
		}},
		component{"http", func(ctx context.Context) error {
			return serveUntil(ctx, func() error {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("serve HTTP: %w", err)
				}
				return nil
			}, func() error {
				shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				return srv.Shutdown(shutdownCtx)
			})
		}},
	)
	// The uplink (an SCN's link to its PCN) reads the node's counts.
	components = append(components, component{"hierarchy-uplink", n.secondary.Run})
	components = append(components, cluster.components()...)

	ready := n.ready
	ready.HTTPURL = httpURL
	ready.GRPCAddr = advertised(grpcLn.Addr())
	ready.Primary = opts.Hierarchy.Primary
	ready.Etcd = cli
	ready.Metrics = n.registry
	if embedded != nil {
		ready.EtcdEndpoints = embedded.Endpoints()
	}
	ready.GossipAddr, ready.GossipEncrypted = cluster.gossipAddr(), opts.Gossip.Key != "" || opts.Gossip.KeyringFile != ""
	ready.DNSAddr, ready.DNSZone = cluster.dnsAddr(), cluster.zone
	if cert != nil {
		ready.HTTPCertFingerprint, ready.HTTPCertSelfSigned = cert.fingerprint, cert.selfSigned
	}
	err = runComponents(ctx, log, components, func() {
		log.Info("central node ready", "http", ready.HTTPURL, "http_cert_sha256", ready.HTTPCertFingerprint, "grpc", ready.GRPCAddr,
			"etcd", strings.Join(ready.EtcdEndpoints, ","), "gossip", ready.GossipAddr, "dns", ready.DNSAddr, "zone", ready.DNSZone)
		if opts.OnReady != nil {
			opts.OnReady(ready)
		}
	})
	log.Info("central node stopped")
	return err
}

// openDB opens the SQL store: PostgreSQL at --db-url, or SQLite in the data
// dir.
func openDB(ctx context.Context, opts Options, log *slog.Logger) (*sqlstore.Store, error) {
	url := opts.DB.URL
	if url == "" {
		url = filepath.Join(opts.DataDir, "osprey.db")
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: url, AlertRetention: opts.DB.AlertRetention,
		MessageRetention: opts.DB.MessageRetention, Logger: log.With("component", "sqlstore")})
	if err != nil {
		return nil, fmt.Errorf("message store: %w", err)
	}
	return db, nil
}

// connectEtcd starts the embedded member or connects to the external cluster.
func connectEtcd(ctx context.Context, opts Options, kek []byte, log *slog.Logger) (*clientv3.Client, *etcdembed.Server, error) {
	if len(opts.Etcd.Endpoints) > 0 {
		cfg := clientv3.Config{
			Endpoints:   opts.Etcd.Endpoints,
			DialTimeout: 5 * time.Second,
			Username:    opts.Etcd.Username,
			Password:    opts.Etcd.Password,
			Context:     ctx,
			Logger:      nil,
		}
		if opts.Etcd.CAFile != "" || opts.Etcd.CertFile != "" {
			tc, err := EtcdClientTLS(opts.Etcd.CAFile, opts.Etcd.CertFile, opts.Etcd.KeyFile)
			if err != nil {
				return nil, nil, err
			}
			cfg.TLS = tc
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(opts.Etcd.Endpoints, ","), err)
		}
		return cli, nil, nil
	}
	peerAddr := opts.Etcd.PeerAddr
	if peerAddr == "" && opts.Etcd.InitialCluster != "" {
		// Listen where the initial cluster says the others reach this member.
		if own, err := etcdembed.MemberPeerURLs(opts.Etcd.InitialCluster, opts.NodeName); err == nil {
			peerAddr = own[0].Host
		}
	}
	if host, _, err := net.SplitHostPort(opts.Etcd.ClientAddr); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("the embedded etcd's client listener is not on loopback: it serves every tenant's data, without authentication, to whoever reaches it",
				"etcd_client_addr", opts.Etcd.ClientAddr)
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
		ClientAddr:     opts.Etcd.ClientAddr,
		PeerAddr:       peerAddr,
		InitialCluster: opts.Etcd.InitialCluster,
		ClusterState:   opts.Etcd.InitialClusterState,
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

// serveUntil runs serve until ctx ends, then stop, and returns serve's error
// (or stop's, when serve had none) once serve has returned. serve returning
// by itself, before ctx ends, is a failure even without an error.
func serveUntil(ctx context.Context, serve, stop func() error) error {
	served := make(chan error, 1)
	go func() { served <- serve() }()
	select {
	case err := <-served:
		if err == nil {
			err = errors.New("stopped serving")
		}
		return err
	case <-ctx.Done():
	}
	stopErr := stop()
	return cmp.Or(<-served, stopErr)
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
