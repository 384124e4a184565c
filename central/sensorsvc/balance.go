package sensorsvc

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RebalanceReason is the reason (google.rpc.ErrorInfo) of the Unavailable
// status that ends a stream the node asks to move: the sensor reconnects at
// once, through the cluster's name, and most likely reaches another node.
// The sensor agent knows it by the same string.
const RebalanceReason = "OSPREY_REBALANCE"

// errRebalance ends a stream that the Balancer moves.
var errRebalance = func() error {
	st, err := status.New(codes.Unavailable, "this central node holds more than its share of the cluster's sensors: reconnect (to another node)").
		WithDetails(&errdetails.ErrorInfo{Reason: RebalanceReason, Domain: "osprey"})
	if err != nil {
		panic(err) // ErrorInfo always marshals
	}
	return st.Err()
}()

// streams is the set of Connect streams the node holds, for the Balancer.
type streams struct {
	mu  sync.Mutex
	set map[*heldStream]struct{}
	// limit, while above zero, is how many streams the node takes: set by
	// the Balancer while it moves streams, so that the sensors it moves
	// and those that come back are turned away at once rather than held
	// and moved again.
	limit int
}

// admit says whether the node takes one more stream now.
func (s *streams) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit <= 0 || len(s.set) < s.limit
}

func (s *streams) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.mu.Unlock()
}

// heldStream is one open Connect stream; moved is closed when the Balancer
// asks it to end.
type heldStream struct {
	moved chan struct{}
	once  sync.Once
}

func (h *heldStream) move() { h.once.Do(func() { close(h.moved) }) }

// hold registers a stream until the returned function is called.
func (s *streams) hold() (*heldStream, func()) {
	h := &heldStream{moved: make(chan struct{})}
	s.mu.Lock()
	if s.set == nil {
		s.set = map[*heldStream]struct{}{}
	}
	s.set[h] = struct{}{}
	s.mu.Unlock()
	return h, func() {
		s.mu.Lock()
		delete(s.set, h)
		s.mu.Unlock()
	}
}

func (s *streams) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}

// moveSome asks up to n streams, chosen at random, to end; it returns how
// many it asked.
func (s *streams) moveSome(n int) int {
	s.mu.Lock()
	all := make([]*heldStream, 0, len(s.set))
	for h := range s.set {
		all = append(all, h)
	}
	s.mu.Unlock()
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	n = min(n, len(all))
	for _, h := range all[:n] {
		h.move()
	}
	return n
}

// The defaults of BalanceOptions.Interval and Step.
const (
	DefaultBalanceInterval = 5 * time.Second
	DefaultBalanceStep     = 0.05
)

// BalanceOptions configures a Balancer.
type BalanceOptions struct {
	// Nodes returns how many central nodes take sensor streams now (those
	// the cluster's name answers with), this one included; nil, or fewer
	// than two, means no balancing.
	Nodes func() int
	// Interval is how often the node compares its streams with its share;
	// zero means 5 s. Each wait is jittered by up to a fifth, so that the
	// nodes do not act in step.
	Interval time.Duration
	// Step is the most streams moved in one interval, as a fraction of
	// those the node holds (at least one is moved); zero means 0.05.
	Step float64
	// Registerer receives the balancer's metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Balancer keeps the node's share of the cluster's sensor streams. Sensors
// pick a node through the cluster's DNS name (shuffled answers), so a fleet
// spreads evenly over the nodes it finds; but a node that comes back (or
// joins) finds every sensor connected elsewhere, and the sensors of a dead
// node land on the survivors. Every interval the Balancer compares the
// streams this node holds with its share, the cluster's online sensors
// (their live status entries in etcd) divided by the nodes that take
// streams, and when it holds more than its share (by more than a
// twentieth, and two), it ends a few of its streams, at most Step of them,
// with the rebalance status. Their sensors reconnect through the name at
// once; until its next count the node turns away, with the same status,
// any stream past its share and slack (the ones it moved that come back,
// and others), so they try again and reach a node with room. A node that
// holds its share takes every stream: after a node dies, its sensors are
// taken by the survivors at once, and balancing waits for the next count.
// So a returning node fills gradually, a few percent of each node's
// sensors per interval, and the reconnections never come as one storm.
type Balancer struct {
	svc      *Service
	nodes    func() int
	interval time.Duration
	step     float64
	log      *slog.Logger
	held     prometheus.GaugeFunc
	moved    prometheus.Counter
}

// NewBalancer returns a Balancer of svc's streams; Run balances.
func NewBalancer(svc *Service, opts BalanceOptions) *Balancer {
	b := &Balancer{svc: svc, nodes: opts.Nodes, interval: opts.Interval, step: opts.Step, log: opts.Logger,
		held: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "osprey_central_sensor_streams", Help: "Sensor configuration streams this node holds.",
		}, func() float64 { return float64(svc.streams.count()) }),
		moved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_central_sensor_streams_moved_total", Help: "Sensor streams this node ended to rebalance the cluster (their sensors reconnected elsewhere).",
		}),
	}
	if b.interval <= 0 {
		b.interval = DefaultBalanceInterval
	}
	if b.step <= 0 {
		b.step = DefaultBalanceStep
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(b.held, b.moved)
	}
	return b
}

// Run balances until ctx ends; it returns nil then.
func (b *Balancer) Run(ctx context.Context) error {
	for {
		t := time.NewTimer(b.interval + time.Duration(rand.Int64N(int64(b.interval)/5+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := b.balance(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("cannot count the cluster's sensor streams; not balancing this time", "err", err)
		}
	}
}

// balance moves streams once, if this node holds more than its share.
func (b *Balancer) balance(ctx context.Context) error {
	if b.nodes == nil {
		return nil
	}
	nodes := b.nodes()
	if nodes < 2 {
		b.svc.streams.setLimit(0)
		return nil
	}
	total, err := b.svc.store.CountOnline(ctx)
	if err != nil {
		b.svc.streams.setLimit(0)
		return err
	}
	held := b.svc.streams.count()
	n, limit := excess(held, total, nodes, b.step)
	b.svc.streams.setLimit(limit)
	if n == 0 {
		return nil
	}
	n = b.svc.streams.moveSome(n)
	b.moved.Add(float64(n))
	b.log.Info("moving sensor streams to other nodes", "held", held, "online", total, "nodes", nodes, "moving", n)
	return nil
}

// excess is how many of held streams to move now, and how many streams to
// take until the next count (0: any number): none to move, and no limit,
// while held is within the slack (a twentieth of the share, and at least
// two) of the share, total/nodes rounded up; otherwise what is above the
// share, at most step of held (at least one), and no more streams than the
// share and its slack.
func excess(held, total, nodes int, step float64) (move, limit int) {
	if total < held {
		return 0, 0 // A count from before this node's streams: wait for the next.
	}
	share := (total + nodes - 1) / nodes
	slack := max(2, share/20)
	if held <= share+slack {
		return 0, 0
	}
	return min(held-share, max(1, int(float64(held)*step))), share + slack
}
