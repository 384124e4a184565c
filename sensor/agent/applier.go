package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Applier runs a configuration: the SMTP server, the POP3 poller and
// whatever else a sensor does implement it.
//
// Apply either takes the whole configuration or returns an error having
// changed nothing, so that the sensor keeps running its last good
// configuration; the error is sent to the central in a Nack, so it should say
// what is wrong ("listen 0.0.0.0:25: address already in use"). The agent
// calls Apply from one goroutine at a time. ctx is cancelled when the agent
// stops; Apply must not keep it.
type Applier interface {
	Apply(ctx context.Context, cfg *ospreyv1.SensorConfig) error
}

// ApplierFunc adapts a function to [Applier].
type ApplierFunc func(ctx context.Context, cfg *ospreyv1.SensorConfig) error

// Apply calls f(ctx, cfg).
func (f ApplierFunc) Apply(ctx context.Context, cfg *ospreyv1.SensorConfig) error {
	return f(ctx, cfg)
}

// MultiApplier returns an Applier that applies a configuration to each of
// appliers in turn. When one fails, the ones before it are given again the
// last configuration that all of them took, so that together they keep
// running it, and the error is returned. (Before any configuration was
// taken there is nothing to go back to: the ones before keep the new one.)
func MultiApplier(appliers ...Applier) Applier {
	return &multiApplier{appliers: appliers}
}

type multiApplier struct {
	mu       sync.Mutex
	appliers []Applier
	last     *ospreyv1.SensorConfig
}

func (m *multiApplier) Apply(ctx context.Context, cfg *ospreyv1.SensorConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, a := range m.appliers {
		err := a.Apply(ctx, cfg)
		if err == nil {
			continue
		}
		if m.last != nil {
			for _, done := range m.appliers[:i] {
				if rerr := done.Apply(ctx, m.last); rerr != nil {
					err = errors.Join(err, fmt.Errorf("roll back to revision %d: %w", m.last.GetRevision(), rerr))
				}
			}
		}
		return err
	}
	m.last = cfg
	return nil
}

// StatusSource is implemented by the sensor's components that report
// counters and health in the sensor's periodic status. Counter names should
// start with the component's name ("smtp_messages_accepted"), since the
// agent merges every source's counters into one map.
type StatusSource interface {
	Status() *ospreyv1.SensorStatus
}

// RequestHandler answers an operator's request, within ctx. The reply's
// id is set by the agent.
type RequestHandler interface {
	HandleRequest(ctx context.Context, req *ospreyv1.SensorRequest) *ospreyv1.SensorReply
}

// RefusalSource hands over the refusals counted since the last report
// (Take), and takes back those a report could not carry (Return).
type RefusalSource interface {
	Take() []*ospreyv1.Refusal
	Return([]*ospreyv1.Refusal)
}

// DeliverySource hands over the delivery attempts of a gateway since the
// last report, at most one report's worth (Take), and takes back those a
// report could not carry (Return).
type DeliverySource interface {
	Take() []*ospreyv1.DeliveryAttempt
	Return([]*ospreyv1.DeliveryAttempt)
}

// QuarantineSource hands over what happened in a gateway's quarantine on
// the sensor's own account, as DeliverySource does for deliveries.
type QuarantineSource interface {
	Take() []*ospreyv1.QuarantineEvent
	Return([]*ospreyv1.QuarantineEvent)
}

// mergeStatus combines the sources' reports: counters are added up by name,
// the sensor is healthy when every source is, problems are listed in
// order, and the SMTP, POP3 and spool reports are the first source's that
// has one, as is the gateway's.
func mergeStatus(sources []StatusSource) *ospreyv1.SensorStatus {
	out := &ospreyv1.SensorStatus{Counters: map[string]uint64{}, Healthy: true}
	for _, src := range sources {
		st := src.Status()
		if st == nil {
			continue
		}
		for k, v := range st.GetCounters() {
			out.Counters[k] += v
		}
		out.Healthy = out.Healthy && st.GetHealthy()
		out.Problems = append(out.Problems, st.GetProblems()...)
		if out.Smtp == nil {
			out.Smtp = st.GetSmtp()
		}
		if out.Pop3 == nil {
			out.Pop3 = st.GetPop3()
		}
		if out.Spool == nil {
			out.Spool = st.GetSpool()
		}
		if out.Gateway == nil {
			out.Gateway = st.GetGateway()
		}
	}
	return out
}
