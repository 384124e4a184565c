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
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/internal/nodeproc"
)

const (
	zone = "failover.bench."
	ttl  = 5 * time.Second
)

// ips are the nodes' addresses, as nodeproc gives them.
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

// cluster is the nodes under test.
type cluster struct{ *nodeproc.Cluster }

// startCluster starts a node on each of ips with the gossip timing and
// waits until every DNS answer names all of them.
func startCluster(bin, timing string, extra ...string) (*cluster, error) {
	nc, err := nodeproc.Start(context.Background(), nodeproc.Options{Bin: bin, Nodes: len(ips),
		Args: func(*nodeproc.Node) []string {
			return append([]string{"--gossip-timing", timing, "--dns-zone", zone, "--dns-ttl", ttl.String()}, extra...)
		}})
	if err != nil {
		return nil, err
	}
	c := &cluster{nc}
	if err := c.settled("central", 60*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// stop stops the cluster and says which nodes had to be killed.
func (c *cluster) stop() {
	if err := c.Stop(); err != nil {
		log.Print(err)
	}
}

func (c *cluster) dnsAddr(n *nodeproc.Node) string { return c.Addr(n, "dns") }

// settled waits until every node answers name.<zone> with all three.
func (c *cluster) settled(name string, timeout time.Duration) error {
	return waitAll(c.Nodes, c.dnsAddr, name, ips, timeout)
}

// killAndRestart kills victim, returns how long until it was out of every
// other node's answer of name.<zone>, and restarts it.
func (c *cluster) killAndRestart(victim *nodeproc.Node, name string) (time.Duration, error) {
	var survivors []*nodeproc.Node
	var want []string
	for _, n := range c.Nodes {
		if n != victim {
			survivors = append(survivors, n)
			want = append(want, n.IP)
		}
	}
	killed := time.Now()
	victim.Signal(syscall.SIGKILL)
	if err := waitAll(survivors, c.dnsAddr, name, want, 60*time.Second); err != nil {
		return 0, err
	}
	d := time.Since(killed)
	if err := victim.Start(); err != nil {
		return 0, err
	}
	return d, c.settled(name, 60*time.Second)
}

// measure starts a cluster with the timing and kills a node trials times.
func measure(bin, timing string, trials int) ([]time.Duration, error) {
	c, err := startCluster(bin, timing)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	log.Printf("%s: cluster of 3 up; %d kills", timing, trials)

	var times []time.Duration
	for i := range trials {
		victim := c.Nodes[i%len(c.Nodes)]
		d, err := c.killAndRestart(victim, "central")
		if err != nil {
			return nil, fmt.Errorf("trial %d: %w", i+1, err)
		}
		times = append(times, d)
		log.Printf("%s: trial %d: %s removed from every answer after %v", timing, i+1, victim.Name, d.Round(time.Millisecond))
	}
	return times, nil
}

// waitAll polls the DNS responder of every node in nodes until each answers
// name.<zone> with exactly want, and (after a join, not after a removal)
// lets the cluster settle a moment: a fresh join is not settled until every
// node has gossiped with it.
func waitAll(nodes []*nodeproc.Node, dnsAddr func(*nodeproc.Node) string, name string, want []string, timeout time.Duration) error {
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(nodes)
	var last []string
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s.%s at %s: %v after %v, want %v", name, zone, pending[0].Name, last, timeout, want)
		}
		pending = slices.DeleteFunc(pending, func(n *nodeproc.Node) bool {
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
