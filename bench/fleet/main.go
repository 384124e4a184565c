// Command fleet measures a cluster of three Central Nodes under a fleet of
// simulated sensors: how the sensors spread over the nodes, how fast the
// sensors of a killed node are back on the survivors and what that costs
// etcd, and how the fleet spreads again once the node is back.
//
// It builds `osprey`, starts three `osprey central` processes on
// 127.0.0.1-3 (internal/nodeproc: an embedded etcd quorum of three, gossip,
// one PostgreSQL), makes N approved sensors, and runs them in this process
// (internal/sensorsim: real gRPC streams with mutual TLS, each with its own
// certificate) reconnecting as the sensor agent does: to the nodes in a
// shuffled order (the agent's pick_first over the cluster's DNS answers;
// a killed node's address stays in the list, as it does in DNS for about a
// second, and refuses at once), after the agent's own retry policy
// (agent.DefaultRetry: full jitter from 500 ms, doubling up to 30 s, the
// count reset after a stream of 30 s or a move).
//
// Then:
//   - spread: the streams each node holds once every sensor has one;
//   - kill: SIGKILL of one node; how long until each of its sensors has
//     a configuration from a survivor again (median, p99, max), and etcd's
//     write rate (puts and deletes per second, and raft proposals) and the
//     p99 of its WAL fsync and backend commit over that storm, from the
//     survivors' /metrics, beside the same figures over a quiet window of
//     the same length before the kill;
//   - return: the node is started again; how long until every node holds
//     its share (within the balancer's slack), how many streams were moved,
//     and the most moved in any one second.
//
// Usage: go run ./bench/fleet -n 3000 [-balance-interval 5s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/nodeproc"
	"github.com/ospreysec/osprey/internal/sensorsim"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/agent"
)

// agentBackoffReset is the sensor agent's: a stream that lived this long
// resets its retry count.
const agentBackoffReset = 30 * time.Second

func main() {
	n := flag.Int("n", 3000, "simulated sensors")
	interval := flag.Duration("balance-interval", 5*time.Second, "the nodes' --sensor-balance-interval")
	logs := flag.String("logs", "", "directory to keep the nodes' logs in (empty: none)")
	flag.Parse()
	nodeproc.RaiseFileLimit()
	bin, err := nodeproc.Build("fleet")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(bin))
	if err := run(bin, *n, *interval, *logs); err != nil {
		log.Fatal(err)
	}
}

func run(bin string, n int, interval time.Duration, logs string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := nodeproc.Start(ctx, nodeproc.Options{Bin: bin, Nodes: 3, Args: func(*nodeproc.Node) []string {
		return []string{"--sensor-balance-interval", interval.String()}
	}})
	if err != nil {
		return err
	}
	defer func() {
		if logs != "" {
			for _, nd := range c.Nodes {
				if b, err := os.ReadFile(nd.LogFile); err == nil {
					os.WriteFile(filepath.Join(logs, nd.Name+".log"), b, 0o644)
				}
			}
		}
		if err := c.Stop(); err != nil {
			log.Print(err)
		}
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Nodes[0].Ready.Etcd, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	st := store.New(cli)
	kek, err := pki.LoadOrCreateKEK(filepath.Join(c.Dir, "cluster.key"))
	if err != nil {
		return err
	}
	ca, err := clusterca.Load(ctx, st, kek)
	if err != nil {
		return err
	}
	if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "fleet", Name: "Fleet"}); err != nil {
		return err
	}
	log.Printf("creating %d sensors", n)
	fleet, err := sensorsim.NewFleet(ctx, st, ca, "fleet", "f", n)
	if err != nil {
		return err
	}
	var addrs []string
	name := map[string]string{}
	for _, nd := range c.Nodes {
		a := c.Addr(nd, "grpc")
		addrs = append(addrs, a)
		name[a] = nd.Name
	}
	retry := func(attempt int, err error) time.Duration {
		if agent.Moved(err) {
			return -agent.DefaultRetry(0, err)
		}
		return agent.DefaultRetry(attempt, err)
	}
	runCtx, stopFleet := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range fleet.Sensors {
		wg.Go(func() {
			s.Run(runCtx, sensorsim.Reconnect{Addrs: func() []string { return slices.Clone(addrs) }, Retry: retry, ResetAfter: agentBackoffReset})
		})
	}
	defer func() { stopFleet(); wg.Wait() }()

	held := func() map[string]int {
		m := map[string]int{}
		for _, s := range fleet.Sensors {
			if a, _ := s.Held(); a != "" {
				m[name[a]]++
			}
		}
		return m
	}
	if err := waitFor(10*time.Minute, func() bool { return sum(held()) == n }); err != nil {
		return fmt.Errorf("connect the fleet: %w (held: %v)", err, held())
	}
	fmt.Printf("\nspread: %d sensors connected in %v: %v\n", n, time.Since(start).Round(time.Millisecond), held())

	share := (n + 2) / 3
	slack := max(2, share/20)
	balanced := func() bool {
		h := held()
		for _, nd := range c.Nodes {
			if h[nd.Name] > share+slack {
				return false
			}
		}
		return sum(h) == n
	}
	if err := waitFor(10*time.Minute, balanced); err != nil {
		return fmt.Errorf("first balance: %w (held: %v)", err, held())
	}
	fmt.Printf("balanced %v after the start: %v; %d streams moved\n", time.Since(start).Round(time.Millisecond), held(), movedCount(fleet.Sensors))

	// A quiet window first, for comparison; then kill the node that
	// holds the most.
	quiet := scrapeEvery(c.Nodes, 250*time.Millisecond)
	time.Sleep(15 * time.Second)
	quiet.stop()
	spread := held()
	victim := c.Nodes[0]
	for _, nd := range c.Nodes {
		if spread[nd.Name] > spread[victim.Name] {
			victim = nd
		}
	}
	var survivors []*nodeproc.Node
	for _, nd := range c.Nodes {
		if nd != victim {
			survivors = append(survivors, nd)
		}
	}
	var orphans []*sensorsim.Sensor
	for _, s := range fleet.Sensors {
		if a, _ := s.Held(); name[a] == victim.Name {
			orphans = append(orphans, s)
		}
	}
	storm := scrapeEvery(survivors, 250*time.Millisecond)
	killed := time.Now()
	victim.Signal(syscall.SIGKILL)
	back := func() bool {
		for _, s := range orphans {
			if a, at := s.Held(); a == "" || name[a] == victim.Name || at.Before(killed) {
				return false
			}
		}
		return true
	}
	if err := waitFor(time.Minute, back); err != nil {
		storm.stop()
		behind := 0
		var example string
		for _, s := range orphans {
			if a, at := s.Held(); a == "" || name[a] == victim.Name || at.Before(killed) {
				behind++
				example = fmt.Sprintf("%s: held by %q since %v (killed %v), stream ends %v", s.ID, name[a], at, killed, s.Ends())
			}
		}
		return fmt.Errorf("%s's sensors back: %w (held: %v; %d of %d behind, e.g. %s)", victim.Name, err, held(), behind, len(orphans), example)
	}
	storm.stop()
	stormLen := time.Since(killed)
	var times, hellos []time.Duration
	for _, s := range orphans {
		_, at := s.Held()
		times = append(times, at.Sub(killed))
		hellos = append(hellos, s.ConnectedAt().Sub(killed))
	}
	slices.Sort(times)
	slices.Sort(hellos)
	fmt.Printf("\nkill: stream opened (hello sent) after median %s, p99 %s, max %s\n", ms(pct(hellos, 50)), ms(pct(hellos, 99)), ms(hellos[len(hellos)-1]))
	fmt.Printf("\nkill %s (%d sensors): all back on the survivors after %s; per sensor median %s, p99 %s, max %s; held: %v\n",
		victim.Name, len(orphans), ms(stormLen), ms(pct(times, 50)), ms(pct(times, 99)), ms(times[len(times)-1]), held())
	fmt.Println("\n| window | length | etcd puts+deletes/s | raft proposals/s | WAL fsync p99 | backend commit p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	quiet.print("quiet, before the kill")
	storm.print("storm, kill → all back")

	// The node comes back.
	movedBefore := movedCount(fleet.Sensors)
	if err := victim.Start(); err != nil {
		return err
	}
	restarted := time.Now()
	var perSecond []int
	last := movedBefore
	deadline := time.Now().Add(10 * time.Minute)
	for !balanced() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not balanced 10 minutes after %s came back: %v", victim.Name, held())
		}
		time.Sleep(time.Second)
		m := movedCount(fleet.Sensors)
		perSecond = append(perSecond, m-last)
		last = m
	}
	moved := movedCount(fleet.Sensors) - movedBefore
	fmt.Printf("\nreturn of %s: balanced after %s (every node within %d of its share of %d): %v; %d streams moved, at most %d in one second\n",
		victim.Name, time.Since(restarted).Round(time.Millisecond), slack, share, held(), moved, slices.Max(append(perSecond, 0)))
	return nil
}

// movedCount is how many streams of the sensors ended with the rebalance
// status.
func movedCount(sensors []*sensorsim.Sensor) int {
	n := 0
	for _, s := range sensors {
		for _, err := range s.Ends() {
			if agent.Moved(err) {
				n++
			}
		}
	}
	return n
}

func sum(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}

func waitFor(timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// scraper samples the etcd metrics of some nodes until stopped.
type scraper struct {
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	first   map[string]sample // by node
	last    map[string]sample
	started time.Time
	ended   time.Time
}

// sample is one scrape of a node's etcd: counters and histograms.
type sample struct {
	writes, proposals float64
	fsync, commit     histogram
}

type histogram struct {
	bounds []float64
	counts []float64 // cumulative
}

func scrapeEvery(nodes []*nodeproc.Node, every time.Duration) *scraper {
	s := &scraper{done: make(chan struct{}), first: map[string]sample{}, last: map[string]sample{}, started: time.Now()}
	for _, nd := range nodes {
		s.wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if sm, err := scrape(nd); err == nil {
					s.mu.Lock()
					if _, ok := s.first[nd.Name]; !ok {
						s.first[nd.Name] = sm
					}
					s.last[nd.Name] = sm
					s.mu.Unlock()
				}
				select {
				case <-s.done:
					return
				case <-t.C:
				}
			}
		})
	}
	return s
}

func (s *scraper) stop() {
	s.ended = time.Now()
	close(s.done)
	s.wg.Wait()
}

// print writes the window's row: rates over the window, and the fsync and
// commit p99 of every survivor together.
func (s *scraper) print(what string) {
	secs := s.ended.Sub(s.started).Seconds()
	var writes, proposals float64
	var fsync, commit histogram
	for node, a := range s.first {
		b := s.last[node]
		writes += b.writes - a.writes
		proposals += b.proposals - a.proposals
		fsync = fsync.add(b.fsync.sub(a.fsync))
		commit = commit.add(b.commit.sub(a.commit))
	}
	fmt.Printf("| %s | %s | %.0f | %.0f | %s | %s |\n", what, ms(time.Duration(secs*float64(time.Second))),
		writes/secs, proposals/secs, fsync.p99(), commit.p99())
}

func (h histogram) sub(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

func (h histogram) add(o histogram) histogram {
	if h.bounds == nil {
		return o
	}
	out := histogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] += o.counts[i]
		}
	}
	return out
}

// p99 is the upper bound of the bucket that holds the 99th percentile.
func (h histogram) p99() string {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return "-"
	}
	want := 0.99 * h.counts[len(h.counts)-1]
	for i, c := range h.counts {
		if c >= want {
			if math.IsInf(h.bounds[i], 1) {
				return "> " + ms(time.Duration(h.bounds[i-1]*float64(time.Second)))
			}
			return "≤ " + ms(time.Duration(h.bounds[i]*float64(time.Second)))
		}
	}
	return "-"
}

// scrape reads the etcd metrics of node's embedded member (its client URL
// serves /metrics).
func scrape(nd *nodeproc.Node) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(nd.Ready.Etcd[0], "/")+"/metrics", nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sample{}, err
	}
	counter := func(name string) float64 {
		f := fams[name]
		if f == nil {
			return 0
		}
		t := 0.0
		for _, m := range f.GetMetric() {
			// etcd exports some totals as gauges.
			t += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return t
	}
	hist := func(name string) histogram {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return histogram{}
		}
		var h histogram
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, float64(b.GetCumulativeCount()))
		}
		h.bounds = append(h.bounds, math.Inf(1))
		h.counts = append(h.counts, float64(f.GetMetric()[0].GetHistogram().GetSampleCount()))
		return h
	}
	return sample{
		writes:    counter("etcd_mvcc_put_total") + counter("etcd_mvcc_delete_total"),
		proposals: counter("etcd_server_proposals_committed_total"),
		fsync:     hist("etcd_disk_wal_fsync_duration_seconds"),
		commit:    hist("etcd_disk_backend_commit_duration_seconds"),
	}, nil
}

// pct is the p-th percentile of sorted, nearest rank.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
