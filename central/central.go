// Package central is the Central Node: it owns the lifecycle of every component
// of a node (etcd, the configuration store, the REST API, and later the sensor
// service, gossip, DNS and scanning) and composes them under one Run(ctx).
//
// cmd/osprey parses flags into Options and calls Run; tests start whole nodes
// in-process through the same call, on listeners bound to 127.0.0.1:0.
package central

import (
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
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/ospreysec/osprey/central/etcdembed"
)

// Options configures a Central Node.
type Options struct {
	// NodeName names this node in the cluster, in etcd, and as its own sensor.
	NodeName string
	// DataDir holds the embedded etcd's data and the node's local secrets.
	DataDir string
	// Dev runs the single-process trial mode: plain HTTP on loopback, text logs,
	// and the node's own Sensor component registered and approved.
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

	// BootstrapAdminPassword is the first admin's password on a new cluster.
	// When empty one is generated and written to DataDir/initial-admin-password.
	BootstrapAdminPassword string

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnReady, when set, is called once the node serves.
	OnReady func(Ready)
}

// Ready tells where a started node can be reached.
type Ready struct {
	// HTTPURL is the base URL of the REST API and web UI.
	HTTPURL string
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
	// LocalSensorJoinToken, in dev, enrolls the node's own Sensor component
	// (bound to LocalSensorID) when it has no identity yet.
	LocalSensorJoinToken string
	// EtcdEndpoints are the embedded etcd member's client URLs (none with an external etcd).
	EtcdEndpoints []string
	// LocalSensorID is the id of the node's own Sensor component, in dev.
	LocalSensorID string
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
	return errors.Join(errs...)
}

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

	cli, embedded, err := connectEtcd(ctx, opts, log)
	if err != nil {
		return err
	}
	if embedded != nil {
		defer embedded.Close()
	} else {
		defer cli.Close()
	}

	if opts.ClusterKeyFile == "" {
		opts.ClusterKeyFile = filepath.Join(opts.DataDir, "cluster.key")
	}
	grpcLn := opts.GRPCListener
	if grpcLn == nil {
		if grpcLn, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
			return fmt.Errorf("listen for gRPC: %w", err)
		}
	}
	defer grpcLn.Close()
	n, err := newNode(ctx, opts, cli, grpcLn.Addr(), log)
	if err != nil {
		return err
	}

	ln := opts.HTTPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
			return fmt.Errorf("listen for HTTP: %w", err)
		}
	}
	scheme := "http"
	if !opts.Dev || opts.HTTPTLSCert != "" {
		cfg, err := httpTLSConfig(opts, log)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, cfg)
		scheme = "https"
	}
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
	ready.HTTPURL = scheme + "://" + advertised(ln.Addr())
	ready.GRPCAddr = advertised(grpcLn.Addr())
	if embedded != nil {
		ready.EtcdEndpoints = embedded.Endpoints()
	}
	log.Info("central node ready", "http", ready.HTTPURL, "grpc", ready.GRPCAddr, "etcd", strings.Join(ready.EtcdEndpoints, ","))
	if opts.OnReady != nil {
		opts.OnReady(ready)
	}
	err = g.Wait()
	log.Info("central node stopped")
	return err
}

// connectEtcd starts the embedded member or connects to the external cluster.
func connectEtcd(ctx context.Context, opts Options, log *slog.Logger) (*clientv3.Client, *etcdembed.Server, error) {
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
			tc, err := etcdClientTLS(opts)
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
	srv, err := etcdembed.Start(ctx, etcdembed.Options{
		Name:       opts.NodeName,
		Dir:        filepath.Join(opts.DataDir, "etcd"),
		ClientAddr: opts.EtcdClientAddr,
		PeerAddr:   opts.EtcdPeerAddr,
		Logger:     log.With("component", "etcd"),
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
