package queue

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxDestLabels bounds the destination label: the first destinations
// seen have their own series, the others share "other".
const maxDestLabels = 50

type metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	dsns     *prometheus.CounterVec

	mu    sync.Mutex
	named map[string]bool
}

func newMetrics(q *Queue, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_sensor_queue_delivery_attempts_total",
			Help: "Recipients tried, by result (delivered, deferred, bounced) and destination (the first 50 seen, then \"other\").",
		}, []string{"result", "destination"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "osprey_sensor_queue_delivered_latency_seconds",
			Help:    "Time from a message's arrival (its 250) to its delivery, per recipient delivered.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 14), // 10 ms to about 10 days
		}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_sensor_queue_dsns_total",
			Help: "Delivery status notifications queued, by kind (failure, delay).",
		}, []string{"kind"}),
		named: map[string]bool{},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.attempts, m.latency, m.dsns, &depthCollector{q}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// attempt counts a recipient tried at dest with result.
func (m *metrics) attempt(dest string, result State) {
	m.mu.Lock()
	if !m.named[dest] {
		if len(m.named) < maxDestLabels {
			m.named[dest] = true
		} else {
			dest = "other"
		}
	}
	m.mu.Unlock()
	m.attempts.WithLabelValues(string(result), dest).Inc()
}

var depthDesc = prometheus.NewDesc("osprey_sensor_queue_depth", "Recipients in the queue by state (active, deferred, held, quarantined), or messages.", []string{"state"}, nil)

// depthCollector exports Stats at each scrape.
type depthCollector struct{ q *Queue }

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.q.Stats()
	for _, v := range []struct {
		state string
		n     int64
	}{{"active", st.Active}, {"deferred", st.Deferred}, {"held", st.Held}, {"quarantined", st.Quarantined}, {"messages", st.Messages}} {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(v.n), v.state)
	}
}
