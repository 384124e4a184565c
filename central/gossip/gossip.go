// Package gossip is the membership of the Central Node cluster: the nodes find
// each other and detect failures with memberlist (SWIM gossip), and each node
// gossips its metadata — roles, API addresses and the health of its
// components — so every node holds a view of which nodes can serve what. The
// DNS responder answers from that view.
//
// Design notes:
//
//   - Gossip is encrypted with a keyring (AES-256-GCM); outside dev a missing
//     key is a startup error (Options.RequireEncryption). See AddKey for key
//     rotation.
//   - memberlist's timing is tuned for quick failure detection on a LAN; see
//     TunedConfig for the numbers and the tradeoff.
//   - memberlist never rejoins after a partition heals: once both sides have
//     declared each other dead they stay split. Run rejoins, every
//     RejoinInterval, the seeds, the Options.Peers and the dead members that
//     it does not see alive.
//   - The view is built from memberlist's event callbacks, copied under
//     memberlist's lock; memberlist.Members returns pointers into state that
//     it keeps mutating, so it is not read here.
//   - A leave and a failure look the same to memberlist's delegates, so a
//     node that leaves first gossips a "leaving" mark in its metadata; the
//     others then record "left" (and drop it from the healthy set at once)
//     rather than "dead".
//   - New binds the gossip port and starts memberlist (so Addr is known at
//     once); Run joins and rejoins until its context ends, then leaves
//     gracefully so the others see "left" at once instead of probing.
package gossip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxGone bounds how many dead and left members the view remembers.
const maxGone = 128

// Cluster is this node's membership in the gossip cluster.
type Cluster struct {
	opts    Options
	log     *slog.Logger
	clock   Clock
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring
	metrics *metrics
	self    netip.AddrPort

	meta     atomic.Pointer[[]byte] // encoded metadata, read by memberlist
	updateMu sync.Mutex             // serializes SetMeta/SetHealth
	local    Meta                   // guarded by updateMu
	leaving  bool                   // guarded by updateMu
	keyMu    sync.Mutex             // serializes key changes

	mu      sync.Mutex
	members map[string]*entry
	seq     uint64
	subs    map[chan struct{}]struct{}

	running   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
}

type entry struct {
	m       Member
	leaving bool   // the member announced it is leaving
	seq     uint64 // when it last changed, to forget the oldest gone members
}

// New binds the gossip port and starts memberlist, but joins nobody: Run does.
// Call Run, or Close when Run will not be called.
func New(opts Options) (*Cluster, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.RejoinInterval == 0 {
		opts.RejoinInterval = DefaultRejoinInterval
	}
	if opts.LeaveTimeout == 0 {
		opts.LeaveTimeout = DefaultLeaveTimeout
	}
	if opts.UpdateTimeout == 0 {
		opts.UpdateTimeout = DefaultUpdateTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		opts:    opts,
		log:     logger,
		clock:   opts.Clock,
		members: make(map[string]*entry),
		subs:    make(map[chan struct{}]struct{}),
		closed:  make(chan struct{}),
		local:   opts.Meta,
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	meta, err := encodeMeta(opts.NodeName, opts.Meta, false)
	if err != nil {
		return nil, err
	}
	if c.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	c.meta.Store(&meta)

	if c.keyring, err = loadKeyring(&opts); err != nil {
		return nil, err
	}
	if c.keyring == nil {
		logger.Warn("gossip is not encrypted: give a key outside dev")
	}

	cfg := TunedConfig()
	cfg.Name = opts.NodeName
	cfg.Keyring = c.keyring
	cfg.Delegate = delegate{c}
	cfg.Events = events{c}
	cfg.Logger = newMemberlistLogger(logger)
	bindIP, bindPort, _ := splitIPPort(opts.BindAddr)
	cfg.BindAddr = "0.0.0.0"
	if bindIP.IsValid() {
		cfg.BindAddr = bindIP.String()
	}
	if opts.AdvertiseAddr != "" {
		ip, port, _ := splitIPPort(opts.AdvertiseAddr)
		cfg.AdvertiseAddr, cfg.AdvertisePort = ip.String(), int(port)
	}
	nt, err := newNetTransport(cfg.BindAddr, int(bindPort), cfg.Logger)
	if err != nil {
		return nil, err
	}
	cfg.BindPort = nt.GetAutoBindPort()
	if opts.AdvertiseAddr == "" {
		cfg.AdvertisePort = cfg.BindPort
	}
	var tr memberlist.NodeAwareTransport = nt
	if opts.WrapTransport != nil {
		tr = opts.WrapTransport(nt)
	}
	cfg.Transport = tr
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	if c.ml, err = memberlist.Create(cfg); err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	c.mu.Lock()
	if e, ok := c.members[opts.NodeName]; ok {
		c.self = e.m.Addr
	}
	c.mu.Unlock()
	logger.Info("gossip listening", "addr", c.self, "encrypted", c.keyring != nil)
	return c, nil
}

// newNetTransport binds memberlist's UDP and TCP listeners on the same port,
// retrying a few times when port 0 picked a TCP port whose UDP twin is taken.
func newNetTransport(ip string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	cfg := &memberlist.NetTransportConfig{BindAddrs: []string{ip}, BindPort: port, Logger: logger}
	var err error
	for range 10 {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(cfg); err == nil {
			return nt, nil
		}
		if port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("listen for gossip on %s: %w", net.JoinHostPort(ip, strconv.Itoa(port)), err)
}

// Addr is the gossip address this node advertises to the others.
func (c *Cluster) Addr() netip.AddrPort { return c.self }

// Run joins the cluster through the seeds and peers, rejoins whenever a known
// node is not seen alive, and returns once ctx ends, after leaving the cluster
// gracefully; or at once after Close.
func (c *Cluster) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("gossip: Run called twice")
	}
	select {
	case <-c.closed:
		return nil
	default:
	}
	c.rejoin(ctx)
	tick, stop := c.clock.NewTicker(c.opts.RejoinInterval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			c.shutdown(true)
			return nil
		case <-c.closed:
			return nil
		case <-tick:
			c.rejoin(ctx)
		}
	}
}

// Close stops gossip at once, without leaving: the others detect it as a
// failure, as if the process had been killed. It makes Run return.
func (c *Cluster) Close() error {
	return c.shutdown(false)
}

func (c *Cluster) shutdown(leave bool) error {
	var err error
	c.closeOnce.Do(func() {
		if leave {
			c.announceLeave()
			if lerr := c.ml.Leave(c.opts.LeaveTimeout / 2); lerr != nil {
				c.log.Warn("leave gossip cluster", "err", lerr)
			} else {
				c.log.Info("left gossip cluster")
			}
		}
		err = c.ml.Shutdown()
		close(c.closed)
	})
	if err != nil {
		return fmt.Errorf("stop gossip: %w", err)
	}
	return nil
}

// Members returns every member this node knows, itself included, by name.
// Dead and left members are kept until the view forgets the oldest of them.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, e := range c.members {
		out = append(out, e.m)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Healthy returns, by name, the alive members that serve role now (see
// Member.HealthyFor).
func (c *Cluster) Healthy(role Role) []Member {
	all := c.Members()
	out := all[:0]
	for _, m := range all {
		if m.HealthyFor(role) {
			out = append(out, m)
		}
	}
	return out
}

// Subscribe returns a channel that receives a value after the view changes
// (a member joined, left, failed, or changed its metadata); several changes
// may come as one value, so read Members after each. cancel ends the
// subscription.
func (c *Cluster) Subscribe() (changes <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Meta returns the metadata this node gossips.
func (c *Cluster) Meta() Meta {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	return c.local
}

// SetMeta replaces this node's metadata and gossips it at once. It waits
// until the update went out (bounded by ctx's deadline, or UpdateTimeout);
// the change is in effect locally even when it returns an error, and it
// reaches the others at the next full state sync at the latest.
func (c *Cluster) SetMeta(ctx context.Context, m Meta) error {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	return c.setMetaLocked(ctx, m)
}

// SetHealth replaces the health part of this node's metadata and gossips it
// at once when it changed, as SetMeta does.
func (c *Cluster) SetHealth(ctx context.Context, h Health) error {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	m := c.local
	m.Health = h
	return c.setMetaLocked(ctx, m)
}

// announceLeave gossips that this node is leaving, so the others record its
// coming leave as "left", not as a failure.
func (c *Cluster) announceLeave() {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	c.leaving = true
	b, err := encodeMeta(c.opts.NodeName, c.local, true)
	if err != nil {
		return // c.local was valid when set; cannot happen
	}
	c.meta.Store(&b)
	if err := c.ml.UpdateNode(c.opts.LeaveTimeout / 2); err != nil {
		c.log.Debug("announce leave", "err", err)
	}
}

func (c *Cluster) setMetaLocked(ctx context.Context, m Meta) error {
	b, err := encodeMeta(c.opts.NodeName, m, c.leaving)
	if err != nil {
		return err
	}
	if string(b) == string(*c.meta.Load()) {
		c.local = m
		return nil
	}
	c.meta.Store(&b)
	c.local = m
	timeout := c.opts.UpdateTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return fmt.Errorf("gossip metadata update: %w", context.DeadlineExceeded)
		}
	}
	select {
	case <-c.closed:
		return errors.New("gossip metadata update: cluster stopped")
	default:
	}
	if err := c.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("gossip metadata update: %w", err)
	}
	return nil
}

// rejoin joins the known nodes that are not alive in the view: the seeds,
// the peers from Options.Peers and the members that died (not those that
// left). It is a no-op when all of them are alive.
func (c *Cluster) rejoin(ctx context.Context) {
	alive := make(map[netip.AddrPort]bool)
	var dead []string
	for _, m := range c.Members() {
		switch m.State {
		case StateAlive, StateSuspect:
			alive[m.Addr] = true
		case StateDead:
			dead = append(dead, m.Addr.String())
		}
	}
	known := slices.Clone(c.opts.Seeds)
	if c.opts.Peers != nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		peers, err := c.opts.Peers.GossipPeers(pctx)
		cancel()
		if err != nil {
			c.log.Warn("list gossip peers", "err", err)
		}
		known = append(known, peers...)
	}
	known = append(known, dead...)

	seen := make(map[string]bool)
	var targets []string
	for _, k := range known {
		for _, a := range c.resolve(ctx, k) {
			if seen[a] {
				continue
			}
			seen[a] = true
			if ap, err := netip.ParseAddrPort(a); err == nil {
				ap = canonical(ap)
				if ap == c.self || alive[ap] {
					continue
				}
			}
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		return
	}
	joined := 0
	for _, t := range targets {
		if ctx.Err() != nil {
			return
		}
		select {
		case <-c.closed:
			return
		default:
		}
		if _, err := c.ml.Join([]string{t}); err != nil {
			c.log.Debug("join", "addr", t, "err", err)
			continue
		}
		joined++
	}
	c.metrics.joins(len(targets), joined)
	if joined > 0 {
		c.log.Info("joined gossip peers", "joined", joined, "tried", len(targets))
	} else {
		c.log.Debug("no gossip peer reachable", "tried", targets)
	}
}

// resolve turns host:port into IP:port addresses; an address that does not
// resolve is returned as is, for memberlist to report.
func (c *Cluster) resolve(ctx context.Context, hostport string) []string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return []string{hostport}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{netip.AddrPortFrom(ip.Unmap(), mustPort(port)).String()}
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return []string{hostport}
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), mustPort(port)).String())
	}
	return out
}

func mustPort(s string) uint16 {
	p, _ := strconv.ParseUint(s, 10, 16)
	return uint16(p)
}

// observe records a member's new state from a memberlist callback, which
// holds memberlist's lock: it must not call back into memberlist or block.
// gone tells a NotifyLeave (dead or left) from a NotifyJoin or NotifyUpdate.
func (c *Cluster) observe(n *memberlist.Node, gone bool) {
	m, leaving := memberFromNode(n, StateAlive)
	c.mu.Lock()
	c.seq++
	prev, had := c.members[m.Name]
	leaving = leaving || (had && prev.leaving && gone)
	switch {
	case leaving:
		m.State = StateLeft
	case gone:
		m.State = StateDead
	}
	c.members[m.Name] = &entry{m: m, leaving: leaving, seq: c.seq}
	c.forgetLocked()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	counts := c.countLocked()
	c.mu.Unlock()

	c.metrics.setMembers(counts)
	self := m.Name == c.opts.NodeName
	changed := !had || prev.m.State != m.State
	switch {
	case m.State == StateDead && !self && changed:
		c.metrics.failures.Inc()
		c.log.Warn("member failed", "member", m.Name, "addr", m.Addr)
	case m.State == StateLeft && changed:
		c.log.Info("member left", "member", m.Name, "addr", m.Addr)
	case m.State == StateAlive && changed:
		c.log.Info("member joined", "member", m.Name, "addr", m.Addr)
	default:
		c.log.Debug("member updated", "member", m.Name, "addr", m.Addr)
	}
	if m.MetaErr != nil && !self {
		c.log.Warn("member metadata unreadable", "member", m.Name, "err", m.MetaErr)
	}
}

// forgetLocked drops the oldest gone members beyond maxGone.
func (c *Cluster) forgetLocked() {
	var gone []*entry
	for _, e := range c.members {
		if e.m.State == StateDead || e.m.State == StateLeft {
			gone = append(gone, e)
		}
	}
	if len(gone) <= maxGone {
		return
	}
	slices.SortFunc(gone, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range gone[:len(gone)-maxGone] {
		delete(c.members, e.m.Name)
	}
}

func (c *Cluster) countLocked() map[State]int {
	counts := map[State]int{StateAlive: 0, StateSuspect: 0, StateDead: 0, StateLeft: 0}
	for _, e := range c.members {
		counts[e.m.State]++
	}
	return counts
}

// delegate gives memberlist this node's metadata.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	b := *d.c.meta.Load()
	if len(b) > limit {
		return nil
	}
	return b
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events feeds memberlist's membership events into the view.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.observe(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.observe(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.observe(n, false) }
