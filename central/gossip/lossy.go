package gossip

import (
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// errLost is what a dial fails with when the transport loses it.
var errLost = errors.New("simulated packet loss or partition")

// LossyTransport wraps a memberlist transport and loses traffic on purpose,
// for tests and benchmarks: a fraction of outgoing UDP packets (SetLoss), all
// traffic to and from some peers (Block), or all traffic (Isolate). Install it
// through Options.WrapTransport; nothing else enables it.
//
// Loss applies to outgoing packets only, so with every node wrapped the loss
// on each path is the configured fraction. It also fails outgoing stream dials
// (memberlist's TCP pings, push/pull syncs and joins) with probability
// 1-(1-loss)⁴: a TCP ping needs SYN, SYN-ACK, ping and ack through within the
// probe deadline, and any lost one costs a retransmission timeout (≥ 200 ms
// on Linux) that overruns it. A blocked peer is known by its
// gossip address: its packets are dropped both ways and dials to it fail, but
// a stream it opens to us is only recognizable by IP, so block on both sides
// (or Isolate) to cut streams too. Isolate drops every packet, fails every
// dial and closes every incoming stream.
type LossyTransport struct {
	inner memberlist.NodeAwareTransport

	mu       sync.Mutex
	rng      *rand.Rand
	loss     float64
	dialLoss float64
	blocked  map[netip.AddrPort]bool
	isolated bool

	dropped  atomic.Uint64
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// NewLossyTransport wraps inner; seed makes the losses reproducible.
func NewLossyTransport(inner memberlist.NodeAwareTransport, seed uint64) *LossyTransport {
	t := &LossyTransport{
		inner:    inner,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		blocked:  make(map[netip.AddrPort]bool),
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

// SetLoss sets the fraction (0 to 1) of outgoing UDP packets to drop.
func (t *LossyTransport) SetLoss(fraction float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loss = min(max(fraction, 0), 1)
	t.dialLoss = 1 - math.Pow(1-t.loss, 4)
}

// Block cuts all traffic to and from the peers at the given gossip addresses (IP:port).
func (t *LossyTransport) Block(addrs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			t.blocked[canonical(ap)] = true
		}
	}
}

// Unblock restores traffic with the given peers.
func (t *LossyTransport) Unblock(addrs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			delete(t.blocked, canonical(ap))
		}
	}
}

// Isolate cuts (true) or restores (false) all traffic.
func (t *LossyTransport) Isolate(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.isolated = on
}

// Dropped returns how many packets and streams the transport has dropped.
func (t *LossyTransport) Dropped() uint64 { return t.dropped.Load() }

func canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// cut reports whether traffic with addr is cut off.
func (t *LossyTransport) cut(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isolated {
		return true
	}
	if len(t.blocked) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && t.blocked[canonical(ap)]
}

// dropOutgoing decides the fate of one outgoing packet (or, with dial set,
// stream) to addr.
func (t *LossyTransport) dropOutgoing(addr string, dial bool) bool {
	if t.cut(addr) {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.loss
	if dial {
		p = t.dialLoss
	}
	return p > 0 && t.rng.Float64() < p
}

func (t *LossyTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			if t.cut(p.From.String()) {
				t.dropped.Add(1)
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *LossyTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			if t.cut(c.RemoteAddr().String()) {
				t.dropped.Add(1)
				c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *LossyTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *LossyTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. A dropped packet
// looks sent, as on a real network.
func (t *LossyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.dropOutgoing(a.Addr, false) {
		t.dropped.Add(1)
		return time.Now(), nil
	}
	return t.inner.WriteToAddress(b, a)
}

// PacketCh implements memberlist.Transport.
func (t *LossyTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *LossyTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *LossyTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.dropOutgoing(a.Addr, true) {
		t.dropped.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errLost}
	}
	return t.inner.DialAddressTimeout(a, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *LossyTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport.
func (t *LossyTransport) Shutdown() error {
	err := t.inner.Shutdown()
	t.stopOnce.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}
