// Package etcdembed runs an etcd member inside a Central Node process.
//
// A Central Node either embeds etcd (one member of a single-member cluster in
// `osprey dev`, or one member of a quorum formed by the central nodes) or talks to
// an external cluster. This package covers the first case: it starts the member,
// waits until it has joined and is ready, bridges etcd's zap logs into slog, and
// hands out clients. The rest of the node only ever sees a *clientv3.Client, so
// both cases look the same above this package.
package etcdembed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/pkg/pki"
)

// Options configures an embedded etcd member.
type Options struct {
	// Name is the member name; it must match this member's entry in InitialCluster.
	Name string
	// Dir holds the member's data. It is created with mode 0700 if missing.
	Dir string
	// ClientAddr is the host:port to serve etcd clients on ("127.0.0.1:0" picks a port).
	ClientAddr string
	// PeerAddr is the host:port for raft traffic between members.
	PeerAddr string
	// InitialCluster is "name=http://host:port,..." for a multi-member cluster;
	// empty means a single-member cluster made of this member alone.
	InitialCluster string
	// ClusterState is "new" (the default) or "existing" when joining a running cluster.
	ClusterState string
	// StartTimeout bounds how long Start waits for the member to be ready.
	StartTimeout time.Duration
	// Logger receives etcd's logs (at warn and above unless Debug is set).
	Logger *slog.Logger
	// Debug passes etcd's info logs through too.
	Debug bool
	// PeerTLS, when set, makes the traffic between members mutual TLS:
	// peer URLs are then https://. Nil leaves it plaintext (http://),
	// for a member alone on loopback.
	PeerTLS *PeerTLS
}

// PeerTLS is how members authenticate each other: each presents a
// certificate that CA signed, for both ends of a connection, and accepts
// only such certificates. Every member must have the same CA (the central
// nodes derive it from the cluster key; see pki.DeriveCA).
type PeerTLS struct {
	CA *pki.CA
	// Dir receives the member's certificate and key, made at each start
	// (etcd reads them from files, at each handshake, which is how a
	// renewed certificate takes effect).
	Dir string
}

// peerCertValidity is the lifetime of a member's peer certificate; it is
// renewed when a third of it is left.
const peerCertValidity = 30 * 24 * time.Hour

// Server is a running embedded etcd member.
type Server struct {
	etcd *embed.Etcd
	cli  *clientv3.Client
	// stopping is set by Close: etcd then reports its listeners closing
	// as errors, which the log bridge lowers to info.
	stopping *atomic.Bool
	scheme   string        // of the peer URLs
	renewed  chan struct{} // closed when the renewal of the peer certificate has stopped
	stop     chan struct{} // closed by Close
	close    sync.Once
}

// Start starts the member and waits until it is ready to serve, or ctx ends,
// or StartTimeout passes.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Name == "" {
		opts.Name = "default"
	}
	if opts.Dir == "" {
		return nil, errors.New("etcd data dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = opts.Name
	cfg.Dir = filepath.Clean(opts.Dir)
	clientURL, err := httpURL(opts.ClientAddr, "127.0.0.1:2379")
	if err != nil {
		return nil, fmt.Errorf("etcd client address: %w", err)
	}
	peerURL, err := httpURL(opts.PeerAddr, "127.0.0.1:2380")
	if err != nil {
		return nil, fmt.Errorf("etcd peer address: %w", err)
	}
	scheme := "http"
	if opts.PeerTLS != nil {
		scheme = "https"
	}
	if !strings.Contains(opts.PeerAddr, "://") {
		peerURL.Scheme = scheme
	}
	if peerURL.Scheme != scheme {
		return nil, peerSchemeError(peerURL.String(), scheme)
	}
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	if opts.InitialCluster != "" {
		// The other members know this one by its entry in the initial
		// cluster, whatever address it listens on (0.0.0.0, say).
		members, err := ParseInitialCluster(opts.InitialCluster)
		if err != nil {
			return nil, err
		}
		for name, urls := range members {
			for _, u := range urls {
				if u.Scheme != scheme {
					return nil, peerSchemeError(name+"="+u.String(), scheme)
				}
			}
		}
		own, err := MemberPeerURLs(opts.InitialCluster, opts.Name)
		if err != nil {
			return nil, err
		}
		cfg.InitialCluster = opts.InitialCluster
		cfg.AdvertisePeerUrls = own
	} else {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	cfg.AdvertiseClientUrls = []url.URL{advertisedClientURL(*clientURL, cfg.AdvertisePeerUrls[0])}
	switch opts.ClusterState {
	case "", embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting:
		if opts.ClusterState != "" {
			cfg.ClusterState = opts.ClusterState
		}
	default:
		return nil, fmt.Errorf("etcd initial cluster state %q: want %q or %q", opts.ClusterState, embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting)
	}
	// Keep a day of history for watchers that resume by revision, then compact.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "24h"
	// The cluster's configuration and alerts are small; 2 GiB is etcd's
	// default quota, stated here so the operator documentation has one source.
	cfg.QuotaBackendBytes = 2 << 30
	level := zap.WarnLevel
	if opts.Debug {
		level = zap.InfoLevel
	}
	var peerCert *peerCert
	if opts.PeerTLS != nil {
		if peerCert, err = newPeerCert(opts.PeerTLS, peerHosts(*peerURL, cfg.AdvertisePeerUrls)); err != nil {
			return nil, err
		}
		cfg.PeerTLSInfo = transport.TLSInfo{
			CertFile:      peerCert.certFile,
			KeyFile:       peerCert.keyFile,
			TrustedCAFile: peerCert.caFile,
			// Only a certificate from the CA is accepted, and only a holder
			// of the CA's key (the cluster key) can have one. etcd's check
			// that a peer's certificate names the address it connects from
			// adds nothing to that, and fails behind NAT and on hosts with
			// several addresses.
			ClientCertAuth:      true,
			SkipClientSANVerify: true,
			MinVersion:          tls.VersionTLS12,
		}
	}
	stopping := new(atomic.Bool)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(opts.Logger.Handler(), level, stopping)))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	timer := time.NewTimer(opts.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("wait for embedded etcd: %w", ctx.Err())
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after %s (is the quorum reachable?)", opts.StartTimeout)
	}
	cli, err := newClient(e, opts.Logger, stopping)
	if err != nil {
		e.Close()
		return nil, err
	}
	srv := &Server{etcd: e, cli: cli, stopping: stopping, scheme: scheme,
		renewed: make(chan struct{}), stop: make(chan struct{})}
	if peerCert != nil {
		go srv.renewPeerCert(peerCert, opts.Logger)
	} else {
		close(srv.renewed)
	}
	return srv, nil
}

// renewPeerCert keeps the member's peer certificate valid until Close.
func (s *Server) renewPeerCert(pc *peerCert, log *slog.Logger) {
	defer close(s.renewed)
	for {
		t := time.NewTimer(time.Until(pc.renewAt()))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if err := pc.renew(time.Now()); err != nil {
			log.Error("renew the etcd peer certificate", "err", err)
			// Try again in a while: the certificate is still valid for a
			// third of its life.
			pc.retryAt = time.Now().Add(time.Hour)
			continue
		}
		log.Info("renewed the etcd peer certificate", "not_after", pc.notAfter)
	}
}

// newClient connects a client to the member's own client listener: a real
// gRPC connection over loopback, as any other client's.
//
// It is not etcd's in-process client (v3client), which joins client and
// server with Go channels instead of a connection: without HTTP/2 flow
// control between them, a storm of watch cancellations (a thousand sensor
// streams ending at once) deadlocks its watch multiplexer, and with it every
// watch of the node and the node's shutdown (etcd issues 18879 and 20716).
func newClient(e *embed.Etcd, log *slog.Logger, stopping *atomic.Bool) (*clientv3.Client, error) {
	if len(e.Clients) == 0 {
		return nil, errors.New("embedded etcd serves no clients")
	}
	addr := e.Clients[0].Addr().(*net.TCPAddr)
	host := addr.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
		if addr.IP.To4() == nil {
			host = net.IPv6loopback
		}
	}
	endpoint := "http://" + net.JoinHostPort(host.String(), strconv.Itoa(addr.Port))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.New(newSlogCore(log.Handler(), zap.WarnLevel, stopping)),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded etcd at %s: %w", endpoint, err)
	}
	return cli, nil
}

// Client returns a client of this member, connected over loopback. It is
// closed by Close.
func (s *Server) Client() *clientv3.Client { return s.cli }

// Endpoints returns the URLs at which this member serves etcd clients.
func (s *Server) Endpoints() []string {
	eps := make([]string, 0, len(s.etcd.Clients))
	for _, l := range s.etcd.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	return eps
}

// PeerURLs returns the URLs at which this member serves raft peers.
func (s *Server) PeerURLs() []string {
	urls := make([]string, 0, len(s.etcd.Peers))
	for _, p := range s.etcd.Peers {
		urls = append(urls, s.scheme+"://"+p.Addr().String())
	}
	return urls
}

// Err reports a fatal error of the running member.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member and waits for it to release its data dir. Calls
// after the first do nothing.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.stop)
		<-s.renewed
		s.stopping.Store(true)
		s.cli.Close()
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
	})
}

// ParseInitialCluster parses "name=https://host:port,..." (a member may
// have several entries, one per peer URL) into each member's peer URLs.
// Peer URLs are https:// with PeerTLS, http:// without (see Start).
func ParseInitialCluster(s string) (map[string][]url.URL, error) {
	out := make(map[string][]url.URL)
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, raw, ok := strings.Cut(entry, "=")
		if !ok || name == "" || raw == "" {
			return nil, fmt.Errorf("etcd initial cluster: %q: want name=https://host:port", entry)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("etcd initial cluster: %q: %w", entry, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Port() == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
			return nil, fmt.Errorf("etcd initial cluster: %q: want name=https://host:port", entry)
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
			return nil, fmt.Errorf("etcd initial cluster: %q: a peer URL needs the address the other members reach, not %s", entry, u.Hostname())
		}
		u.Path = ""
		out[name] = append(out[name], *u)
	}
	if len(out) == 0 {
		return nil, errors.New("etcd initial cluster: empty")
	}
	return out, nil
}

func peerSchemeError(entry, scheme string) error {
	if scheme == "https" {
		return fmt.Errorf("etcd peer URL %q: members talk mutual TLS, so it must be https://", entry)
	}
	return fmt.Errorf("etcd peer URL %q: https:// needs peer TLS, which this member is not given", entry)
}

// MemberPeerURLs returns the peer URLs of member name in the initial cluster.
func MemberPeerURLs(initialCluster, name string) ([]url.URL, error) {
	members, err := ParseInitialCluster(initialCluster)
	if err != nil {
		return nil, err
	}
	own, ok := members[name]
	if !ok {
		return nil, fmt.Errorf("etcd initial cluster: no entry for this member, %q", name)
	}
	return own, nil
}

// advertisedClientURL is the client URL other members and etcdctl are told:
// the listen URL, with the peer URL's host when it listens on every address.
func advertisedClientURL(listen, peer url.URL) url.URL {
	if ip := net.ParseIP(listen.Hostname()); ip != nil && ip.IsUnspecified() {
		listen.Host = net.JoinHostPort(peer.Hostname(), listen.Port())
	}
	return listen
}

func httpURL(addr, def string) (*url.URL, error) {
	if addr == "" {
		addr = def
	}
	if strings.Contains(addr, "://") {
		return url.Parse(addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}
