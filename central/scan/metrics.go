package scan

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages     *prometheus.CounterVec
	engineTime   *prometheus.HistogramVec
	engineErrors *prometheus.CounterVec
	limits       *prometheus.CounterVec
	panics       prometheus.Counter
	duration     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_scan_messages_total", Help: "Messages scanned, by verdict.",
		}, []string{"verdict"}),
		engineTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "osprey_scan_engine_duration_seconds",
			Help:    "Time one engine spent on one message, all its parts together.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12),
		}, []string{"engine"}),
		engineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_scan_engine_errors_total", Help: "Parts an engine failed to scan.",
		}, []string{"engine"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_scan_limits_total", Help: "Scans that hit a bound, by bound.",
		}, []string{"limit"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_scan_panics_total", Help: "Scans cut short by a panic in the walk or an engine (a bug): the message is recorded as unscannable.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "osprey_scan_duration_seconds",
			Help:    "Time to scan one message, from its first byte read to its verdict.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11),
		}),
	}
	for _, v := range []string{VerdictClean, VerdictDetected, VerdictUnscannableLimit, VerdictUnscannableError} {
		m.messages.WithLabelValues(v)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.messages, m.engineTime, m.engineErrors, m.limits, m.panics, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register scan metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(res *Result, engines []Engine, engineTime []time.Duration) {
	m.messages.WithLabelValues(res.Verdict).Inc()
	m.duration.Observe(res.Duration.Seconds())
	for i, e := range engines {
		m.engineTime.WithLabelValues(e.Name()).Observe(engineTime[i].Seconds())
	}
	for _, l := range res.Limits {
		m.limits.WithLabelValues(l).Inc()
	}
}
