package sensor

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/dnscache"
	"github.com/ospreysec/osprey/sensor/senderauth"
)

// resolvers are the sensor's DNS clients: one caching resolver
// (dnscache), which a gateway's sender authentication always asks, and its
// delivery when --dns-server names the server.
type resolvers struct {
	cache      *dnscache.Resolver // nil when no DNS server is known
	senderAuth senderauth.Resolver
	delivery   delivery.Resolver // nil: the system's
}

// newResolver makes the resolvers of server (Options.DNSServer). Without
// a server, sender authentication asks the nameservers of
// /etc/resolv.conf; when there are none it is unavailable (a configuration
// that enables it is refused, saying why), which does not stop the sensor.
func newResolver(server string, log *slog.Logger) (resolvers, error) {
	var servers []string
	if server != "" {
		servers = []string{server}
	}
	c, err := dnscache.New(dnscache.Options{Servers: servers})
	switch {
	case err != nil && server != "":
		return resolvers{}, fmt.Errorf("--dns-server: %w", err)
	case err != nil:
		log.Warn("no DNS server for sender authentication: set --dns-server", "err", err)
		return resolvers{}, nil
	}
	r := resolvers{cache: c, senderAuth: c}
	if server != "" {
		r.delivery = c
	}
	log.Info("DNS servers of sender authentication", "servers", c.Servers(), "delivery_too", server != "")
	return r, nil
}

// dnsTrouble is how long after its last failure a DNS server that has not
// answered since is named in the status.
const dnsTrouble = 10 * time.Minute

// problem is the status's warning when the DNS server fails: its last
// question got no answer and no answer came since; "" otherwise.
func (r resolvers) problem(now time.Time) string {
	if r.cache == nil {
		return ""
	}
	st := r.cache.Stats()
	if st.Failures == 0 || st.LastFailure.Before(st.LastAnswer) || now.Sub(st.LastFailure) > dnsTrouble {
		return ""
	}
	return fmt.Sprintf("WARNING: DNS: %s does not answer (%s, last at %s): sender authentication ends in temperror",
		joinServers(r.cache.Servers()), st.LastError, st.LastFailure.UTC().Format(time.RFC3339))
}

func joinServers(s []string) string { return strings.Join(s, ", ") }

// dnsCollector exports the cache's counts.
type dnsCollector struct{ c *dnscache.Resolver }

var dnsLookupsDesc = prometheus.NewDesc("osprey_sensor_dns_lookups_total",
	"DNS questions of the sensor's caching resolver, by result: hit (from the cache), miss (asked a server), failure (no server answered).",
	[]string{"result"}, nil)

func (d dnsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dnsLookupsDesc }

func (d dnsCollector) Collect(ch chan<- prometheus.Metric) {
	st := d.c.Stats()
	for _, v := range []struct {
		result string
		n      uint64
	}{{"hit", st.Hits}, {"miss", st.Misses}, {"failure", st.Failures}} {
		ch <- prometheus.MustNewConstMetric(dnsLookupsDesc, prometheus.CounterValue, float64(v.n), v.result)
	}
}
