package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/central/gossip"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const zone = "cluster.example."

// fakeView is a View the test sets by hand.
type fakeView struct {
	mu      sync.Mutex
	members []gossip.Member
	quorum  bool
}

func (v *fakeView) Healthy(role gossip.Role) []gossip.Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []gossip.Member
	for _, m := range v.members {
		if m.HealthyFor(role) {
			out = append(out, m)
		}
	}
	return out
}

func (v *fakeView) Quorum() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.quorum
}

func (v *fakeView) set(quorum bool, ms ...gossip.Member) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.quorum, v.members = quorum, ms
}

var healthy = gossip.Health{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: true}

// member is a node at ip serving gRPC on 7443 and SMTP on 25.
func member(name, ip string, state gossip.State, h gossip.Health, roles ...gossip.Role) gossip.Member {
	a := netip.MustParseAddr(ip)
	return gossip.Member{
		Name:  name,
		Addr:  netip.AddrPortFrom(a, 7946),
		State: state,
		Meta: gossip.Meta{
			Roles:    roles,
			GRPCAddr: netip.AddrPortFrom(a, 7443).String(),
			SMTPAddr: netip.AddrPortFrom(a, 25).String(),
			Health:   h,
		},
	}
}

// startServer serves v on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, v View, mods ...func(*Options)) (*Server, string) {
	t.Helper()
	opts := Options{Zone: zone, NodeName: "node-1", View: v}
	for _, m := range mods {
		m(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pc, ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
	})
	return srv, pc.LocalAddr().String()
}

// query asks addr over network ("udp" or "tcp"); ednsSize 0 sends no OPT.
func query(t *testing.T, addr, network, name string, qtype uint16, ednsSize uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if ednsSize > 0 {
		m.SetEdns0(ednsSize, false)
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

// rrs renders a section without TTLs and sorted, so rotation does not matter.
func rrs(section []dns.RR) []string {
	var out []string
	for _, rr := range section {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		f = slices.Delete(f, 1, 2) // the TTL
		if rr.Header().Rrtype == dns.TypeSOA {
			f[5] = "SERIAL"
		}
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

func testView() *fakeView {
	v := &fakeView{}
	noSMTP := healthy
	noSMTP.SMTP = false
	full := healthy
	full.Spool = false
	noEtcd := healthy
	noEtcd.Etcd = false
	v.set(true,
		member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor),
		member("node-2", "10.0.0.2", gossip.StateAlive, noSMTP, gossip.RoleCentral, gossip.RoleSensor),
		member("node-3", "fd00::3", gossip.StateAlive, healthy, gossip.RoleSensor),
		member("node-4", "10.0.0.4", gossip.StateDead, healthy, gossip.RoleCentral, gossip.RoleSensor),
		member("node-5", "10.0.0.5", gossip.StateAlive, full, gossip.RoleSensor),
		member("node-6", "10.0.0.6", gossip.StateLeft, healthy, gossip.RoleCentral, gossip.RoleSensor),
		member("node-7", "10.0.0.7", gossip.StateAlive, noEtcd, gossip.RoleCentral),
	)
	return v
}

func TestAnswers(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := startServer(t, testView(), func(o *Options) { o.Registerer = reg })
	soa := "cluster.example. IN SOA node-1.nodes.cluster.example. hostmaster.cluster.example. SERIAL 3600 600 86400 5"

	tests := []struct {
		name     string
		qname    string
		qtype    uint16
		rcode    int
		aa       bool
		answer   []string
		extra    []string
		authSOA  bool
		noAnswer bool
	}{
		{name: "smtp A", qname: "smtp." + zone, qtype: dns.TypeA, aa: true,
			answer: []string{"smtp.cluster.example. IN A 10.0.0.1"}},
		{name: "smtp AAAA", qname: "smtp." + zone, qtype: dns.TypeAAAA, aa: true,
			answer: []string{"smtp.cluster.example. IN AAAA fd00::3"}},
		{name: "smtp any case", qname: "SMTP.Cluster.EXAMPLE.", qtype: dns.TypeA, aa: true,
			answer: []string{"SMTP.Cluster.EXAMPLE. IN A 10.0.0.1"}},
		{name: "central A", qname: "central." + zone, qtype: dns.TypeA, aa: true,
			answer: []string{"central.cluster.example. IN A 10.0.0.1", "central.cluster.example. IN A 10.0.0.2"}},
		{name: "central AAAA", qname: "central." + zone, qtype: dns.TypeAAAA, aa: true, authSOA: true},
		{name: "smtp SRV", qname: "_smtp._tcp." + zone, qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_smtp._tcp.cluster.example. IN SRV 10 10 25 node-1.nodes.cluster.example.",
				"_smtp._tcp.cluster.example. IN SRV 10 10 25 node-3.nodes.cluster.example.",
			},
			extra: []string{
				"node-1.nodes.cluster.example. IN A 10.0.0.1",
				"node-3.nodes.cluster.example. IN AAAA fd00::3",
			}},
		{name: "grpc SRV", qname: "_osprey-grpc._tcp." + zone, qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_osprey-grpc._tcp.cluster.example. IN SRV 10 10 7443 node-1.nodes.cluster.example.",
				"_osprey-grpc._tcp.cluster.example. IN SRV 10 10 7443 node-2.nodes.cluster.example.",
			},
			extra: []string{
				"node-1.nodes.cluster.example. IN A 10.0.0.1",
				"node-2.nodes.cluster.example. IN A 10.0.0.2",
			}},
		{name: "node A", qname: "node-2.nodes." + zone, qtype: dns.TypeA, aa: true,
			answer: []string{"node-2.nodes.cluster.example. IN A 10.0.0.2"}},
		{name: "node AAAA", qname: "node-3.nodes." + zone, qtype: dns.TypeAAAA, aa: true,
			answer: []string{"node-3.nodes.cluster.example. IN AAAA fd00::3"}},
		{name: "node NODATA", qname: "node-3.nodes." + zone, qtype: dns.TypeA, aa: true, authSOA: true},
		{name: "apex SOA", qname: zone, qtype: dns.TypeSOA, aa: true, answer: []string{soa}},
		{name: "apex NS", qname: zone, qtype: dns.TypeNS, aa: true,
			answer: []string{
				"cluster.example. IN NS node-1.nodes.cluster.example.",
				"cluster.example. IN NS node-2.nodes.cluster.example.",
			},
			extra: []string{
				"node-1.nodes.cluster.example. IN A 10.0.0.1",
				"node-2.nodes.cluster.example. IN A 10.0.0.2",
			}},
		{name: "apex A NODATA", qname: zone, qtype: dns.TypeA, aa: true, authSOA: true},
		{name: "smtp TXT NODATA", qname: "smtp." + zone, qtype: dns.TypeTXT, aa: true, authSOA: true},
		{name: "empty non-terminal nodes", qname: "nodes." + zone, qtype: dns.TypeA, aa: true, authSOA: true},
		{name: "empty non-terminal _tcp", qname: "_tcp." + zone, qtype: dns.TypeSRV, aa: true, authSOA: true},
		{name: "unknown name", qname: "www." + zone, qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "unknown service", qname: "_imap._tcp." + zone, qtype: dns.TypeSRV, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "dead node", qname: "node-4.nodes." + zone, qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "left node", qname: "node-6.nodes." + zone, qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "unhealthy node", qname: "node-5.nodes." + zone, qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "below a name", qname: "x.smtp." + zone, qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, authSOA: true},
		{name: "outside the zone", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "parent of the zone", qname: "example.", qtype: dns.TypeNS, rcode: dns.RcodeRefused},
		{name: "zone transfer", qname: zone, qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				r := query(t, addr, network, tt.qname, tt.qtype, 0)
				if r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if r.Authoritative != tt.aa || r.RecursionAvailable || r.Truncated {
					t.Errorf("flags aa=%v ra=%v tc=%v, want aa=%v ra=false tc=false", r.Authoritative, r.RecursionAvailable, r.Truncated, tt.aa)
				}
				if diff := cmp.Diff(tt.answer, rrs(r.Answer)); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.extra, rrs(r.Extra)); diff != "" {
					t.Errorf("additional (-want +got):\n%s", diff)
				}
				gotSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
				if gotSOA != tt.authSOA || (!tt.authSOA && len(r.Ns) != 0) {
					t.Errorf("authority %v, want SOA: %v", r.Ns, tt.authSOA)
				}
				for _, rr := range slices.Concat(r.Answer, r.Ns, r.Extra) {
					if ttl := rr.Header().Ttl; ttl != 5 {
						t.Errorf("%v: TTL %d, want 5", rr, ttl)
					}
				}
			})
		}
	}

	if got := counterValue(t, reg, "osprey_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NXDOMAIN"}); got != 2*5 {
		t.Errorf("A NXDOMAIN queries counted %v, want 10", got)
	}
}

// counterValue reads one counter of a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

func TestEDNS(t *testing.T) {
	_, addr := startServer(t, testView())
	r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 4096)
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != DefaultMaxUDPSize {
		t.Errorf("OPT %v, want one with UDP size %d", opt, DefaultMaxUDPSize)
	}

	m := new(dns.Msg)
	m.SetQuestion("smtp."+zone, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: rcode %s, want BADVERS", dns.RcodeToString[r.Rcode])
	}
}

func TestRoundRobin(t *testing.T) {
	v := &fakeView{}
	v.set(true,
		member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleSensor),
		member("node-2", "10.0.0.2", gossip.StateAlive, healthy, gossip.RoleSensor),
		member("node-3", "10.0.0.3", gossip.StateAlive, healthy, gossip.RoleSensor),
	)
	_, addr := startServer(t, v)
	all := []string{
		"smtp.cluster.example. IN A 10.0.0.1",
		"smtp.cluster.example. IN A 10.0.0.2",
		"smtp.cluster.example. IN A 10.0.0.3",
	}
	firsts := map[string]bool{}
	var orders []string
	for range 3 {
		r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 0)
		if diff := cmp.Diff(all, rrs(r.Answer)); diff != "" {
			t.Fatalf("answer (-want +got):\n%s", diff)
		}
		firsts[r.Answer[0].(*dns.A).A.String()] = true
		var order []string
		for _, rr := range r.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		orders = append(orders, strings.Join(order, ","))
	}
	if len(firsts) != 3 {
		t.Errorf("3 queries put %v first, want each node once; orders %v", firsts, orders)
	}
}

func TestTruncation(t *testing.T) {
	v := &fakeView{}
	var ms []gossip.Member
	for i := range 40 {
		ms = append(ms, member(fmt.Sprintf("node-%02d", i), fmt.Sprintf("fd00::%x", i+1), gossip.StateAlive, healthy, gossip.RoleSensor))
	}
	v.set(true, ms...)
	reg := prometheus.NewRegistry()
	_, addr := startServer(t, v, func(o *Options) { o.Registerer = reg })

	// Plain UDP holds 512 bytes: a part of the answer, with TC set.
	r := query(t, addr, "udp", "smtp."+zone, dns.TypeAAAA, 0)
	if !r.Truncated || len(r.Answer) >= 40 {
		t.Errorf("UDP without EDNS0: tc=%v with %d answers, want tc=true with fewer than 40", r.Truncated, len(r.Answer))
	}
	r.Compress = true
	if n := r.Len(); n > 512 {
		t.Errorf("UDP answer is %d bytes, more than 512", n)
	}
	// TCP gets them all.
	r = query(t, addr, "tcp", "smtp."+zone, dns.TypeAAAA, 0)
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("TCP: tc=%v with %d answers, want all 40", r.Truncated, len(r.Answer))
	}
	// So does UDP with a large enough EDNS0 size.
	r = query(t, addr, "udp", "smtp."+zone, dns.TypeAAAA, 4096)
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("UDP with EDNS0 4096: tc=%v with %d answers, want all 40", r.Truncated, len(r.Answer))
	}
	if got := counterValue(t, reg, "osprey_dns_truncated_total", nil); got != 1 {
		t.Errorf("truncated counter %v, want 1", got)
	}

	// SRV: glue that does not fit is dropped without TC.
	v.set(true, ms[:20]...)
	r = query(t, addr, "udp", "_smtp._tcp."+zone, dns.TypeSRV, 1232)
	if r.Truncated || len(r.Answer) != 20 || len(rrs(r.Extra)) >= 20 {
		t.Errorf("SRV over UDP: tc=%v, %d answers, %d glue; want tc=false, 20 answers, some glue dropped",
			r.Truncated, len(r.Answer), len(rrs(r.Extra)))
	}
}

func TestNoQuorum(t *testing.T) {
	v := testView()
	_, addr := startServer(t, v)
	v.set(false, member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor))
	for _, network := range []string{"udp", "tcp"} {
		for _, q := range []struct {
			name  string
			qtype uint16
			rcode int
		}{
			{"smtp." + zone, dns.TypeA, dns.RcodeServerFailure},
			{"_smtp._tcp." + zone, dns.TypeSRV, dns.RcodeServerFailure},
			{zone, dns.TypeSOA, dns.RcodeServerFailure},
			{"www." + zone, dns.TypeA, dns.RcodeServerFailure},
			{"example.com.", dns.TypeA, dns.RcodeRefused},
		} {
			r := query(t, addr, network, q.name, q.qtype, 0)
			if r.Rcode != q.rcode || len(r.Answer) != 0 || r.Authoritative {
				t.Errorf("%s %s %s without quorum: rcode %s aa=%v answers %v, want %s and nothing",
					network, q.name, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer, dns.RcodeToString[q.rcode])
			}
		}
	}
	// Back in the quorum, it answers again.
	v.set(true, member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor))
	if r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("with quorum: %v", r)
	}
}

func TestUnhealthyNodeLeavesAnswers(t *testing.T) {
	v := &fakeView{}
	n1 := member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleSensor)
	n2 := member("node-2", "10.0.0.2", gossip.StateAlive, healthy, gossip.RoleSensor)
	v.set(true, n1, n2)
	_, addr := startServer(t, v)
	if r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 0); len(r.Answer) != 2 {
		t.Fatalf("answers %v, want 2", r.Answer)
	}
	for _, change := range []func(*gossip.Member){
		func(m *gossip.Member) { m.State = gossip.StateDead },
		func(m *gossip.Member) { m.State = gossip.StateLeft },
		func(m *gossip.Member) { m.Meta.Health.SMTP = false },
	} {
		gone := n2
		change(&gone)
		v.set(true, n1, gone)
		r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 0)
		if diff := cmp.Diff([]string{"smtp.cluster.example. IN A 10.0.0.1"}, rrs(r.Answer)); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error, "" for none
	}{
		{"ok", Options{Zone: "cluster.example", NodeName: "n1", View: &fakeView{}}, nil},
		{"all wrong", Options{Zone: "", NodeName: "", TTL: -1, MaxUDPSize: 100, Addr: "nope"},
			[]string{"--dns-zone: required", "--node-name: required", "dns view: required", "dns TTL", "dns max UDP size", "--dns-addr"}},
		{"root zone", Options{Zone: ".", NodeName: "n1", View: &fakeView{}}, []string{"--dns-zone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate() = %v, want errors %v", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestRunStops(t *testing.T) {
	srv, err := New(Options{Zone: zone, NodeName: "n1", View: &fakeView{}, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestSOASerialFollowsMembership(t *testing.T) {
	v := &fakeView{}
	n1 := member("node-1", "10.0.0.1", gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor)
	n2 := member("node-2", "10.0.0.2", gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor)
	v.set(true, n1, n2)
	_, addr := startServer(t, v)
	serial := func() uint32 {
		t.Helper()
		r := query(t, addr, "udp", zone, dns.TypeSOA, 0)
		if len(r.Answer) != 1 {
			t.Fatalf("SOA answer %v", r.Answer)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	s1, s2 := serial(), serial()
	if s1 != s2 {
		t.Errorf("serial changed without a change: %d, %d", s1, s2)
	}
	v.set(true, n1)
	if s3 := serial(); s3 == s1 {
		t.Errorf("serial %d did not change when node-2 went away", s3)
	}
}
