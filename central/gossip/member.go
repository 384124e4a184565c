package gossip

import (
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// State is a member's state as this node sees it.
type State int

const (
	// StateAlive is a member that answers probes.
	StateAlive State = iota
	// StateSuspect is a member that missed probes and may be declared dead.
	// memberlist tells no delegate about suspicion, so Members reports a
	// suspect member as alive until it is declared dead or refutes.
	StateSuspect
	// StateDead is a member that was declared failed.
	StateDead
	// StateLeft is a member that left the cluster on purpose. memberlist
	// does not tell a delegate whether a member left or failed, so a leaving
	// node first gossips a "leaving" mark in its metadata (Run does that);
	// it is StateLeft from then on.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node of the cluster as this node sees it.
type Member struct {
	// Name is the node's unique name.
	Name string
	// Addr is the node's gossip address.
	Addr netip.AddrPort
	// State is the member's state.
	State State
	// Meta is the metadata the node gossips; zero when MetaErr is set.
	Meta Meta
	// MetaErr is set when the node's metadata could not be decoded (for
	// instance a newer incompatible version); such a member is never healthy.
	MetaErr error
}

// ServiceAddr returns where the member serves the API of role: its gRPC API
// for RoleCentral, its SMTP listener for RoleSensor. An unspecified host
// (0.0.0.0, ::) is replaced by the member's gossip IP.
func (m Member) ServiceAddr(role Role) (netip.AddrPort, bool) {
	var s string
	switch role {
	case RoleCentral:
		s = m.Meta.GRPCAddr
	case RoleSensor:
		s = m.Meta.SMTPAddr
	default:
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = m.Addr.Addr().Unmap()
		if !ip.IsValid() || ip.IsUnspecified() {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ip, ap.Port()), true
}

// HealthyFor reports whether the member is alive and serves role now: a
// central member whose etcd and gRPC API work, a sensor member whose SMTP
// listener is up and whose spool is not full.
func (m Member) HealthyFor(role Role) bool {
	if m.State != StateAlive || m.MetaErr != nil || !m.Meta.Has(role) {
		return false
	}
	if _, ok := m.ServiceAddr(role); !ok {
		return false
	}
	h := m.Meta.Health
	switch role {
	case RoleCentral:
		return h.Etcd && h.GRPC
	case RoleSensor:
		return h.SMTP && h.Spool
	}
	return false
}

// memberFromNode copies what it needs out of n, which memberlist keeps
// changing under its own lock after the call. n.State is not used: memberlist
// never sets it (its own state field shadows it), so the caller knows the
// state from which callback it is in.
func memberFromNode(n *memberlist.Node, state State) (m Member, leaving bool) {
	m = Member{Name: n.Name, State: state}
	if ip, ok := netip.AddrFromSlice(n.Addr); ok {
		m.Addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
	}
	m.Meta, leaving, m.MetaErr = decodeMeta(n.Meta)
	return m, leaving
}
