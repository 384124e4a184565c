package central

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/dnsserver"
	"github.com/ospreysec/osprey/central/gossip"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Gossip timings (Options.GossipTiming).
const (
	// GossipTuned is gossip.TunedConfig: a killed node is out of the DNS
	// answers in about a second.
	GossipTuned = "tuned"
	// GossipLAN is memberlist.DefaultLANConfig (about 5.8 s), for comparison.
	GossipLAN = "lan"
)

// Defaults of the cluster options.
const (
	DefaultDNSZone = "osprey.internal."
	DefaultDNSTTL  = dnsserver.DefaultTTL
)

// Names the DNS responder answers, relative to the zone (see package dnsserver).
const (
	dnsSMTP    = "smtp"
	dnsCentral = "central"
	dnsSMTPSRV = "_smtp._tcp"
	dnsGRPCSRV = "_osprey-grpc._tcp"
	dnsNodes   = "nodes"
)

// clusterNode is this node's part in the central node cluster: its gossip
// membership, the health it gossips, and the DNS responder that answers
// from the membership.
type clusterNode struct {
	name    string
	zone    string // canonical, with the final dot
	ttl     time.Duration
	gossip  *gossip.Cluster
	dns     *dnsserver.Server
	dnsPC   net.PacketConn
	dnsLn   net.Listener
	etcd    *etcdProbe
	health  *healthMonitor
	log     *slog.Logger
	started bool
}

// clusterDeps are what the cluster needs from the rest of the node.
type clusterDeps struct {
	store    *store.Store
	etcdRead func(context.Context) error
	sqlPing  func(context.Context) error
	// spamHealth checks the spam check (Rspamd); nil when there is none.
	spamHealth func(context.Context) error
	ca         *x509.Certificate
	grpcAddr   net.Addr
	httpAddr   net.Addr
	httpURL    string
	registry   prometheus.Registerer
	log        *slog.Logger
}

// startCluster binds the gossip and DNS ports, starts memberlist (joining
// nobody yet) and records the node in etcd's node list. Run joins and
// serves; close releases everything when Run is never called.
func startCluster(ctx context.Context, opts Options, d clusterDeps) (*clusterNode, error) {
	c := &clusterNode{
		name: opts.NodeName,
		zone: dns.CanonicalName(cmp.Or(opts.DNS.Zone, DefaultDNSZone)),
		ttl:  cmp.Or(opts.DNS.TTL, DefaultDNSTTL),
		log:  d.log,
	}
	c.etcd = newEtcdProbe(d.etcdRead, nil)
	base := gossip.Meta{
		Roles:    []gossip.Role{gossip.RoleCentral},
		GRPCAddr: d.grpcAddr.String(),
		HTTPAddr: d.httpAddr.String(),
	}
	runsSensor := opts.Dev || opts.LocalSensor.Run
	if runsSensor {
		base.Roles = append(base.Roles, gossip.RoleSensor)
	}
	gopts := opts.gossipOptions()
	gopts.Meta = base
	gopts.Peers = gossip.PeerSourceFunc(func(ctx context.Context) ([]string, error) {
		nodes, err := d.store.ListNodes(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(nodes))
		for _, n := range nodes {
			if n.Name != opts.NodeName {
				out = append(out, n.GossipAddr)
			}
		}
		return out, nil
	})
	gopts.Logger = d.log.With("component", "gossip")
	gopts.Registerer = d.registry
	var err error
	if c.gossip, err = gossip.New(gopts); err != nil {
		return nil, err
	}
	if err := d.store.PutNode(ctx, opts.NodeName, c.gossip.Addr().String()); err != nil {
		c.gossip.Close()
		return nil, fmt.Errorf("record this node in the node list: %w", err)
	}
	c.dns, err = dnsserver.New(dnsserver.Options{
		Zone:       c.zone,
		NodeName:   opts.NodeName,
		View:       dnsserver.NewView(c.gossip, c.etcd.OK),
		TTL:        c.ttl,
		Logger:     d.log.With("component", "dns"),
		Registerer: d.registry,
	})
	if err != nil {
		c.gossip.Close()
		return nil, err
	}
	if c.dnsPC, c.dnsLn, err = dnsserver.Listen(opts.DNS.Addr); err != nil {
		c.gossip.Close()
		return nil, err
	}
	var smtpConfig func(context.Context) (*ospreyv1.SmtpIntegration, error)
	if runsSensor {
		smtpConfig = func(ctx context.Context) (*ospreyv1.SmtpIntegration, error) {
			cfg, _, err := d.store.GetSMTP(ctx, store.AllTenants(), opts.NodeName)
			return cfg, err
		}
	}
	c.health = newHealthMonitor(healthOptions{
		cluster:    c.gossip,
		etcd:       c.etcd,
		base:       base,
		grpcAddr:   d.grpcAddr,
		ca:         d.ca,
		httpURL:    d.httpURL,
		smtpConfig: smtpConfig,
		sqlPing:    d.sqlPing,
		spamHealth: d.spamHealth,
		selfIP:     c.gossip.Addr().Addr(),
		log:        d.log.With("component", "health"),
	})
	return c, nil
}

// components are the cluster's components in their order: the etcd probe,
// gossip (which leaves the cluster when it stops), the health monitor that
// gossips the node's health, and DNS, which answers from both.
func (c *clusterNode) components() []component {
	c.started = true
	return []component{
		{"etcd-probe", c.etcd.Run},
		{"gossip", c.gossip.Run},
		{"health", c.health.Run},
		{"dns", func(ctx context.Context) error {
			return serveUntil(ctx, func() error {
				if err := c.dns.Serve(c.dnsPC, c.dnsLn); err != nil && !errors.Is(err, dnsserver.ErrServerClosed) {
					return err
				}
				return nil
			}, func() error {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dnsserver.DefaultTimeout)
				defer cancel()
				return c.dns.Shutdown(sctx)
			})
		}},
	}
}

// close releases what startCluster took, when run was never called.
func (c *clusterNode) close() {
	if c == nil || c.started {
		return
	}
	c.dnsPC.Close()
	c.dnsLn.Close()
	c.gossip.Close()
}

// gossipAddr and dnsAddr are where the node gossips and answers DNS.
func (c *clusterNode) gossipAddr() string { return c.gossip.Addr().String() }
func (c *clusterNode) dnsAddr() string    { return c.dnsPC.LocalAddr().String() }

// nodeList is GET /api/v1/nodes: every member this node knows, and what the
// DNS zone answers from that view.
func (c *clusterNode) nodeList(context.Context) (*api.NodeList, error) {
	members := c.gossip.Members()
	out := &api.NodeList{Nodes: make([]api.Node, 0, len(members))}
	for _, m := range members {
		ip := m.Addr.Addr()
		n := api.Node{
			Name:       m.Name,
			State:      api.NodeState(m.State.String()),
			Roles:      make([]api.NodeRole, 0, len(m.Meta.Roles)),
			Self:       m.Name == c.name,
			GossipAddr: m.Addr.String(),
			GRPCAddr:   concreteAddr(m.Meta.GRPCAddr, ip),
			HTTPAddr:   concreteAddr(m.Meta.HTTPAddr, ip),
			SMTPAddr:   concreteAddr(m.Meta.SMTPAddr, ip),
			Health: api.NodeHealth{
				Etcd: m.Meta.Health.Etcd, GRPC: m.Meta.Health.GRPC, HTTP: m.Meta.Health.HTTP,
				SMTP: m.Meta.Health.SMTP, Spool: m.Meta.Health.Spool, SQL: m.Meta.Health.SQL,
			},
		}
		if m.Meta.Health.RspamdUsed {
			n.Health.Rspamd = &m.Meta.Health.Rspamd
		}
		for _, r := range m.Meta.Roles {
			n.Roles = append(n.Roles, api.NodeRole(r))
		}
		if m.MetaErr != nil {
			n.MetadataError = m.MetaErr.Error()
		}
		out.Nodes = append(out.Nodes, n)
	}
	out.DNS = api.ClusterDNS{
		Zone:       c.zone,
		Addr:       c.dnsAddr(),
		TTLSeconds: int(c.ttl / time.Second),
		Quorum:     c.etcd.OK(),
		Records:    c.dnsRecords(),
	}
	return out, nil
}

// dnsRecords are the answers of the zone's service names, computed from
// the same view and rules as the DNS responder's (gossip.Member.HealthyFor
// and ServiceAddr), sorted rather than rotated.
func (c *clusterNode) dnsRecords() []api.DNSRecord {
	var out []api.DNSRecord
	for _, svc := range []struct {
		name, srv string
		role      gossip.Role
	}{{dnsSMTP, dnsSMTPSRV, gossip.RoleSensor}, {dnsCentral, dnsGRPCSRV, gossip.RoleCentral}} {
		var v4, v6, srv []string
		for _, m := range c.gossip.Healthy(svc.role) {
			ap, ok := m.ServiceAddr(svc.role)
			if !ok {
				continue
			}
			ip := ap.Addr().String()
			switch {
			case ap.Addr().Is4() && !slices.Contains(v4, ip):
				v4 = append(v4, ip)
			case ap.Addr().Is6() && !slices.Contains(v6, ip):
				v6 = append(v6, ip)
			}
			if target := c.nodeDNSName(m.Name); target != "" {
				srv = append(srv, "10 10 "+strconv.Itoa(int(ap.Port()))+" "+target)
			}
		}
		slices.Sort(v4)
		slices.Sort(v6)
		out = append(out, api.DNSRecord{Name: svc.name + "." + c.zone, Type: "A", Values: nonNil(v4)})
		if len(v6) > 0 {
			out = append(out, api.DNSRecord{Name: svc.name + "." + c.zone, Type: "AAAA", Values: v6})
		}
		out = append(out, api.DNSRecord{Name: svc.srv + "." + c.zone, Type: "SRV", Values: nonNil(srv)})
	}
	return out
}

// nodeDNSName is <node>.nodes.<zone>, or "" when the node's name cannot be
// part of a DNS name.
func (c *clusterNode) nodeDNSName(node string) string {
	n := dns.CanonicalName(node + "." + dnsNodes + "." + c.zone)
	if _, ok := dns.IsDomainName(n); !ok {
		return ""
	}
	return n
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// concreteAddr shows a gossiped IP:port with an unspecified host (0.0.0.0,
// ::) as the member's gossip IP, which is where the others reach it.
func concreteAddr(s string, gossipIP netip.Addr) string {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return s
	}
	if ap.Addr().IsUnspecified() && gossipIP.IsValid() && !gossipIP.IsUnspecified() {
		return netip.AddrPortFrom(gossipIP, ap.Port()).String()
	}
	return ap.String()
}

// gossipOptions are the gossip options of the node's flags.
func (o *Options) gossipOptions() gossip.Options {
	g := gossip.Options{
		NodeName:          o.NodeName,
		BindAddr:          o.Gossip.Addr,
		AdvertiseAddr:     o.Gossip.AdvertiseAddr,
		Seeds:             o.Gossip.Join,
		Key:               o.Gossip.Key,
		KeyringFile:       o.Gossip.KeyringFile,
		RequireEncryption: !o.Dev,
	}
	if o.Gossip.Timing == GossipLAN {
		g.Configure = lanTiming
	}
	return g
}

// lanTiming puts memberlist's own LAN defaults back in place of the tuned
// timing, for benchmarks that compare the two.
func lanTiming(c *memberlist.Config) {
	d := memberlist.DefaultLANConfig()
	c.ProbeInterval, c.ProbeTimeout = d.ProbeInterval, d.ProbeTimeout
	c.IndirectChecks, c.SuspicionMult, c.SuspicionMaxTimeoutMult = d.IndirectChecks, d.SuspicionMult, d.SuspicionMaxTimeoutMult
	c.GossipInterval, c.GossipNodes, c.RetransmitMult = d.GossipInterval, d.GossipNodes, d.RetransmitMult
	c.GossipToTheDeadTime, c.PushPullInterval, c.TCPTimeout = d.GossipToTheDeadTime, d.PushPullInterval, d.TCPTimeout
	c.DeadNodeReclaimTime = d.DeadNodeReclaimTime
}
