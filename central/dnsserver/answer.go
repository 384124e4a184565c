package dnsserver

import (
	"cmp"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/central/gossip"
)

// Names in the zone, relative to it.
const (
	nameSMTP       = "smtp"
	nameCentral    = "central"
	nameSMTPSRV    = "_smtp._tcp"
	nameGRPCSRV    = "_osprey-grpc._tcp"
	nameTCP        = "_tcp"  // empty non-terminal above the SRV names
	nameNodes      = "nodes" // empty non-terminal above the node names
	nodesSuffix    = "." + nameNodes
	srvPriority    = 10
	srvWeight      = 10
	soaRefresh     = 3600
	soaRetry       = 600
	soaExpire      = 86400
	hostmasterName = "hostmaster"
)

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req)
	_, udp := w.LocalAddr().(*net.UDPAddr)
	truncated := s.fit(req, resp, udp)
	var qtype uint16
	if len(req.Question) > 0 {
		qtype = req.Question[0].Qtype
	}
	s.metrics.observe(qtype, resp.Rcode, truncated)
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write dns answer", "err", err)
	}
}

// answer computes the full answer to req, before any truncation.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	m.Compress = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(uint16(s.opts.MaxUDPSize), false)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m
		}
	}
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	if !dns.IsSubDomain(s.zone, name) || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused // the zone lives in gossip, not in transfers
		return m
	}
	if !s.opts.View.Quorum() {
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	m.Authoritative = true

	z := s.snapshot()
	rel := strings.TrimSuffix(strings.TrimSuffix(name, s.zone), ".")
	opt := m.IsEdns0()
	var exists bool
	m.Answer, m.Extra, exists = z.lookup(q.Name, rel, q.Qtype)
	if opt != nil {
		m.Extra = append(m.Extra, opt) // OPT last, by convention
	}
	switch {
	case !exists:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{z.soa()}
	case len(m.Answer) == 0:
		m.Ns = []dns.RR{z.soa()}
	}
	return m
}

// fit truncates resp to what the transport can carry: the client's EDNS0
// UDP size (512 without EDNS0) capped at MaxUDPSize, or 64 KiB over TCP. It
// reports whether answers were cut (TC=1); glue that does not fit is dropped
// without TC, as RFC 2181 allows.
func (s *Server) fit(req, resp *dns.Msg, udp bool) bool {
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), s.opts.MaxUDPSize)
		}
	}
	nAns, nNs := len(resp.Answer), len(resp.Ns)
	resp.Truncate(size)
	if resp.Truncated && len(resp.Answer) == nAns && len(resp.Ns) == nNs {
		resp.Truncated = false
	}
	return resp.Truncated
}

// endpoint is one healthy service of a node.
type endpoint struct {
	target string // <node>.nodes.<zone>, or "" when the name is not a DNS name
	ip     netip.Addr
	port   uint16
}

// zoneView is the zone's data for one query, rotated for round robin.
type zoneView struct {
	s       *Server
	central []endpoint
	smtp    []endpoint
}

func (s *Server) snapshot() *zoneView {
	z := &zoneView{
		s:       s,
		central: s.endpoints(gossip.RoleCentral),
		smtp:    s.endpoints(gossip.RoleSensor),
	}
	off := s.rr.Add(1) - 1
	rotate(z.central, off)
	rotate(z.smtp, off)
	return z
}

func (s *Server) endpoints(role gossip.Role) []endpoint {
	members := s.opts.View.Healthy(role)
	out := make([]endpoint, 0, len(members))
	for _, m := range members {
		ap, ok := m.ServiceAddr(role)
		if !ok {
			continue
		}
		out = append(out, endpoint{target: s.nodeName(m.Name), ip: ap.Addr(), port: ap.Port()})
	}
	// A stable order across nodes and queries, which rotate then turns into
	// round robin.
	slices.SortFunc(out, func(a, b endpoint) int {
		return cmp.Or(cmp.Compare(a.target, b.target), a.ip.Compare(b.ip))
	})
	return out
}

// nodeName is the DNS name of a node, or "" when its name cannot be one
// (node names are made of letters, digits, '-', '_' and '.').
func (s *Server) nodeName(node string) string {
	for _, label := range strings.Split(node, ".") {
		if label == "" || len(label) > 63 || strings.ContainsFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return ""
		}
	}
	n := dns.CanonicalName(node + nodesSuffix + "." + s.zone)
	if _, ok := dns.IsDomainName(n); !ok {
		return ""
	}
	return n
}

func rotate[T any](s []T, off uint64) {
	if len(s) > 1 {
		k := int(off % uint64(len(s)))
		slices.Reverse(s[:k])
		slices.Reverse(s[k:])
		slices.Reverse(s)
	}
}

// lookup returns the answers and glue for owner (rel is its canonical form
// relative to the zone) and qtype, and whether the name exists.
func (z *zoneView) lookup(owner, rel string, qtype uint16) (ans, extra []dns.RR, exists bool) {
	switch rel {
	case "":
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			ans = append(ans, z.soa())
		}
		if qtype == dns.TypeNS || qtype == dns.TypeANY {
			ns, glue := z.ns()
			ans = append(ans, ns...)
			extra = glue
		}
		return ans, extra, true
	case nameSMTP:
		return z.addrs(owner, z.smtp, qtype), nil, true
	case nameCentral:
		return z.addrs(owner, z.central, qtype), nil, true
	case nameSMTPSRV:
		ans, extra = z.srv(owner, z.smtp, qtype)
		return ans, extra, true
	case nameGRPCSRV:
		ans, extra = z.srv(owner, z.central, qtype)
		return ans, extra, true
	case nameTCP, nameNodes:
		return nil, nil, true
	}
	if _, ok := strings.CutSuffix(rel, nodesSuffix); ok {
		target := rel + "." + z.s.zone
		var eps []endpoint
		for _, e := range slices.Concat(z.central, z.smtp) {
			if e.target == target && !slices.ContainsFunc(eps, func(o endpoint) bool { return o.ip == e.ip }) {
				eps = append(eps, endpoint{target: target, ip: e.ip})
			}
		}
		if len(eps) > 0 {
			return z.addrs(owner, eps, qtype), nil, true
		}
	}
	return nil, nil, false
}

func (z *zoneView) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: z.s.ttl}
}

// addrs returns the A or AAAA records (both for ANY) of the endpoints' IPs,
// each IP once, in the endpoints' order.
func (z *zoneView) addrs(owner string, eps []endpoint, qtype uint16) []dns.RR {
	var out []dns.RR
	seen := make(map[netip.Addr]bool)
	for _, e := range eps {
		if seen[e.ip] {
			continue
		}
		seen[e.ip] = true
		switch {
		case e.ip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			out = append(out, &dns.A{Hdr: z.hdr(owner, dns.TypeA), A: e.ip.AsSlice()})
		case e.ip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
			out = append(out, &dns.AAAA{Hdr: z.hdr(owner, dns.TypeAAAA), AAAA: e.ip.AsSlice()})
		}
	}
	return out
}

// srv returns the SRV records of the endpoints and the addresses of their
// targets as glue.
func (z *zoneView) srv(owner string, eps []endpoint, qtype uint16) (ans, glue []dns.RR) {
	if qtype != dns.TypeSRV && qtype != dns.TypeANY {
		return nil, nil
	}
	for _, e := range eps {
		if e.target == "" {
			continue
		}
		ans = append(ans, &dns.SRV{Hdr: z.hdr(owner, dns.TypeSRV), Priority: srvPriority, Weight: srvWeight, Port: e.port, Target: e.target})
		glue = append(glue, z.addrs(e.target, []endpoint{e}, dns.TypeANY)...)
	}
	return ans, glue
}

// ns returns the zone's name servers — the healthy central nodes, which run
// this responder, or this node alone when there are none — and their glue.
func (z *zoneView) ns() (ns, glue []dns.RR) {
	seen := make(map[string]bool)
	for _, e := range z.central {
		if e.target == "" || seen[e.target] {
			continue
		}
		seen[e.target] = true
		ns = append(ns, &dns.NS{Hdr: z.hdr(z.s.zone, dns.TypeNS), Ns: e.target})
		glue = append(glue, z.addrs(e.target, []endpoint{e}, dns.TypeANY)...)
	}
	if len(ns) == 0 {
		ns = append(ns, &dns.NS{Hdr: z.hdr(z.s.zone, dns.TypeNS), Ns: z.s.nodeName(z.s.opts.NodeName)})
	}
	return ns, glue
}

// soa is the zone's SOA. Its serial hashes the healthy endpoints, so it
// changes with them and is the same on nodes that agree.
func (z *zoneView) soa() dns.RR {
	h := fnv.New32a()
	for _, eps := range [][]endpoint{z.central, z.smtp} {
		sorted := slices.Clone(eps)
		slices.SortFunc(sorted, func(a, b endpoint) int {
			return cmp.Or(cmp.Compare(a.target, b.target), a.ip.Compare(b.ip))
		})
		for _, e := range sorted {
			h.Write([]byte(e.target))
			h.Write(e.ip.AsSlice())
			h.Write([]byte{byte(e.port >> 8), byte(e.port), 0})
		}
		h.Write([]byte{1})
	}
	return &dns.SOA{
		Hdr:     z.hdr(z.s.zone, dns.TypeSOA),
		Ns:      z.s.nodeName(z.s.opts.NodeName),
		Mbox:    hostmasterName + "." + z.s.zone,
		Serial:  h.Sum32(),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  z.s.ttl,
	}
}
