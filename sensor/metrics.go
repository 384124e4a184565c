package sensor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ospreysec/osprey/sensor/pop3poll"
)

// serveMetrics serves /metrics, /healthz and /readyz on addr until ctx ends.
// It is meant for loopback or a management network: it carries counters,
// never mail or secrets, and has no authentication of its own.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, ready func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// scopedRegisterer registers collectors with a registry it does not own (a
// central node's, when the node runs the Sensor component) and unregisters
// them all when Run returns, so the registry serves the sensor's metrics
// once, while the sensor runs, and a later Run may register them again.
type scopedRegisterer struct {
	prometheus.Registerer

	mu         sync.Mutex
	registered []prometheus.Collector
}

func (r *scopedRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.registered = append(r.registered, c)
	return nil
}

func (r *scopedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// unregisterAll unregisters what was registered through r.
func (r *scopedRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.registered {
		r.Registerer.Unregister(c)
	}
	r.registered = nil
}

// pop3Metrics are the POP3 poller's status counters as Prometheus metrics.
var pop3Metrics = []struct{ counter, name, help string }{
	{"pop3_polled", "osprey_sensor_pop3_polls_total", "POP3 sessions that ended well."},
	{"pop3_errors", "osprey_sensor_pop3_errors_total", "POP3 sessions that failed."},
	{"pop3_spooled", "osprey_sensor_pop3_spooled_total", "Messages retrieved over POP3 and spooled."},
	{"pop3_deleted", "osprey_sensor_pop3_deleted_total", "Messages deleted from the POP3 server once spooled."},
}

// pop3Collector exports the poller's counters, read at each scrape.
type pop3Collector struct {
	p     *pop3poll.Poller
	descs []*prometheus.Desc // as pop3Metrics
}

func newPOP3Collector(p *pop3poll.Poller) *pop3Collector {
	c := &pop3Collector{p: p}
	for _, m := range pop3Metrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *pop3Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *pop3Collector) Collect(ch chan<- prometheus.Metric) {
	counters := c.p.Status().GetCounters()
	for i, m := range pop3Metrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, float64(counters[m.counter]))
	}
}
