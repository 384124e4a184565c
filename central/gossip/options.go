package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the Options durations.
const (
	DefaultRejoinInterval = 15 * time.Second
	DefaultLeaveTimeout   = 2 * time.Second
	DefaultUpdateTimeout  = 2 * time.Second
)

// ErrEncryptionRequired is returned by Validate when Options.RequireEncryption
// is set and no key is given.
var ErrEncryptionRequired = errors.New("gossip encryption is required: give --gossip-key or --gossip-keyring-file")

// Options configures a Cluster.
type Options struct {
	// NodeName is this node's unique name in the cluster (--node-name).
	NodeName string
	// BindAddr is the IP:port the gossip listens on, UDP and TCP (--gossip-addr).
	// Port 0 picks a free port; Addr tells which. An empty or unspecified IP
	// listens on every interface.
	BindAddr string
	// AdvertiseAddr, when set, is the IP:port the other nodes reach this one
	// at. By default it is BindAddr, or a private IP of the host when
	// BindAddr's IP is unspecified.
	AdvertiseAddr string
	// Seeds are host:port addresses of nodes to join (--join); this node's own
	// address may be among them.
	Seeds []string
	// Peers, when set, adds the gossip addresses of known nodes (the node list
	// in etcd) to the Seeds on every rejoin.
	Peers PeerSource

	// Key is the base64 of a 32-byte gossip key (--gossip-key).
	Key string
	// KeyringFile is a JSON array of base64 32-byte keys, the primary first
	// (--gossip-keyring-file). Key rotations made through the Cluster are
	// written back to it.
	KeyringFile string
	// RequireEncryption refuses to start without a key. Set it everywhere but
	// in dev, so a missing key is a startup error, not a plaintext cluster.
	RequireEncryption bool

	// Meta is the node's initial metadata.
	Meta Meta

	// RejoinInterval is how often the node rejoins the seeds and peers that
	// it does not see alive (memberlist never does by itself, so a healed
	// partition would otherwise stay split). Default DefaultRejoinInterval.
	RejoinInterval time.Duration
	// LeaveTimeout bounds the graceful leave when Run's context ends.
	// Default DefaultLeaveTimeout.
	LeaveTimeout time.Duration
	// UpdateTimeout bounds how long SetMeta and SetHealth wait for the update
	// to be gossiped when their context has no deadline. Default DefaultUpdateTimeout.
	UpdateTimeout time.Duration
	// Clock drives the rejoin ticker; nil is the real clock.
	Clock Clock

	// Configure, when set, adjusts the memberlist configuration after this
	// package has filled it from TunedConfig and the options (benchmarks use
	// it to compare with memberlist's own defaults).
	Configure func(*memberlist.Config)
	// WrapTransport, when set, wraps the network transport, as tests and
	// benchmarks do with NewLossyTransport to lose packets or partition.
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport

	// Logger receives the cluster's and memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, registers the cluster's metrics.
	Registerer prometheus.Registerer
}

// PeerSource lists gossip addresses (host:port) of nodes this one belongs
// with, such as the node list kept in etcd.
type PeerSource interface {
	GossipPeers(ctx context.Context) ([]string, error)
}

// PeerSourceFunc adapts a function to PeerSource.
type PeerSourceFunc func(ctx context.Context) ([]string, error)

// GossipPeers calls f.
func (f PeerSourceFunc) GossipPeers(ctx context.Context) ([]string, error) { return f(ctx) }

// Clock makes the tickers of the cluster's periodic work; tests pass one that
// ticks when told.
type Clock interface {
	NewTicker(d time.Duration) (c <-chan time.Time, stop func())
}

type realClock struct{}

func (realClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Validate reports every problem with the options at once. It reads no file.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name: required"))
	} else if len(o.NodeName) > 128 {
		errs = append(errs, fmt.Errorf("--node-name: %q: longer than 128", o.NodeName))
	}
	if _, _, err := splitIPPort(o.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("--gossip-addr: %w", err))
	}
	if o.AdvertiseAddr != "" {
		if ip, port, err := splitIPPort(o.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("--gossip-advertise-addr: %w", err))
		} else if !ip.IsValid() || ip.IsUnspecified() || port == 0 {
			errs = append(errs, fmt.Errorf("--gossip-advertise-addr: %q: want a specific IP and port", o.AdvertiseAddr))
		}
	}
	for _, s := range o.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("--join: %q: %w", s, err))
		}
	}
	switch {
	case o.Key != "" && o.KeyringFile != "":
		errs = append(errs, errors.New("--gossip-key and --gossip-keyring-file: give one, not both"))
	case o.Key != "":
		if _, err := ParseKey(o.Key); err != nil {
			errs = append(errs, fmt.Errorf("--gossip-key: %w", err))
		}
	case o.KeyringFile == "" && o.RequireEncryption:
		errs = append(errs, ErrEncryptionRequired)
	}
	if err := o.Meta.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"gossip rejoin interval", o.RejoinInterval}, {"gossip leave timeout", o.LeaveTimeout}, {"gossip update timeout", o.UpdateTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v: negative", d.field, d.v))
		}
	}
	return errors.Join(errs...)
}

// splitIPPort parses "IP:port" or ":port"; an empty host is the invalid Addr.
func splitIPPort(s string) (netip.Addr, uint16, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q: %w", s, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q: bad port", s)
	}
	if host == "" {
		return netip.Addr{}, uint16(port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q: want an IP address: %w", s, err)
	}
	return ip, uint16(port), nil
}

// TunedConfig is memberlist's LAN configuration tuned to declare a killed
// node of a small (3–5 node) cluster dead in about a second, against ≈5.8 s
// with memberlist.DefaultLANConfig.
//
// How detection time adds up (memberlist's SWIM with Lifeguard suspicion):
//
//  1. Some member probes the dead node: each member probes one peer per
//     ProbeInterval, round robin, so with 2–4 probers the first probe comes
//     within ~ProbeInterval/2 on average (here ≈ 50–100 ms).
//  2. That probe fails once the ProbeInterval deadline passes (direct UDP ping
//     for ProbeTimeout, then indirect pings and a TCP ping): +200 ms.
//  3. The node stays suspect for SuspicionMult × ProbeInterval (the log10(N)
//     factor is 1 below 10 nodes) = 600 ms, once SuspicionMult-2 = 1 other
//     member confirms it; unconfirmed the timeout starts at
//     SuspicionMaxTimeoutMult times that (2.4 s) and shrinks with confirmations.
//  4. The dead message spreads by gossip every GossipInterval (50 ms).
//
// That is ≈ 0.9–1.0 s median. Measured on loopback (BenchmarkFailureDetection,
// 20 kills each, time until every survivor declared the node dead): median
// 0.95 s (1.0 s with 5 nodes at 5 % loss), p90 1.15–1.2 s, max 1.2–1.36 s,
// with 3 or 5 nodes and 0 or 5 % loss; memberlist.DefaultLANConfig: median
// 5.8 s, max 6.8 s.
//
// A healthy node is hard to remove: a probe fails only when the direct round
// trip, all IndirectChecks indirect round trips and the TCP ping fail within
// 200 ms, and even then the suspected node has at least 600 ms to hear the
// suspicion (piggybacked on pings and gossiped every 50 ms) and refute it
// with a new incarnation, which is lost only when all ~RetransmitMult copies
// to a member are. Measured (BenchmarkFalseRemoval, 30 s per case, loss on
// UDP and on stream dials, see LossyTransport): no healthy node removed at
// 5, 10 or 20 % loss with 3 or 5 nodes; a 3-node cluster saw 0.03, 0.33 and
// 1.7 suspicions a second, all refuted.
//
// The price: each node sends ~5 probes and up to ~20 gossip packets a second
// (a few KB/s), and a node stalled for more than ~0.6 s (GC pause, frozen VM)
// is declared dead, then comes back when it refutes. On a busy or lossy
// network raise ProbeInterval (and ProbeTimeout) through Options.Configure:
// detection time scales with ProbeInterval.
//
// PushPullInterval (full state sync) is 10 s for quick anti-entropy in small
// clusters; TCPTimeout is 2 s for a LAN; a dead node's name can be reclaimed by
// a new address after 10 s (a restarted container with a new IP).
func TunedConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.IndirectChecks = 3
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 4
	c.GossipInterval = 50 * time.Millisecond
	c.GossipNodes = 3
	c.RetransmitMult = 6
	c.GossipToTheDeadTime = 15 * time.Second
	c.PushPullInterval = 10 * time.Second
	c.TCPTimeout = 2 * time.Second
	c.DeadNodeReclaimTime = 10 * time.Second
	return c
}
