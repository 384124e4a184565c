package dnsserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/central/gossip"
)

// lookPeer finds a test peer program; it fails the test when the peer is
// missing and OSPREY_REQUIRE_PEERS=1, and skips it otherwise.
func lookPeer(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s is missing (Debian package %s) and OSPREY_REQUIRE_PEERS=1: %v", name, pkg, err)
		}
		t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	}
	return path
}

// digResult is what dig printed: the header's status and flags, and the
// answer section's values.
type digResult struct {
	status, flags string
	values        []string
	truncated     bool
}

func runDig(t *testing.T, addr string, args ...string) digResult {
	t.Helper()
	dig := lookPeer(t, "dig", "dnsutils")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"@" + host, "-p", port, "+noall", "+comments", "+answer", "+time=3", "+tries=1"}, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	var r digResult
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "Truncated, retrying in TCP mode"):
			r.truncated = true
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if _, s, ok := strings.Cut(line, "status: "); ok {
				r.status, _, _ = strings.Cut(s, ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			r.flags, _, _ = strings.Cut(strings.TrimPrefix(line, ";; flags: "), ";")
		case line != "" && !strings.HasPrefix(line, ";"):
			f := strings.Fields(line)
			r.values = append(r.values, strings.Join(f[4:], " "))
		}
	}
	slices.Sort(r.values)
	return r
}

func TestDig(t *testing.T) {
	v := &fakeView{}
	var ms []gossip.Member
	var want []string
	for i := range 5 {
		ip := fmt.Sprintf("10.0.0.%d", i+1)
		ms = append(ms, member(fmt.Sprintf("node-%d", i+1), ip, gossip.StateAlive, healthy, gossip.RoleCentral, gossip.RoleSensor))
		want = append(want, ip)
	}
	v.set(true, ms...)
	_, addr := startServer(t, v)

	for _, proto := range []string{"+notcp", "+tcp"} {
		r := runDig(t, addr, proto, "smtp."+zone, "A")
		if r.status != "NOERROR" {
			t.Errorf("dig %s: status %q, want NOERROR", proto, r.status)
		}
		flags := strings.Fields(r.flags)
		if !slices.Contains(flags, "aa") || slices.Contains(flags, "ra") {
			t.Errorf("dig %s: flags %q, want aa and no ra", proto, r.flags)
		}
		if diff := cmp.Diff(want, r.values); diff != "" {
			t.Errorf("dig %s smtp A (-want +got):\n%s", proto, diff)
		}
	}

	r := runDig(t, addr, "www."+zone, "A")
	if r.status != "NXDOMAIN" {
		t.Errorf("dig www: status %q, want NXDOMAIN", r.status)
	}

	// 40 IPv6 nodes do not fit plain UDP: dig sees TC, retries over TCP and
	// gets them all.
	ms = nil
	want = nil
	for i := range 40 {
		ip := fmt.Sprintf("fd00::%x", i+1)
		ms = append(ms, member(fmt.Sprintf("node-%02d", i), ip, gossip.StateAlive, healthy, gossip.RoleSensor))
		want = append(want, ip)
	}
	slices.Sort(want)
	v.set(true, ms...)
	r = runDig(t, addr, "+noedns", "smtp."+zone, "AAAA")
	if !r.truncated {
		t.Error("dig +noedns AAAA with 40 nodes: no truncation seen")
	}
	if diff := cmp.Diff(want, r.values); diff != "" {
		t.Errorf("dig smtp AAAA (-want +got):\n%s", diff)
	}
}

// TestGossipClusterDNS runs three gossip nodes, each with its own DNS server
// answering from its own view, kills one and checks that the others stop
// returning it.
func TestGossipClusterDNS(t *testing.T) {
	key := gossip.EncodeKey([]byte("0123456789abcdef0123456789abcdef"))
	type node struct {
		c    *gossip.Cluster
		dns  string
		stop func()
	}
	var nodes []*node
	for i := range 3 {
		meta := gossip.Meta{
			Roles:    []gossip.Role{gossip.RoleCentral, gossip.RoleSensor},
			GRPCAddr: fmt.Sprintf("127.0.1.%d:7443", i+1),
			SMTPAddr: fmt.Sprintf("127.0.1.%d:25", i+1),
			Health:   healthy,
		}
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].c.Addr().String()}
		}
		name := fmt.Sprintf("node-%d", i+1)
		c, err := gossip.New(gossip.Options{
			NodeName: name, BindAddr: "127.0.0.1:0", Seeds: seeds,
			Key: key, RequireEncryption: true, Meta: meta,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Run(ctx)
		}()
		n := &node{c: c, stop: func() { cancel(); <-done }}
		t.Cleanup(n.stop)
		_, n.dns = startServer(t, NewView(c, func() bool { return true }), func(o *Options) { o.NodeName = name })
		nodes = append(nodes, n)
	}

	all := []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"}
	for _, n := range nodes {
		waitHealthy(t, n.c, 3)
		if diff := cmp.Diff(all, answerIPs(t, n.dns)); diff != "" {
			t.Errorf("smtp A (-want +got):\n%s", diff)
		}
	}

	start := time.Now()
	nodes[2].c.Close() // killed: no leave
	for _, n := range nodes[:2] {
		waitHealthy(t, n.c, 2)
		if diff := cmp.Diff(all[:2], answerIPs(t, n.dns)); diff != "" {
			t.Errorf("smtp A after the kill (-want +got):\n%s", diff)
		}
	}
	t.Logf("the killed node left the DNS answers after %v", time.Since(start))
}

// waitHealthy waits, without sleeping, until c sees n healthy sensor nodes.
func waitHealthy(t *testing.T, c *gossip.Cluster, n int) {
	t.Helper()
	ch, cancel := c.Subscribe()
	defer cancel()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for len(c.Healthy(gossip.RoleSensor)) != n {
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("not %d healthy nodes after 10s: %v", n, c.Members())
		}
	}
}

func answerIPs(t *testing.T, addr string) []string {
	t.Helper()
	r := query(t, addr, "udp", "smtp."+zone, dns.TypeA, 0)
	var ips []string
	for _, rr := range r.Answer {
		ips = append(ips, rr.(*dns.A).A.String())
	}
	slices.Sort(ips)
	return ips
}
