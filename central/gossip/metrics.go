package gossip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	members  *prometheus.GaugeVec
	failures prometheus.Counter
	joinAtts prometheus.Counter
	joinOKs  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "osprey_gossip_members",
			Help: "Members of the gossip cluster known to this node, by state.",
		}, []string{"state"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_gossip_member_failures_total",
			Help: "Times this node saw another member declared dead.",
		}),
		joinAtts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_gossip_join_attempts_total",
			Help: "Addresses this node tried to (re)join because it did not see them alive.",
		}),
		joinOKs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_gossip_joins_total",
			Help: "(Re)join attempts that reached the node.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.members, m.failures, m.joinAtts, m.joinOKs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register gossip metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) setMembers(counts map[State]int) {
	for s, n := range counts {
		m.members.WithLabelValues(s.String()).Set(float64(n))
	}
}

func (m *metrics) joins(tried, ok int) {
	m.joinAtts.Add(float64(tried))
	m.joinOKs.Add(float64(ok))
}
