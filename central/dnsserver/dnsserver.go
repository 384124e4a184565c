// Package dnsserver is the DNS responder of a Central Node: every node is
// authoritative for the cluster's zone and answers from its own gossip view,
// so a mail server or a sensor that resolves the cluster's names only ever
// gets nodes that are alive and healthy.
//
// Design notes:
//
//   - Names (zone "cluster.example."):
//     smtp.<zone> A/AAAA: the nodes whose SMTP listener is healthy;
//     central.<zone> A/AAAA: the nodes whose gRPC API is healthy;
//     _smtp._tcp.<zone> and _osprey-grpc._tcp.<zone> SRV: the same nodes,
//     with targets <node>.nodes.<zone>, which answer A/AAAA;
//     the apex answers SOA and NS (the healthy central nodes, which run this
//     responder). Other names in the zone are NXDOMAIN, other types NODATA,
//     both with the SOA for negative caching; names outside the zone are
//     REFUSED. No recursion (RA=0); answers are authoritative (AA=1).
//   - Every healthy node is returned when it fits, not a fixed few, rotated
//     round robin per query, with a short TTL (5 s by default) so a dead node
//     leaves resolvers' caches quickly. When a UDP answer does not fit the
//     client's EDNS0 size (512 bytes without EDNS0) it is truncated with TC=1
//     and the client asks again over TCP, which gets everything.
//   - A node cut off from the others sees them all dead and would answer
//     with itself alone. Whenever the View says this node has lost the etcd
//     quorum it answers SERVFAIL instead, so resolvers ask another node.
//   - Answers are computed per query from the View; there is no zone data
//     to keep in sync.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/ospreysec/osprey/central/gossip"
)

// Defaults of the Options.
const (
	DefaultTTL         = 5 * time.Second
	DefaultMaxUDPSize  = 1232 // the DNS flag day 2020 size, safe from fragmentation
	DefaultMaxTCPConns = 256
	DefaultTimeout     = 2 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("dns server closed")

// View is the cluster as this node sees it.
type View interface {
	// Healthy returns the members that serve role now (see gossip.Cluster.Healthy).
	Healthy(role gossip.Role) []gossip.Member
	// Quorum reports whether this node reaches the etcd quorum, that is,
	// whether its view can be trusted.
	Quorum() bool
}

// Membership is the part of a View that the gossip cluster provides.
type Membership interface {
	Healthy(role gossip.Role) []gossip.Member
}

// NewView makes a View of the gossip membership and a quorum check.
func NewView(m Membership, quorum func() bool) View { return view{m, quorum} }

type view struct {
	Membership
	quorum func() bool
}

func (v view) Quorum() bool { return v.quorum() }

// Options configures a Server.
type Options struct {
	// Zone is the zone this server is authoritative for (--dns-zone), such as
	// "cluster.example."; the final dot is optional.
	Zone string
	// NodeName is this node's name, the primary name server in the SOA.
	NodeName string
	// View is where answers come from.
	View View
	// Addr is where ListenAndServe and Run listen, UDP and TCP (--dns-addr).
	Addr string
	// TTL of every record (and of negative answers). Default DefaultTTL.
	TTL time.Duration
	// MaxUDPSize caps the EDNS0 UDP size honoured. Default DefaultMaxUDPSize.
	MaxUDPSize int
	// MaxTCPConns limits concurrent TCP connections. Default DefaultMaxTCPConns.
	MaxTCPConns int
	// Timeout bounds reading a query and writing an answer. Default DefaultTimeout.
	Timeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, registers the server's metrics.
	Registerer prometheus.Registerer
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	zone := dns.CanonicalName(o.Zone)
	if o.Zone == "" {
		errs = append(errs, errors.New("--dns-zone: required"))
	} else if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		errs = append(errs, fmt.Errorf("--dns-zone: %q: not a domain name", o.Zone))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name: required"))
	} else if _, ok := dns.IsDomainName(o.NodeName + ".nodes." + zone); !ok {
		errs = append(errs, fmt.Errorf("--node-name: %q: not usable in a DNS name", o.NodeName))
	}
	if o.View == nil {
		errs = append(errs, errors.New("dns view: required"))
	}
	if o.Addr != "" {
		if _, _, err := net.SplitHostPort(o.Addr); err != nil {
			errs = append(errs, fmt.Errorf("--dns-addr: %q: %w", o.Addr, err))
		}
	}
	if o.TTL < 0 || o.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("dns TTL: %v: want 0 to 24h", o.TTL))
	}
	if o.MaxUDPSize != 0 && (o.MaxUDPSize < dns.MinMsgSize || o.MaxUDPSize > dns.MaxMsgSize) {
		errs = append(errs, fmt.Errorf("dns max UDP size: %d: want %d to %d", o.MaxUDPSize, dns.MinMsgSize, dns.MaxMsgSize))
	}
	if o.MaxTCPConns < 0 {
		errs = append(errs, fmt.Errorf("dns max TCP connections: %d: negative", o.MaxTCPConns))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("dns timeout: %v: negative", o.Timeout))
	}
	return errors.Join(errs...)
}

// Server answers DNS queries for the zone over UDP and TCP.
type Server struct {
	opts    Options
	zone    string // canonical, with the final dot
	ttl     uint32
	log     *slog.Logger
	metrics *metrics
	rr      atomic.Uint64 // round-robin counter

	mu      sync.Mutex
	servers []*dns.Server
	addr    net.Addr
	closed  bool
	started chan struct{} // closed once Serve's servers run (or failed to)
}

// New returns a server; it listens in Serve, ListenAndServe or Run.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MaxUDPSize == 0 {
		opts.MaxUDPSize = DefaultMaxUDPSize
	}
	if opts.MaxTCPConns == 0 {
		opts.MaxTCPConns = DefaultMaxTCPConns
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Server{
		opts:    opts,
		zone:    dns.CanonicalName(opts.Zone),
		ttl:     uint32(opts.TTL / time.Second),
		log:     log,
		metrics: m,
		started: make(chan struct{}),
	}, nil
}

// Listen opens a UDP and a TCP listener on the same address; port 0 picks a
// port free for both.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen %q: %w", addr, err)
	}
	for range 10 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen: %w", err)
		}
		p := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		ln.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("dns listen: %w", err)
		}
	}
	return nil, nil, fmt.Errorf("dns listen %q: no port free for both UDP and TCP", addr)
}

// Addr returns the address Serve listens on (the UDP one; TCP is on the same
// port when the listeners came from Listen), or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe listens on Options.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	pc, ln, err := Listen(s.opts.Addr)
	if err != nil {
		return err
	}
	return s.Serve(pc, ln)
}

// Run listens on Options.Addr and serves until ctx ends, then shuts down
// within the Timeout.
func (s *Server) Run(ctx context.Context) error {
	pc, ln, err := Listen(s.opts.Addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(pc, ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	serr := s.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		return err
	}
	return serr
}

// Serve answers queries on pc (UDP) and ln (TCP), either of which may be nil,
// until Shutdown; it then returns ErrServerClosed. It closes both.
func (s *Server) Serve(pc net.PacketConn, ln net.Listener) error {
	s.mu.Lock()
	if s.closed || s.servers != nil {
		s.mu.Unlock()
		closeAll(pc, ln)
		if s.closed {
			return ErrServerClosed
		}
		return errors.New("dns: Serve called twice")
	}
	var wg sync.WaitGroup // counts the servers until they have started
	newServer := func() *dns.Server {
		wg.Add(1)
		var once sync.Once
		return &dns.Server{
			Handler:           s,
			ReadTimeout:       s.opts.Timeout,
			WriteTimeout:      s.opts.Timeout,
			MaxTCPQueries:     128,
			NotifyStartedFunc: func() { once.Do(wg.Done) },
		}
	}
	if pc != nil {
		srv := newServer()
		srv.PacketConn = pc
		s.servers = append(s.servers, srv)
		s.addr = pc.LocalAddr()
	}
	if ln != nil {
		srv := newServer()
		srv.Listener = netutil.LimitListener(ln, s.opts.MaxTCPConns)
		s.servers = append(s.servers, srv)
		if s.addr == nil {
			s.addr = ln.Addr()
		}
	}
	servers := s.servers
	s.mu.Unlock()
	if len(servers) == 0 {
		close(s.started)
		return errors.New("dns: nothing to serve on")
	}
	s.log.Info("dns listening", "addr", s.addr, "zone", s.zone)

	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			err := srv.ActivateAndServe()
			srv.NotifyStartedFunc() // unblock the wait below when it failed early
			errc <- err
		}()
	}
	wg.Wait()
	close(s.started)
	var errs []error
	for range servers {
		if err := <-errc; err != nil {
			errs = append(errs, err)
			for _, srv := range servers { // one failed: stop the other
				_ = srv.Shutdown() // "not started" for the failed one
			}
		}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	return fmt.Errorf("dns serve: %w", errors.Join(errs...))
}

func closeAll(pc net.PacketConn, ln net.Listener) {
	if pc != nil {
		pc.Close()
	}
	if ln != nil {
		ln.Close()
	}
}

// Shutdown stops serving and waits, at most until ctx ends, for the answers
// in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	if servers == nil {
		return nil
	}
	select {
	case <-s.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	var errs []error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil && !strings.Contains(err.Error(), "server not started") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
