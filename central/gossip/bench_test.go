package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// The benchmarks measure the failure detector, not CPU time: they report
// the detection time of a killed node and the false removals under loss.
//
//	go test -run '^$' -bench FailureDetection -benchtime 20x ./central/gossip
//	go test -run '^$' -bench FalseRemoval -benchtime 60x ./central/gossip   (one iteration = 1 s)

var lanDefaults = func(o *Options) {
	o.Configure = func(c *memberlist.Config) {
		d := memberlist.DefaultLANConfig()
		c.ProbeInterval, c.ProbeTimeout = d.ProbeInterval, d.ProbeTimeout
		c.IndirectChecks, c.SuspicionMult, c.SuspicionMaxTimeoutMult = d.IndirectChecks, d.SuspicionMult, d.SuspicionMaxTimeoutMult
		c.GossipInterval, c.GossipNodes, c.RetransmitMult = d.GossipInterval, d.GossipNodes, d.RetransmitMult
		c.GossipToTheDeadTime, c.PushPullInterval, c.TCPTimeout = d.GossipToTheDeadTime, d.PushPullInterval, d.TCPTimeout
		c.DeadNodeReclaimTime = d.DeadNodeReclaimTime
	}
}

func BenchmarkFailureDetection(b *testing.B) {
	for _, cfg := range []struct {
		name string
		mod  func(*Options)
	}{{"tuned", func(*Options) {}}, {"lan-default", lanDefaults}} {
		for _, n := range []int{3, 5} {
			for _, loss := range []float64{0, 0.05} {
				b.Run(fmt.Sprintf("%s/nodes=%d/loss=%g", cfg.name, n, loss), func(b *testing.B) {
					var times []time.Duration
					for b.Loop() {
						times = append(times, detectOnce(b, n, loss, cfg.mod))
					}
					reportTimes(b, times)
				})
			}
		}
	}
}

// detectOnce starts a cluster of n, kills one node and returns how long
// until every survivor has declared it dead.
func detectOnce(b *testing.B, n int, loss float64, mod func(*Options)) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	nodes := startCluster(b, n, mod)
	for _, nd := range nodes {
		nd.lt.SetLoss(loss)
	}
	victim := nodes[n-1]
	start := time.Now()
	victim.c.Close()
	var worst time.Duration
	for _, nd := range nodes[:n-1] {
		waitFor(b, nd.c, "dead", isState(victim.name, StateDead))
		worst = max(worst, time.Since(start))
	}
	for _, nd := range nodes {
		nd.c.Close() // no graceful leave: quicker
	}
	return worst
}

func reportTimes(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	q := func(p float64) float64 {
		return float64(times[int(p*float64(len(times)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.5), "ms-median")
	b.ReportMetric(q(0.9), "ms-p90")
	b.ReportMetric(q(1), "ms-max")
	b.ReportMetric(0, "ns/op")
}

// countingHandler counts memberlist's suspicion and refutation log lines.
type countingHandler struct {
	suspects, refutes *atomic.Int64
}

func (countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch {
	case strings.HasPrefix(r.Message, "Suspect "):
		h.suspects.Add(1)
	case strings.HasPrefix(r.Message, "Refuting a suspect"):
		h.refutes.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// BenchmarkFalseRemoval runs a healthy cluster under UDP loss, one second per
// iteration, and reports how often a healthy node was declared dead.
func BenchmarkFalseRemoval(b *testing.B) {
	for _, n := range []int{3, 5} {
		for _, loss := range []float64{0.05, 0.10, 0.20} {
			b.Run(fmt.Sprintf("nodes=%d/loss=%g", n, loss), func(b *testing.B) {
				var suspects, refutes atomic.Int64
				log := slog.New(countingHandler{&suspects, &refutes})
				nodes := startCluster(b, n, func(o *Options) { o.Logger = log })
				for _, nd := range nodes {
					nd.lt.SetLoss(loss)
				}
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for b.Loop() {
					<-tick.C
				}
				var failures float64
				for _, nd := range nodes {
					failures += counterValue(b, nd.c.metrics.failures)
				}
				secs := float64(b.N)
				b.ReportMetric(failures, "false-deaths")
				b.ReportMetric(float64(suspects.Load())/secs, "suspicions/s")
				b.ReportMetric(float64(refutes.Load())/secs, "refutations/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
