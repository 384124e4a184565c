package rcptverify

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics count the lookups by result and time the probes.
type metrics struct {
	lookups [5]atomic.Uint64 // by result, in the order of resultNames
	probes  atomic.Uint64
	latency prometheus.Histogram
}

var resultNames = [...]string{"cache_good", "cache_bad", "probe_good", "probe_bad", "tempfail"}

var lookupsDesc = prometheus.NewDesc("osprey_rcptverify_lookups_total",
	"Recipient verification's lookups by result: cache_good and cache_bad from the cache, probe_good and probe_bad from a probe of the next hop, tempfail when it could not be asked (the client got 450).",
	[]string{"result"}, nil)

var entriesDesc = prometheus.NewDesc("osprey_rcptverify_cache_entries",
	"Results in recipient verification's cache.", nil, nil)

func newMetrics(v *Verifier, reg prometheus.Registerer) *metrics {
	m := &metrics{latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "osprey_rcptverify_probe_duration_seconds",
		Help: "How long recipient verification's probes of next hops took, waits for a slot included.",
		// From a next hop on the LAN (milliseconds) to the probe timeout.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})}
	if reg != nil {
		// A second Verifier on one registry (tests) keeps the first's.
		_ = reg.Register(collector{v})
		_ = reg.Register(m.latency)
	}
	return m
}

func (m *metrics) count(s Status, cached bool) {
	i := 4
	switch {
	case s == Exists && cached:
		i = 0
	case s == Unknown && cached:
		i = 1
	case s == Exists:
		i = 2
	case s == Unknown:
		i = 3
	}
	m.lookups[i].Add(1)
}

func (m *metrics) probed(took time.Duration) {
	m.probes.Add(1)
	m.latency.Observe(took.Seconds())
}

func (m *metrics) stats() Stats {
	return Stats{
		CacheGood: m.lookups[0].Load(), CacheBad: m.lookups[1].Load(),
		ProbeGood: m.lookups[2].Load(), ProbeBad: m.lookups[3].Load(), TempFail: m.lookups[4].Load(),
		Probes: m.probes.Load(),
	}
}

type collector struct{ v *Verifier }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lookupsDesc
	ch <- entriesDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for i, name := range resultNames {
		ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(c.v.m.lookups[i].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(c.v.cache.Load().len()))
}
