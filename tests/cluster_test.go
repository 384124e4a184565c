package tests

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
)

// The cluster tests run three `osprey central --sensor` processes on
// 127.0.0.1, 127.0.0.2 and 127.0.0.3 (loopback aliases need no setup on
// Linux), each with an embedded etcd member of one quorum, gossip and a DNS
// responder, started with nothing but their flags. Every node listens on the
// same ports at its own IP, as nodes on three hosts would, so that one DNS
// name with a port reaches any of them. The ports are picked up front (free
// on all three addresses): etcd members must know each other's peer URLs
// before they start.

const clusterZone = "cluster.test."

// clusterIPs are the nodes' addresses, node i+1 at clusterIPs[i].
var clusterIPs = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

// clusterPorts are the ports every node listens on, at its own IP.
type clusterPorts struct {
	http, grpc, gossip, dns, etcdClient, etcdPeer, smtp int
}

// testCluster is three central nodes as processes.
type testCluster struct {
	t       *testing.T
	ports   clusterPorts
	keyFile string
	dbURL   string // the PostgreSQL the nodes share
	token   string // an admin's API token
	nodes   []*clusterProc
}

// clusterProc is one central node; proc changes when the node restarts.
type clusterProc struct {
	*proc
	name, ip, dataDir string
	api               *api.Client
	args              []string
}

// freePort returns a port that is free for TCP (and UDP when udp is set)
// on every one of ips, at the time of the call.
func freePort(t *testing.T, ips []string, udp bool) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		closers := []func() error{ln.Close}
		ok := true
		for i, ip := range ips {
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			if i > 0 {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					ok = false
					break
				}
				closers = append(closers, l.Close)
			}
			if udp {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					ok = false
					break
				}
				closers = append(closers, pc.Close)
			}
		}
		for _, c := range closers {
			c()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// pickClusterPorts picks distinct ports free on the three addresses.
func pickClusterPorts(t *testing.T) clusterPorts {
	t.Helper()
	seen := map[int]bool{}
	pick := func(udp bool) int {
		for {
			p := freePort(t, clusterIPs, udp)
			if !seen[p] {
				seen[p] = true
				return p
			}
		}
	}
	return clusterPorts{http: pick(false), grpc: pick(false), gossip: pick(true), dns: pick(true),
		etcdClient: pick(false), etcdPeer: pick(false), smtp: pick(false)}
}

// startCluster starts the three nodes at once (the etcd quorum needs two
// of them) and waits until each is ready.
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	return startClusterDB(t, pgtest.DB(t))
}

// startClusterDB is startCluster with the nodes' database at dbURL.
func startClusterDB(t *testing.T, dbURL string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, ports: pickClusterPorts(t), keyFile: filepath.Join(t.TempDir(), "cluster.key")}
	// Every node needs the same cluster key; the test gives it the file.
	if _, err := pki.LoadOrCreateKEK(c.keyFile); err != nil {
		t.Fatal(err)
	}
	// The nodes share one PostgreSQL.
	c.dbURL = dbURL
	var initial, join []string
	for i, ip := range clusterIPs {
		initial = append(initial, fmt.Sprintf("n%d=https://%s:%d", i+1, ip, c.ports.etcdPeer))
		join = append(join, net.JoinHostPort(ip, strconv.Itoa(c.ports.gossip)))
	}
	for i, ip := range clusterIPs {
		n := &clusterProc{name: fmt.Sprintf("n%d", i+1), ip: ip, dataDir: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1))}
		at := func(port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
		n.args = []string{"central",
			"--node-name", n.name,
			"--data-dir", n.dataDir,
			"--http-addr", at(c.ports.http),
			"--grpc-addr", at(c.ports.grpc),
			"--gossip-addr", at(c.ports.gossip),
			"--join", strings.Join(join, ","),
			"--gossip-key", testGossipKey,
			"--dns-addr", at(c.ports.dns),
			"--dns-zone", clusterZone,
			"--etcd-initial-cluster", strings.Join(initial, ","),
			"--etcd-client-addr", at(c.ports.etcdClient),
			"--etcd-peer-addr", at(c.ports.etcdPeer),
			"--cluster-key-file", c.keyFile,
			"--db-url", c.dbURL,
			"--bootstrap-admin-password", adminPassword,
			"--sensor",
			"--log-format", "text",
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.proc = start(t, sensorEnv, n.args...)
	}
	for _, n := range c.nodes {
		c.ready(n)
	}
	return c
}

// sensorEnv keeps the metrics listeners of the sensor components (in the
// central processes and in `osprey sensor`) off fixed ports.
var sensorEnv = []string{"OSPREY_METRICS_ADDR=127.0.0.1:0"}

// ready waits for n's ready banner and makes its API client. The clients
// authenticate with an API token, made once: the tests poll, and a
// password would cost a bcrypt hash on every call.
func (c *testCluster) ready(n *clusterProc) {
	c.t.Helper()
	base := n.waitLine(c.t, centralAPILine)[1]
	tlsConfig := &tls.Config{InsecureSkipVerify: true}
	if c.token == "" {
		admin, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: adminPassword, TLSConfig: tlsConfig})
		if err != nil {
			c.t.Fatal(err)
		}
		tok, err := admin.CreateToken(c.t.Context(), api.TokenRequest{Kind: api.TokenAPI, Description: "cluster test"})
		if err != nil {
			c.t.Fatal(err)
		}
		c.token = tok.Secret
	}
	cl, err := api.NewClient(api.Config{Address: base, Token: c.token, TLSConfig: tlsConfig})
	if err != nil {
		c.t.Fatal(err)
	}
	n.api = cl
}

// restart starts a stopped node again on its data dir.
func (c *testCluster) restart(n *clusterProc) {
	c.t.Helper()
	n.proc = start(c.t, sensorEnv, n.args...)
	c.ready(n)
}

func (c *testCluster) node(name string) *clusterProc {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

func (c *testCluster) others(n *clusterProc) []*clusterProc {
	var out []*clusterProc
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

func (n *clusterProc) dnsAddr(port int) string { return net.JoinHostPort(n.ip, strconv.Itoa(port)) }

// waitExit waits for a clean exit after the signal called what.
func (p *proc) waitExit(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after %s: %v, want status 0", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after %s", what)
	}
}

// lookupA asks the DNS server at server for name's A records, in the order
// of the answer; rcode is the answer's status.
func lookupA(server, name string) (ips []string, rcode int, err error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	cl := &dns.Client{Timeout: 500 * time.Millisecond}
	resp, _, err := cl.Exchange(m, server)
	if err != nil {
		return nil, 0, err
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A)
			ips = append(ips, ip.Unmap().String())
		}
	}
	return ips, resp.Rcode, nil
}

// waitAnswer polls server until ok accepts the sorted A records of name.
func waitAnswer(t *testing.T, server, name, what string, ok func([]string) bool) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("dns %s at %s: %s", name, server, what), func() bool {
		ips, _, err := lookupA(server, name)
		slices.Sort(ips)
		return err == nil && ok(ips)
	})
}

func equalIPs(want ...string) func([]string) bool {
	want = slices.Sorted(slices.Values(want))
	return func(got []string) bool { return slices.Equal(got, want) }
}

func ipsOf(nodes ...*clusterProc) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ip)
	}
	return out
}

// lookDig finds dig (Debian dnsutils): it fails the test when dig is missing
// and OSPREY_REQUIRE_PEERS=1, and skips it otherwise.
func lookDig(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatalf("dig is missing (Debian package dnsutils) and OSPREY_REQUIRE_PEERS=1: %v", err)
		}
		t.Skipf("dig is not installed (Debian package dnsutils): %v", err)
	}
	return path
}

// digResult is what dig printed: the status, and the answer's values in order.
type digResult struct {
	status string
	values []string
}

func runDig(t *testing.T, dig, server string, args ...string) digResult {
	t.Helper()
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"@" + host, "-p", port, "+noall", "+comments", "+answer", "+time=2", "+tries=1"}, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	var r digResult
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if _, s, ok := strings.Cut(line, "status: "); ok {
				r.status, _, _ = strings.Cut(s, ",")
			}
		case line != "" && !strings.HasPrefix(line, ";"):
			if f := strings.Fields(line); len(f) >= 5 {
				r.values = append(r.values, strings.Join(f[4:], " "))
			}
		}
	}
	return r
}

// waitCluster polls every node's GET /api/v1/nodes until ok accepts its view.
func waitCluster(t *testing.T, nodes []*clusterProc, what string, ok func(*api.NodeList) bool) {
	t.Helper()
	for _, n := range nodes {
		testwait.For(t, n.name+"'s view: "+what, func() bool {
			l, err := n.api.Nodes(t.Context())
			return err == nil && ok(l)
		})
	}
}

// states maps each node's name to its state in l.
func states(l *api.NodeList) map[string]api.NodeState {
	out := map[string]api.NodeState{}
	for _, n := range l.Nodes {
		out[n.Name] = n.State
	}
	return out
}

func allHealthy(names ...string) func(*api.NodeList) bool {
	return func(l *api.NodeList) bool {
		n := 0
		for _, m := range l.Nodes {
			if slices.Contains(names, m.Name) {
				if m.State != api.NodeAlive || !m.Health.Etcd || !m.Health.GRPC || !m.Health.HTTP {
					return false
				}
				n++
			}
		}
		return n == len(names) && l.DNS.Quorum
	}
}

// putSMTP writes the sensor's SMTP integration through n, retrying (an etcd
// leader election refuses writes for a second or two), and returns the
// version written.
func putSMTP(t *testing.T, n *clusterProc, sensor string, cfg *api.SMTPIntegration) int64 {
	t.Helper()
	var v int64
	var err error
	defer func() {
		if err != nil {
			t.Logf("the last PUT: %v", err)
		}
	}()
	testwait.For(t, fmt.Sprintf("a PUT of %s's SMTP integration through %s", sensor, n.name), func() bool {
		_, v, err = n.api.PutSMTP(t.Context(), sensor, cfg, 0)
		return err == nil
	})
	return v
}

// TestClusterFailover is the cluster's life in one run: three nodes form a
// cluster (one etcd quorum, one gossip cluster, DNS on each); real dig gets
// all three, rotated; a sensor enrolls through the cluster's DNS name; the
// node holding its stream is killed (-9) and leaves every other node's
// answers within the detection time, etcd keeps taking writes, and the
// sensor moves to another node whose status every node shows; the node
// comes back and rejoins the answers; a stopped node (SIGTERM) leaves the
// answers at once; with two of three killed the last refuses writes with
// 503 and answers SERVFAIL, and after the two restart nothing is lost.
func TestClusterFailover(t *testing.T) {
	dig := lookDig(t)
	c := startCluster(t)
	ctx := t.Context()
	all := []string{"n1", "n2", "n3"}
	dnsPort := c.ports.dns
	central := "central." + clusterZone

	// One cluster: every node sees three healthy members and the quorum.
	waitCluster(t, c.nodes, "three healthy members", allHealthy(all...))
	for _, n := range c.nodes {
		waitAnswer(t, n.dnsAddr(dnsPort), central, "all three", equalIPs(clusterIPs...))
	}
	// Real dig: all three, rotated per query.
	firsts := map[string]bool{}
	for range 3 {
		r := runDig(t, dig, c.nodes[0].dnsAddr(dnsPort), central, "A")
		if r.status != "NOERROR" || !slices.Equal(slices.Sorted(slices.Values(r.values)), clusterIPs) {
			t.Fatalf("dig %s: status %s, values %v; want NOERROR and %v", central, r.status, r.values, clusterIPs)
		}
		firsts[r.values[0]] = true
	}
	if len(firsts) < 2 {
		t.Errorf("dig %s three times: always %v first, want the answers rotated", central, firsts)
	}
	l, err := c.nodes[0].api.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		wantHTTP := net.JoinHostPort(c.node(n.Name).ip, strconv.Itoa(c.ports.http))
		if n.HTTPAddr != wantHTTP || !slices.Contains(n.Roles, api.NodeRoleSensor) {
			t.Errorf("%s: http %s roles %v; want %s and the sensor role", n.Name, n.HTTPAddr, n.Roles, wantHTTP)
		}
	}

	// A sensor enrolls and streams through the cluster's DNS name: each
	// entry of --central asks one node's DNS responder for central.<zone>
	// (gRPC's dns resolver takes the DNS server as the URL's authority).
	var targets []string
	for _, n := range c.nodes {
		targets = append(targets, fmt.Sprintf("dns://%s/%s:%d", n.dnsAddr(dnsPort), strings.TrimSuffix(central, "."), c.ports.grpc))
	}
	tok, err := c.nodes[0].api.CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	sensorArgs := []string{"sensor", "--central", strings.Join(targets, ","), "--data-dir", filepath.Join(t.TempDir(), "sensor"),
		"--name", "branch-1", "--log-format", "text"}
	s := start(t, sensorEnv, append(sensorArgs, "--join-token", tok.Secret)...)
	id := s.waitLine(t, enrolledLine)[1]
	if _, err := c.nodes[1].api.ApproveSensor(ctx, id); err != nil {
		t.Fatal(err)
	}
	smtp := &api.SMTPIntegration{Enabled: false, Listen: "127.0.0.9:2525", DestinationDomains: []string{"example.com"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
	v1 := putSMTP(t, c.nodes[2], id, smtp)
	first := waitSensor(t, c.nodes[0].api, id, fmt.Sprintf("online with version %d", v1), func(v *api.Sensor) bool {
		return v.Online && v.AppliedVersion == v1
	})
	holder := c.node(first.Node)
	survivors := c.others(holder)
	t.Logf("the sensor streams with %s", holder.name)

	// kill -9 the node holding the stream: it leaves the others' answers
	// within the detection time (about a second; 3 s leaves room for a
	// loaded machine).
	killed := time.Now()
	holder.kill(t)
	for _, n := range survivors {
		waitAnswer(t, n.dnsAddr(dnsPort), central, "without "+holder.name, equalIPs(ipsOf(survivors...)...))
		t.Logf("%s dropped %s from its answer %v after the kill", n.name, holder.name, time.Since(killed).Round(time.Millisecond))
		if since := time.Since(killed); since > 3*time.Second {
			t.Errorf("%s still answered with the killed %s for %v, want within the detection time", n.name, holder.name, since)
		}
	}
	r := runDig(t, dig, survivors[0].dnsAddr(dnsPort), central, "A")
	if slices.Contains(r.values, holder.ip) || r.status != "NOERROR" {
		t.Errorf("dig after the kill: %s %v, want NOERROR without %s", r.status, r.values, holder.ip)
	}
	waitCluster(t, survivors, holder.name+" dead", func(l *api.NodeList) bool {
		return states(l)[holder.name] == api.NodeDead && allHealthy(survivors[0].name, survivors[1].name)(l)
	})

	// The API client resolves the cluster's name through a survivor's DNS
	// and reaches a live node.
	viaDNS, err := api.NewClient(api.Config{
		Address: fmt.Sprintf("dns://%s/%s:%d", survivors[0].dnsAddr(dnsPort), strings.TrimSuffix(central, "."), c.ports.http),
		Token:   c.token, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := viaDNS.Nodes(ctx); err != nil || states(l)[holder.name] != api.NodeDead {
		t.Errorf("nodes through dns:///%s: %v, %v; want %s dead", central, l, err, holder.name)
	}

	// etcd keeps taking writes with one member of three down.
	smtp.DestinationDomains = []string{"example.org"}
	v2 := putSMTP(t, survivors[0], id, smtp)

	// The sensor moved to a survivor, applied the new version, and every
	// surviving node says so.
	moved := waitSensor(t, survivors[1].api, id, "online on a survivor with version "+strconv.FormatInt(v2, 10), func(v *api.Sensor) bool {
		return v.Online && v.Node != holder.name && v.AppliedVersion == v2
	})
	waitSensor(t, survivors[0].api, id, "the same status on the other survivor", func(v *api.Sensor) bool {
		return v.Online && v.Node == moved.Node && v.AppliedVersion == v2 && v.ConfigVersion == v2 && v.LastError == ""
	})

	// The killed node comes back and rejoins every answer.
	c.restart(holder)
	for _, n := range c.nodes {
		waitAnswer(t, n.dnsAddr(dnsPort), central, "all three again", equalIPs(clusterIPs...))
	}
	waitCluster(t, c.nodes, "three healthy members again", allHealthy(all...))

	// A graceful stop leaves the answers at once: no failure detection.
	leaver := c.nodes[2]
	if leaver == holder {
		leaver = c.nodes[1]
	}
	stayers := c.others(leaver)
	if err := leaver.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for _, n := range stayers {
		waitAnswer(t, n.dnsAddr(dnsPort), central, "without "+leaver.name, equalIPs(ipsOf(stayers...)...))
	}
	left := time.Since(stopped)
	t.Logf("%s left the others' answers %v after SIGTERM", leaver.name, left.Round(time.Millisecond))
	if left > 500*time.Millisecond {
		t.Errorf("%s left the answers %v after SIGTERM, want at once (no failure detection)", leaver.name, left)
	}
	leaver.waitExit(t, "SIGTERM")
	waitCluster(t, stayers, leaver.name+" left", func(l *api.NodeList) bool { return states(l)[leaver.name] == api.NodeLeft })
	c.restart(leaver)
	for _, n := range c.nodes {
		waitAnswer(t, n.dnsAddr(dnsPort), central, "all three after the restart", equalIPs(clusterIPs...))
	}
	waitCluster(t, c.nodes, "three healthy members after the restart", allHealthy(all...))

	// Two of three killed: the last node has no quorum. It refuses writes
	// with a clear 503 and answers SERVFAIL rather than name itself alone.
	last := c.nodes[0]
	for _, n := range c.others(last) {
		n.kill(t)
	}
	waitReady(t, last, http.StatusServiceUnavailable)
	testwait.For(t, "SERVFAIL from DNS without quorum", func() bool {
		_, rcode, err := lookupA(last.dnsAddr(dnsPort), central)
		return err == nil && rcode == dns.RcodeServerFailure
	})
	if r := runDig(t, dig, last.dnsAddr(dnsPort), central, "A"); r.status != "SERVFAIL" {
		t.Errorf("dig without quorum: %s %v, want SERVFAIL", r.status, r.values)
	}
	refused := *smtp
	refused.DestinationDomains = []string{"refused.example"}
	putStart := time.Now()
	_, _, err = last.api.PutSMTP(ctx, id, &refused, 0)
	took := time.Since(putStart)
	t.Logf("PUT without quorum: %v after %v", err, took.Round(time.Millisecond))
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable || !strings.Contains(apiErr.Message, "quorum") {
		t.Errorf("PUT without quorum: got %v, want a 503 that names the quorum", err)
	}
	if took > 2*time.Second {
		t.Errorf("PUT without quorum took %v, want the 503 at once", took)
	}

	// The two come back: writes go through again, and what was written
	// before is intact (the refused write is not there).
	for _, n := range c.others(last) {
		n.proc = start(t, sensorEnv, n.args...)
	}
	for _, n := range c.others(last) {
		c.ready(n)
	}
	waitReady(t, last, http.StatusOK)
	got, gotVersion, err := last.api.SMTP(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if gotVersion != v2 || !slices.Equal(got.DestinationDomains, []string{"example.org"}) {
		t.Errorf("after the quorum came back: version %d domains %v, want version %d with example.org", gotVersion, got.DestinationDomains, v2)
	}
	smtp.DestinationDomains = []string{"example.net"}
	putSMTP(t, last, id, smtp)
	waitCluster(t, c.nodes, "three healthy members at the end", allHealthy(all...))
}

// waitReady polls n's /readyz until it answers status.
func waitReady(t *testing.T, n *clusterProc, status int) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	url := fmt.Sprintf("https://%s/readyz", net.JoinHostPort(n.ip, strconv.Itoa(portOf(t, n))))
	testwait.For(t, fmt.Sprintf("%s /readyz to answer %d", n.name, status), func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == status
	})
}

// portOf is n's HTTP port, from its --http-addr.
func portOf(t *testing.T, n *clusterProc) int {
	t.Helper()
	i := slices.Index(n.args, "--http-addr")
	_, p, err := net.SplitHostPort(n.args[i+1])
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return port
}

// sensorTakesMail reports whether the binary's Sensor component runs SMTP
// ingestion (its flags then name the SMTP greeting's host name).
func sensorTakesMail(t *testing.T) bool {
	t.Helper()
	out, _ := run(t, nil, "", "sensor", "-h")
	return strings.Contains(out, "-hostname")
}

// TestClusterSMTPDeliveryAcrossFailover: an SMTP client that resolves
// smtp.<zone> through the cluster's DNS and tries each address in turn, as
// an MTA does, sends a continuous stream of messages while the node it
// delivers to is killed (-9); every message answered 250 is uploaded and
// recorded, counted by its unique envelope sender, once the killed node
// is back (its spool holds what it accepted before it died). A message cut
// mid-DATA may be recorded twice (the client sent it again): at least once.
func TestClusterSMTPDeliveryAcrossFailover(t *testing.T) {
	if !sensorTakesMail(t) {
		t.Skip("the Sensor component does not take mail by SMTP in this build yet")
	}
	dig := lookDig(t)
	c := startCluster(t)
	ctx := t.Context()
	waitCluster(t, c.nodes, "three healthy members", allHealthy("n1", "n2", "n3"))
	for _, n := range c.nodes {
		putSMTP(t, n, n.name, &api.SMTPIntegration{Enabled: true, Listen: net.JoinHostPort(n.ip, strconv.Itoa(c.ports.smtp)),
			DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
			MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB}})
	}
	smtpName := "smtp." + clusterZone
	var resolvers []string
	for _, n := range c.nodes {
		resolvers = append(resolvers, n.dnsAddr(c.ports.dns))
		waitAnswer(t, n.dnsAddr(c.ports.dns), smtpName, "all three", equalIPs(clusterIPs...))
	}
	// Real dig: smtp.<zone> names all three, rotated per query.
	firsts := map[string]bool{}
	for range 3 {
		r := runDig(t, dig, resolvers[1], smtpName, "A")
		if r.status != "NOERROR" || !slices.Equal(slices.Sorted(slices.Values(r.values)), clusterIPs) {
			t.Fatalf("dig %s: status %s, values %v; want NOERROR and %v", smtpName, r.status, r.values, clusterIPs)
		}
		firsts[r.values[0]] = true
	}
	if len(firsts) < 2 {
		t.Errorf("dig %s three times: always %v first, want the answers rotated", smtpName, firsts)
	}

	// A continuous stream; once it flows, kill -9 the node that took the
	// last message, while the stream goes on to the others.
	m := &mta{resolvers: resolvers, name: smtpName, port: c.ports.smtp, byIP: map[string]int{}}
	stop := make(chan struct{})
	done := make(chan []string)
	go func() { done <- m.sendUntil(stop) }()
	testwait.For(t, "50 messages accepted", func() bool { return m.count() >= 50 })
	victim := c.nodes[slices.Index(clusterIPs, m.last())]
	victim.kill(t)
	killedAt := m.count()
	testwait.For(t, "50 more messages accepted after the kill", func() bool { return m.count() >= killedAt+50 })
	close(stop)
	sent := <-done
	t.Logf("killed %s; %d messages accepted, %d tries refused or cut, by node: %v", victim.name, len(sent), m.failures, m.byIP)
	if len(sent) == 0 {
		t.Fatal("no message was accepted")
	}
	if m.byIP[victim.ip] == 0 || len(m.byIP) < 2 {
		t.Errorf("messages by node %v: want some to the killed node and some to the others", m.byIP)
	}

	// The killed node comes back and uploads what it accepted before it
	// died: every accepted message is recorded.
	c.restart(victim)
	want := map[string]bool{}
	for _, s := range sent {
		want[s] = true
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: c.dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got map[string]int
	testwait.For(t, fmt.Sprintf("the %d accepted messages recorded", len(want)), func() bool {
		var err error
		got, err = recordedSenders(ctx, db)
		return err == nil && all(want, func(s string) bool { return got[s] > 0 })
	})
	twice := 0
	for s := range want {
		switch {
		case got[s] == 0:
			t.Errorf("message from %s was accepted (250) but never recorded", s)
		case got[s] > 1:
			// Its DATA reached the dying node's spool before the 250 could
			// be sent, so the client sent it again elsewhere: at least once.
			twice++
		}
	}
	t.Logf("%d accepted messages recorded, %d of them twice", len(want), twice)
}

// mta delivers like a mail server: it resolves the name through the first
// DNS server that answers, and tries each address until one takes the
// message; a message counts as sent once the server answered 250 to DATA.
type mta struct {
	resolvers []string
	name      string
	port      int

	mu       sync.Mutex
	lastIP   string
	accepted int

	// Read once sendUntil returned.
	failures int
	byIP     map[string]int
}

func (m *mta) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastIP
}

// count is how many messages were accepted so far.
func (m *mta) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepted
}

// sendUntil sends messages one after another until stop is closed, and
// returns the envelope senders of those accepted.
func (m *mta) sendUntil(stop <-chan struct{}) []string {
	var sent []string
	for seq := 1; ; {
		select {
		case <-stop:
			return sent
		default:
		}
		from := fmt.Sprintf("m%05d@example.org", seq)
		ok := false
		for _, ip := range m.resolve() {
			if err := deliver(net.JoinHostPort(ip, strconv.Itoa(m.port)), from); err != nil {
				m.failures++
				continue
			}
			m.mu.Lock()
			m.lastIP = ip
			m.accepted++
			m.mu.Unlock()
			m.byIP[ip]++
			ok = true
			break
		}
		time.Sleep(5 * time.Millisecond) // a steady stream, not a flood
		if !ok {
			// No address took it: an MTA keeps it queued and tries again.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		sent = append(sent, from)
		seq++
	}
}

func (m *mta) resolve() []string {
	for _, r := range m.resolvers {
		ips, rcode, err := lookupA(r, m.name)
		if err == nil && rcode == dns.RcodeSuccess {
			return ips
		}
	}
	return nil
}

// deliver sends one small message to addr from the sender from.
func deliver(addr, from string) error {
	return sendMessage(addr, from, "failover "+from, "hello")
}

// sendMessage sends one message to user@example.com with subject and
// body, and its Message-ID made of from.
func sendMessage(addr, from, subject, body string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, "smtp.test")
	if err != nil {
		return err
	}
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt("user@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <user@example.com>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\n%s\r\n", from, subject, from, body)
	if err := w.Close(); err != nil { // the server's 250 (or an error) to DATA
		return err
	}
	_ = c.Quit()
	return nil
}

// recordedSenders reads every message record from db, the cluster's database,
// and counts them by envelope sender.
func recordedSenders(ctx context.Context, db *sqlstore.Store) (map[string]int, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string]int{}
	q := sqlstore.MessageQuery{Limit: sqlstore.MaxPageLimit}
	for {
		page, err := db.ListMessages(rctx, store.AllTenants(), q)
		if err != nil {
			return nil, err
		}
		for _, rec := range page.Messages {
			out[rec.GetEnvelope().GetMailFrom()]++
		}
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			return out, nil
		}
	}
}

// all reports whether every key of m passes f.
func all(m map[string]bool, f func(string) bool) bool {
	for k := range m {
		if !f(k) {
			return false
		}
	}
	return true
}
