// Package pop3cluster_test runs the sensor's real POP3 poller with the
// central's per-mailbox etcd lock against a real Dovecot, as cmd/osprey
// wires them on central nodes that run a Sensor component. It lives under
// tests/, where central and sensor may meet, as they do in cmd/osprey.
package pop3cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/mailboxlock"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/pop3poll"
	"github.com/ospreysec/osprey/sensor/spool"
)

const (
	user     = "journal"
	password = "secret"
	messages = 200
	batch    = 20
)

// node is one central node's Sensor component: its etcd client, lock,
// spool and poller.
type node struct {
	name   string
	cli    *clientv3.Client
	lock   *spyLock
	spool  *spool.Spool
	poller *pop3poll.Poller
	hook   *hookSpool
	cancel context.CancelFunc
	done   chan error
}

// spyLock remembers the lost channel of the lock held last.
type spyLock struct {
	*mailboxlock.Locker
	mu   sync.Mutex
	lost <-chan struct{}
}

func (s *spyLock) Acquire(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	lost, release, err := s.Locker.Acquire(ctx, mailbox)
	if err == nil {
		s.mu.Lock()
		s.lost = lost
		s.mu.Unlock()
	}
	return lost, release, err
}

func (s *spyLock) lastLost() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// hookSpool runs after when a Put returned.
type hookSpool struct {
	*spool.Spool
	mu    sync.Mutex
	puts  int
	after func(n int)
}

func (h *hookSpool) Put(ctx context.Context, meta spool.Meta, body io.Reader) (string, error) {
	id, err := h.Spool.Put(ctx, meta, body)
	if err != nil {
		return id, err
	}
	h.mu.Lock()
	h.puts++
	n, after := h.puts, h.after
	h.mu.Unlock()
	if after != nil {
		after(n)
	}
	return id, err
}

func startNode(t *testing.T, srv *etcdembed.Server, name string, cfg *ospreyv1.SensorConfig) *node {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	l, err := mailboxlock.New(mailboxlock.Options{Client: cli, Node: name, TTL: 2 * time.Second, RetryInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	n := &node{name: name, cli: cli, lock: &spyLock{Locker: l}, spool: sp, hook: &hookSpool{Spool: sp}, done: make(chan error, 1)}
	n.poller, err = pop3poll.New(pop3poll.Options{
		Spool: n.hook, Lock: n.lock, BatchMessages: batch,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.poller.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	n.cancel = cancel
	go func() { n.done <- n.poller.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop stops the node's poller and waits for it.
func (n *node) stop() {
	n.cancel()
	if n.done != nil {
		<-n.done
		n.done = nil
	}
}

func (n *node) spooled() int { return int(n.poller.Status().Counters["pop3_spooled"]) }

// uidls returns the UIDLs in the node's spool.
func (n *node) uidls(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range n.spool.List() {
		m, err := n.spool.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if out[m.Meta.UIDL] {
			t.Errorf("node %s spooled UIDL %q twice", n.name, m.Meta.UIDL)
		}
		out[m.Meta.UIDL] = true
	}
	return out
}

// setup starts Dovecot with the mailbox filled and an etcd.
func setup(t *testing.T) (*pop3test.Dovecot, *etcdembed.Server, *ospreyv1.SensorConfig) {
	t.Helper()
	pop3test.Require(t)
	cert, key, err := pki.SelfSigned("mail.test", []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d := pop3test.StartDovecot(t, pop3test.DovecotOptions{Users: map[string]string{user: password}, CertPEM: cert, KeyPEM: key})
	for i := range messages {
		d.AddMessage(user, fmt.Appendf(nil, "From: a@example.com\r\nTo: journal@example.com\r\nSubject: %d\r\nMessage-ID: <%d@test>\r\n\r\nbody %d\r\n", i, i, i))
	}
	host, port, _ := net.SplitHostPort(d.PlainAddr)
	p, _ := strconv.Atoi(port)
	cfg := &ospreyv1.SensorConfig{Revision: 1, Pop3: &ospreyv1.Pop3Integration{
		Enabled: true, Server: host, Port: uint32(p), IntervalSeconds: 3600,
		Username: user, Password: password,
	}}
	return d, etcdtest.Start(t), cfg
}

// TestTwoPollers runs two nodes' pollers on one mailbox at the same time:
// one polls while the other waits, the holder stops half way (a shutdown:
// it finishes its message, QUITs and releases the lock), and the other
// drains the rest. Every message is spooled exactly once, on one node.
func TestTwoPollers(t *testing.T) {
	d, srv, cfg := setup(t)
	a := startNode(t, srv, "a", cfg)
	testwait.For(t, "a to poll", func() bool { return a.spooled() > 0 })
	b := startNode(t, srv, "b", cfg)
	testwait.For(t, "b to wait for the lock", func() bool {
		for _, p := range b.poller.Status().Problems {
			if p == "pop3 "+pop3poll.Mailbox(cfg.GetPop3())+": waiting for the mailbox lock: another node polls it" {
				return true
			}
		}
		return false
	})
	testwait.For(t, "a to poll half the mailbox", func() bool { return a.spooled() >= messages/2 })
	if got := b.spooled(); got != 0 {
		t.Fatalf("b spooled %d messages while a held the lock", got)
	}
	a.stop()
	testwait.For(t, "the mailbox to be drained", func() bool { return d.Messages(user) == 0 })
	// The last session ends with QUIT before the counters say so.
	testwait.For(t, "b's last session", func() bool { return a.spooled()+b.spooled() >= messages })

	ua, ub := a.uidls(t), b.uidls(t)
	for u := range ua {
		if ub[u] {
			t.Errorf("UIDL %q spooled by both nodes", u)
		}
	}
	if got := len(ua) + len(ub); got != messages {
		t.Errorf("%d messages spooled (a %d, b %d), want %d", got, len(ua), len(ub), messages)
	}
	t.Logf("a spooled %d, b %d", len(ua), len(ub))
	if len(ub) == 0 {
		t.Error("b took nothing over")
	}
}

// TestCrashHandover loses the holder's etcd session in the middle of a
// batch (its client goes away, as when the node dies): its session stops
// at once, without QUIT, so the server deletes nothing of that batch; the
// other node takes over after the lease's TTL and drains the mailbox.
// Nothing is lost; what the first node spooled in the cut batch is
// spooled again by the other (at least once, bounded by one batch).
func TestCrashHandover(t *testing.T) {
	d, srv, cfg := setup(t)
	a := startNode(t, srv, "a", cfg)
	cut := 2*batch + batch/2 // in the middle of a's third batch
	a.hook.mu.Lock()
	a.hook.after = func(n int) {
		if n != cut {
			return
		}
		// a's node dies, as far as etcd can tell; its poller must stop
		// before the next DELE.
		lost := a.lock.lastLost()
		a.cli.Close()
		<-lost
	}
	a.hook.mu.Unlock()
	testwait.For(t, "a to poll", func() bool { return a.spooled() > 0 })
	b := startNode(t, srv, "b", cfg)

	testwait.For(t, "the mailbox to be drained", func() bool { return d.Messages(user) == 0 })
	testwait.For(t, "the last session", func() bool { return a.spooled()+b.spooled() >= messages+batch/2 })
	a.stop()
	b.stop()

	ua, ub := a.uidls(t), b.uidls(t)
	if len(ua) != cut {
		t.Errorf("a spooled %d messages, want %d: it went on after losing the lock", len(ua), cut)
	}
	both := 0
	for u := range ua {
		if ub[u] {
			both++
		}
	}
	all := len(ua) + len(ub) - both
	if all != messages {
		t.Errorf("%d distinct messages spooled, want %d", all, messages)
	}
	// a committed two batches with QUIT; the third was cut before QUIT,
	// so its messages stayed on the server and b spooled them again.
	if want := cut - 2*batch; both != want {
		t.Errorf("%d messages spooled by both nodes, want %d (the cut batch)", both, want)
	}
	t.Logf("a spooled %d, b %d, both %d", len(ua), len(ub), both)
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
