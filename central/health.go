package central

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ospreysec/osprey/central/gossip"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Timing of the health checks.
const (
	// healthInterval is how often a node checks its components and gossips
	// any change.
	healthInterval = time.Second
	// probeTimeout bounds one check of one component.
	probeTimeout = time.Second
	// etcdGrace is how long after its last successful linearizable read a
	// node still counts as reaching the etcd quorum. It rides out an etcd
	// leader election (reads fail for about a second when the leader dies),
	// so the failover of the etcd leader neither empties the DNS answers nor
	// makes every node answer SERVFAIL; a node cut off from the quorum stops
	// answering with itself alone at most this long after its last read.
	etcdGrace = 3 * time.Second
)

// etcdProbe tells whether this node reaches the etcd quorum: Run makes a
// linearizable read every interval, and OK holds while the last successful
// one is younger than grace. The DNS responder's quorum check and the etcd
// health a node gossips both read OK, so they never disagree.
type etcdProbe struct {
	read     func(context.Context) error
	now      func() time.Time
	interval time.Duration
	timeout  time.Duration
	grace    time.Duration
	lastOK   atomic.Int64 // unix nanoseconds of the last successful read
}

// newEtcdProbe makes a probe that counts as reaching the quorum now: the
// node has just read and written etcd to start.
func newEtcdProbe(read func(context.Context) error, now func() time.Time) *etcdProbe {
	if now == nil {
		now = time.Now
	}
	p := &etcdProbe{read: read, now: now, interval: healthInterval, timeout: probeTimeout, grace: etcdGrace}
	p.lastOK.Store(now().UnixNano())
	return p
}

// Run probes until ctx ends.
func (p *etcdProbe) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.probe(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// probe makes one read and records its success.
func (p *etcdProbe) probe(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.read(rctx) == nil {
		p.lastOK.Store(p.now().UnixNano())
	}
}

// OK reports whether the last successful read is younger than the grace.
func (p *etcdProbe) OK() bool {
	return p.now().Sub(time.Unix(0, p.lastOK.Load())) < p.grace
}

// metaSetter is the part of the gossip cluster the health monitor feeds.
type metaSetter interface {
	SetMeta(ctx context.Context, m gossip.Meta) error
}

// healthMonitor checks the node's components every interval and gossips
// the node's metadata (roles, addresses, health) whenever it changes, so the
// other nodes' DNS answers follow within a gossip round.
type healthMonitor struct {
	cluster  metaSetter
	etcd     *etcdProbe
	base     gossip.Meta // roles and the gRPC and HTTP addresses
	interval time.Duration
	log      *slog.Logger

	// grpcAddr is where the gRPC service is dialled, grpcTLS how its
	// certificate is checked (against the cluster CA).
	grpcAddr string
	grpcTLS  *tls.Config
	// healthz is the URL of the node's own /healthz.
	healthz string
	http    *http.Client
	// smtpConfig reads the SMTP integration of the node's own Sensor
	// component; nil when the node runs none.
	smtpConfig func(context.Context) (*ospreyv1.SmtpIntegration, error)
	// sqlPing checks the SQL store; nil counts it as reached.
	sqlPing func(context.Context) error
	// spamHealth checks the spam check (Rspamd); nil when the node has none.
	spamHealth func(context.Context) error
	// selfIP stands for an unspecified listen host (0.0.0.0, ::) when the
	// SMTP listener is dialled: the node's gossip IP.
	selfIP netip.Addr

	lastSMTP *ospreyv1.SmtpIntegration // the last SMTP integration read; Run's goroutine only
	last     gossip.Meta               // the metadata last gossiped; Run's goroutine only
	sent     bool
}

type healthOptions struct {
	cluster    metaSetter
	etcd       *etcdProbe
	base       gossip.Meta
	grpcAddr   net.Addr
	ca         *x509.Certificate
	httpURL    string
	smtpConfig func(context.Context) (*ospreyv1.SmtpIntegration, error)
	sqlPing    func(context.Context) error
	spamHealth func(context.Context) error
	selfIP     netip.Addr
	log        *slog.Logger
}

func newHealthMonitor(o healthOptions) *healthMonitor {
	pool := x509.NewCertPool()
	pool.AddCert(o.ca)
	grpcAddr := advertised(o.grpcAddr)
	host, _, _ := net.SplitHostPort(grpcAddr)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The check asks whether this process serves HTTP, not who it is: the
	// certificate may be one an operator issued for another name.
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.Proxy = nil
	return &healthMonitor{
		cluster:    o.cluster,
		etcd:       o.etcd,
		base:       o.base,
		interval:   healthInterval,
		log:        o.log,
		grpcAddr:   grpcAddr,
		grpcTLS:    &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12},
		healthz:    o.httpURL + "/healthz",
		http:       &http.Client{Transport: tr, Timeout: probeTimeout},
		smtpConfig: o.smtpConfig,
		sqlPing:    o.sqlPing,
		spamHealth: o.spamHealth,
		selfIP:     o.selfIP,
	}
}

// Run checks and gossips every interval until ctx ends.
func (h *healthMonitor) Run(ctx context.Context) error {
	defer h.http.CloseIdleConnections()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.update(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// update checks the components and gossips the metadata if it changed.
func (h *healthMonitor) update(ctx context.Context) {
	m := h.check(ctx)
	if ctx.Err() != nil {
		return // shutting down: the probes failed for that reason
	}
	if h.sent && sameMeta(m, h.last) {
		return
	}
	if h.last.Health != m.Health || !h.sent {
		h.log.Info("node health", "ok", healthList(m.Health, true), "failing", healthList(m.Health, false), "smtp_addr", m.SMTPAddr)
	}
	uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// The change is in effect locally even when it could not be sent at
	// once; the next full state sync carries it.
	if err := h.cluster.SetMeta(uctx, m); err != nil && ctx.Err() == nil {
		h.log.Debug("gossip health", "err", err)
	}
	h.last, h.sent = m, true
}

func sameMeta(a, b gossip.Meta) bool {
	return a.Health == b.Health && a.GRPCAddr == b.GRPCAddr && a.HTTPAddr == b.HTTPAddr &&
		a.SMTPAddr == b.SMTPAddr && slices.Equal(a.Roles, b.Roles)
}

// check probes every component at once and returns the metadata to gossip.
func (h *healthMonitor) check(ctx context.Context) gossip.Meta {
	m := h.base
	m.Roles = slices.Clone(h.base.Roles)
	var wg sync.WaitGroup
	wg.Go(func() { m.Health.GRPC = h.probeGRPC(ctx) })
	wg.Go(func() { m.Health.HTTP = h.probeHTTP(ctx) })
	if h.smtpConfig != nil {
		wg.Go(func() { m.SMTPAddr, m.Health.SMTP = h.probeSMTP(ctx) })
	}
	m.Health.SQL = true
	if h.sqlPing != nil {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			m.Health.SQL = h.sqlPing(pctx) == nil
		})
	}
	if h.spamHealth != nil {
		m.Health.RspamdUsed = true
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			m.Health.Rspamd = h.spamHealth(pctx) == nil
		})
	}
	wg.Wait()
	m.Health.Etcd = h.etcd.OK()
	// The spool's room is the Sensor component's to report, in the status it
	// sends the central nodes; the node cannot see it from here, so it
	// counts as having room and the SMTP listener's health decides.
	m.Health.Spool = true
	return m
}

// probeGRPC completes a TLS handshake with the gRPC service, checking its
// certificate against the cluster CA.
func (h *healthMonitor) probeGRPC(ctx context.Context) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout}, Config: h.grpcTLS}
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", h.grpcAddr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// probeHTTP asks the node's own /healthz.
func (h *healthMonitor) probeHTTP(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.healthz, nil)
	if err != nil {
		return false
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// probeSMTP returns the SMTP listener's address from the node's own SMTP
// integration, and whether the integration is enabled and the listener
// accepts a TCP connection. When the configuration cannot be read (no
// quorum) it goes on with the last one read.
func (h *healthMonitor) probeSMTP(ctx context.Context) (addr string, ok bool) {
	rctx, cancel := context.WithTimeout(ctx, probeTimeout)
	cfg, err := h.smtpConfig(rctx)
	cancel()
	if err == nil {
		h.lastSMTP = cfg
	}
	cfg = h.lastSMTP
	if cfg == nil || cfg.GetListen() == "" {
		return "", false
	}
	ap, err := listenAddr(ctx, cfg.GetListen())
	if err != nil {
		return "", false
	}
	if !cfg.GetEnabled() {
		return ap.String(), false
	}
	dial := ap
	if ap.Addr().IsUnspecified() {
		dial = netip.AddrPortFrom(h.selfIP, ap.Port())
		if !h.selfIP.IsValid() || h.selfIP.IsUnspecified() {
			dial = netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
			if ap.Addr().Is4() {
				dial = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
			}
		}
	}
	d := net.Dialer{Timeout: probeTimeout}
	conn, err := d.DialContext(ctx, "tcp", dial.String())
	if err != nil {
		return ap.String(), false
	}
	conn.Close()
	return ap.String(), true
}

// listenAddr turns a listen address (host:port, ":port", or a name) into
// the IP:port gossip carries; an empty host is 0.0.0.0.
func listenAddr(ctx context.Context, listen string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := netip.ParseAddrPort(net.JoinHostPort("0.0.0.0", port))
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		return p, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), p.Port()), nil
	}
	rctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, errors.New("no address")
	}
	return netip.AddrPortFrom(ips[0].Unmap(), p.Port()), nil
}

// healthList names the components whose health is ok, for the logs.
func healthList(h gossip.Health, ok bool) string {
	var out []string
	for _, c := range []struct {
		name string
		v    bool
	}{{"etcd", h.Etcd}, {"grpc", h.GRPC}, {"http", h.HTTP}, {"smtp", h.SMTP}, {"spool", h.Spool}} {
		if c.v == ok {
			out = append(out, c.name)
		}
	}
	if h.RspamdUsed && h.Rspamd == ok {
		out = append(out, "rspamd")
	}
	return strings.Join(out, ",")
}
