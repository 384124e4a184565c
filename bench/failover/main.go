// Command failover measures how long a killed central node stays in the
// cluster's DNS answers: the time from kill -9 of a node to its removal from
// the central.<zone> answer of every other node, over repeated trials, with
// the gossip timing Osprey ships (--gossip-timing tuned) and with
// memberlist's LAN defaults (--gossip-timing lan) for comparison.
//
// It builds `osprey`, starts three `osprey central` processes on 127.0.0.1,
// 127.0.0.2 and 127.0.0.3 (embedded etcd quorum of three, gossip, DNS), and
// for each trial kills one node (in turn) with SIGKILL, polls the DNS
// responder of each survivor every few milliseconds until the killed node's
// address is gone from all of them, then restarts the node and waits until
// every answer holds all three again and has for a moment. A resolver may
// hold an answer for the DNS TTL on top of that, so the failover a client
// sees is at most detection time + TTL.
//
// With -smtp-kills N it also runs a continuous SMTP stream through the
// cluster (an MTA-like client resolving smtp.<zone> through the nodes' DNS
// and trying each address in turn) while the node that took the last
// message is killed N times, each time restarted once it is out of the
// answers, and counts the messages answered 250 that were lost (never
// recorded by a central node) or delayed more than 10 s (recorded more than
// 10 s after the 250: those the killed node had spooled, uploaded after its
// restart).
//
// Usage: go run ./bench/failover -trials 20 -timing tuned,lan -smtp-kills 5 -smtp-conns 4
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/pkg/pki"
)

const (
	zone      = "failover.bench."
	password  = "failover bench password"
	gossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	ttl       = 5 * time.Second
)

var ips = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

func main() {
	trials := flag.Int("trials", 20, "kills per timing")
	timings := flag.String("timing", "tuned,lan", "comma-separated gossip timings (--gossip-timing) to measure")
	smtpKills := flag.Int("smtp-kills", 5, "kills of a node under a continuous SMTP stream (tuned timing); 0 skips the SMTP run")
	smtpConns := flag.Int("smtp-conns", 4, "concurrent SMTP connections of the stream")
	flag.Parse()
	bin, err := build()
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(bin))
	if *smtpKills > 0 {
		r, err := smtpFailover(bin, *smtpKills, *smtpConns)
		if err != nil {
			log.Fatalf("smtp: %v", err)
		}
		defer r.print()
	}
	type row struct {
		timing string
		times  []time.Duration
	}
	var rows []row
	for _, timing := range strings.Split(*timings, ",") {
		times, err := measure(bin, strings.TrimSpace(timing), *trials)
		if err != nil {
			log.Fatalf("%s: %v", timing, err)
		}
		rows = append(rows, row{timing, times})
	}
	fmt.Printf("\n| gossip timing | kills | removed from every answer: median | p90 | p99 (max) | min | failover (median + TTL %v) |\n", ttl)
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		slices.Sort(r.times)
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %s |\n", r.timing, len(r.times),
			ms(pct(r.times, 50)), ms(pct(r.times, 90)), ms(pct(r.times, 99)), ms(r.times[0]), ms(pct(r.times, 50)+ttl))
	}
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "failover")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "osprey")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
}

// node is one central process of the cluster.
type node struct {
	name, ip string
	args     []string
	logFile  string
	cmd      *exec.Cmd
	done     chan error
}

var apiLine = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)

// start runs the node and waits for its ready banner.
func (n *node) start() error {
	f, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	n.cmd = exec.Command(n.args[0], n.args[1:]...)
	n.cmd.Stderr = f
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.done = make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && apiLine.MatchString(sc.Text()) {
				seen = true
				close(ready)
			}
		}
		n.done <- n.cmd.Wait()
	}()
	select {
	case <-ready:
		return nil
	case err := <-n.done:
		return fmt.Errorf("%s exited before it was ready: %v (log: %s)", n.name, err, n.logFile)
	case <-time.After(90 * time.Second):
		return fmt.Errorf("%s not ready after 90s (log: %s)", n.name, n.logFile)
	}
}

func (n *node) signal(sig syscall.Signal) {
	if n.cmd != nil && n.cmd.ProcessState == nil {
		n.cmd.Process.Signal(sig)
		<-n.done
	}
}

// freePort returns a port free for TCP and UDP on every address of ips now.
func freePort(used map[int]bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		closers := []func() error{ln.Close}
		ok := !used[port]
		for i, ip := range ips {
			if !ok {
				break
			}
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			if i > 0 {
				l, err := net.Listen("tcp", addr)
				if ok = err == nil; ok {
					closers = append(closers, l.Close)
				}
			}
			if ok {
				pc, err := net.ListenPacket("udp", addr)
				if ok = err == nil; ok {
					closers = append(closers, pc.Close)
				}
			}
		}
		for _, c := range closers {
			c()
		}
		if ok {
			used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %v", ips)
}

// cluster is three central nodes as processes.
type cluster struct {
	dir   string
	ports map[string]int
	nodes []*node
	db    *pgtest.Server // the PostgreSQL the nodes share
	dbURL string
}

// startCluster starts three nodes with the gossip timing and waits until
// every DNS answer names all three.
func startCluster(bin, timing string, extra ...string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "failover-"+timing)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, ports: map[string]int{}}
	keyFile := filepath.Join(dir, "cluster.key")
	if _, err := pki.LoadOrCreateKEK(keyFile); err != nil {
		return c, err
	}
	used := map[int]bool{}
	for _, p := range []string{"http", "grpc", "gossip", "dns", "etcd-client", "etcd-peer", "smtp"} {
		if c.ports[p], err = freePort(used); err != nil {
			return c, err
		}
	}
	if c.db, err = pgtest.Start(context.Background()); err != nil {
		return c, err
	}
	if _, c.dbURL, err = c.db.CreateDB(context.Background()); err != nil {
		return c, err
	}
	var initial, join []string
	for i, ip := range ips {
		initial = append(initial, fmt.Sprintf("n%d=https://%s:%d", i+1, ip, c.ports["etcd-peer"]))
		join = append(join, net.JoinHostPort(ip, strconv.Itoa(c.ports["gossip"])))
	}
	for i, ip := range ips {
		at := func(p string) string { return net.JoinHostPort(ip, strconv.Itoa(c.ports[p])) }
		n := &node{name: fmt.Sprintf("n%d", i+1), ip: ip, logFile: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		n.args = append([]string{bin, "central", "--node-name", n.name, "--data-dir", filepath.Join(dir, n.name),
			"--http-addr", at("http"), "--grpc-addr", at("grpc"), "--gossip-addr", at("gossip"),
			"--join", strings.Join(join, ","), "--gossip-key", gossipKey, "--gossip-timing", timing,
			"--dns-addr", at("dns"), "--dns-zone", zone, "--dns-ttl", ttl.String(),
			"--etcd-initial-cluster", strings.Join(initial, ","), "--etcd-client-addr", at("etcd-client"),
			"--etcd-peer-addr", at("etcd-peer"), "--cluster-key-file", keyFile, "--db-url", c.dbURL,
			"--bootstrap-admin-password", password, "--log-level", "warn"}, extra...)
		c.nodes = append(c.nodes, n)
	}
	errc := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() { errc <- n.start() }()
	}
	for range c.nodes {
		if err := <-errc; err != nil {
			return c, err
		}
	}
	return c, c.settled("central", 60*time.Second)
}

// stop ends every node and removes the cluster's files.
func (c *cluster) stop() {
	if c == nil {
		return
	}
	for _, n := range c.nodes {
		n.signal(syscall.SIGTERM)
	}
	if c.db != nil {
		c.db.Close()
	}
	os.RemoveAll(c.dir)
}

func (c *cluster) dnsAddr(n *node) string {
	return net.JoinHostPort(n.ip, strconv.Itoa(c.ports["dns"]))
}

// settled waits until every node answers name.<zone> with all three.
func (c *cluster) settled(name string, timeout time.Duration) error {
	return waitAll(c.nodes, c.dnsAddr, name, ips, timeout)
}

// killAndRestart kills victim, returns how long until it was out of every
// other node's answer of name.<zone>, and restarts it.
func (c *cluster) killAndRestart(victim *node, name string) (time.Duration, error) {
	var survivors []*node
	var want []string
	for _, n := range c.nodes {
		if n != victim {
			survivors = append(survivors, n)
			want = append(want, n.ip)
		}
	}
	killed := time.Now()
	victim.signal(syscall.SIGKILL)
	if err := waitAll(survivors, c.dnsAddr, name, want, 60*time.Second); err != nil {
		return 0, err
	}
	d := time.Since(killed)
	if err := victim.start(); err != nil {
		return 0, err
	}
	return d, c.settled(name, 60*time.Second)
}

// measure starts a cluster with the timing and kills a node trials times.
func measure(bin, timing string, trials int) ([]time.Duration, error) {
	c, err := startCluster(bin, timing)
	defer c.stop()
	if err != nil {
		return nil, err
	}
	log.Printf("%s: cluster of 3 up; %d kills", timing, trials)

	var times []time.Duration
	for i := range trials {
		victim := c.nodes[i%len(c.nodes)]
		d, err := c.killAndRestart(victim, "central")
		if err != nil {
			return nil, fmt.Errorf("trial %d: %w", i+1, err)
		}
		times = append(times, d)
		log.Printf("%s: trial %d: %s removed from every answer after %v", timing, i+1, victim.name, d.Round(time.Millisecond))
	}
	return times, nil
}

// waitAll polls the DNS responder of every node in nodes until each answers
// name.<zone> with exactly want, and (after a join, not after a removal)
// lets the cluster settle a moment: a fresh join is not settled until every
// node has gossiped with it.
func waitAll(nodes []*node, dnsAddr func(*node) string, name string, want []string, timeout time.Duration) error {
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(nodes)
	var last []string
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s.%s at %s: %v after %v, want %v", name, zone, pending[0].name, last, timeout, want)
		}
		pending = slices.DeleteFunc(pending, func(n *node) bool {
			got := lookupA(dnsAddr(n), name+"."+zone)
			last = got
			return slices.Equal(got, want)
		})
		if len(pending) > 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if len(want) == len(ips) {
		time.Sleep(2 * time.Second)
	}
	return nil
}

func lookupA(server, name string) []string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		return nil
	}
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A)
			out = append(out, ip.Unmap().String())
		}
	}
	slices.Sort(out)
	return out
}

// pct is the p-th percentile of sorted, nearest rank.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
