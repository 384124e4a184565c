package dnsserver

import (
	"fmt"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries   *prometheus.CounterVec
	truncated prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_dns_queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_dns_truncated_total",
			Help: "UDP answers truncated (TC=1) because they did not fit.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.truncated} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register dns metrics: %w", err)
			}
		}
	}
	return m, nil
}

// qtypeLabels bounds the qtype label to the types worth telling apart.
var qtypeLabels = map[uint16]string{
	dns.TypeA: "A", dns.TypeAAAA: "AAAA", dns.TypeSRV: "SRV", dns.TypeNS: "NS",
	dns.TypeSOA: "SOA", dns.TypeANY: "ANY", dns.TypeTXT: "TXT", dns.TypeMX: "MX",
	dns.TypeCNAME: "CNAME", dns.TypePTR: "PTR", dns.TypeHTTPS: "HTTPS",
	dns.TypeSVCB: "SVCB", dns.TypeCAA: "CAA", dns.TypeDS: "DS", dns.TypeDNSKEY: "DNSKEY",
	dns.TypeAXFR: "AXFR", dns.TypeIXFR: "IXFR",
}

func (m *metrics) observe(qtype uint16, rcode int, truncated bool) {
	t, ok := qtypeLabels[qtype]
	if !ok {
		t = "other"
	}
	r, ok := dns.RcodeToString[rcode]
	if !ok {
		r = "other"
	}
	m.queries.WithLabelValues(t, r).Inc()
	if truncated {
		m.truncated.Inc()
	}
}
