package hierarchy_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
)

// BenchmarkGlobalRuleToAck measures the time from a global rule written on
// the PCN to the SCN's ACK of the version that holds it, as the PCN
// records it (the SCN has then applied the rule to its etcd): a PCN and an
// SCN in one process, each with its own etcd, over the real link (gRPC,
// mutual TLS on loopback). One rule at a time; it reports the median and
// the 99th percentile in milliseconds (docs/BENCHMARKS.md):
//
//	go test -run '^$' -bench BenchmarkGlobalRuleToAck -benchtime 50x ./central/hierarchy/
func BenchmarkGlobalRuleToAck(b *testing.B) {
	p := startPCN(b, hierarchy.PrimaryOptions{})
	s, _ := startSCNStore(b)
	join(b, p, s)
	acked(b, p, "the snapshot")
	ctx := b.Context()
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := p.store.CreateGlobalRule(ctx, store.AllTenants(), senderRule("bench@evil.example"))
		if err != nil {
			b.Fatal(err)
		}
		for {
			d, err := p.store.DownStatuses(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if d["branch"].GetAppliedVersion() >= r.GetVersion() {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("rule %d not acknowledged within a minute", i)
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	ms := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
